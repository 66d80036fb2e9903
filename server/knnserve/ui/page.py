"""The page's HTML, rendered on the server: the panels' skeleton; ``static/ui.js`` fills them from the JSON endpoints."""

from __future__ import annotations

from html import escape

from knnserve import __version__
from knnserve.ui.app import UiConfig
from knnserve_client.wire.query import TIE_BREAKS, WEIGHTS


def _options(values: tuple[str, ...]) -> str:
    return '<option value="">model default</option>' + "".join(f'<option value="{v}">{v}</option>' for v in values)


def render_page(config: UiConfig) -> str:
    """The whole page for this ``knnserve ui`` process (no model data in it: that comes over the API)."""
    server = escape(config.server)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>knnserve inspection — {server}</title>
<link rel="stylesheet" href="/static/ui.css">
<script src="/static/ui.js" defer></script>
</head>
<body>
<header>
  <h1>knnserve inspection</h1>
  <span class="server">server <code>{server}</code></span>
  <label>model <select id="model"></select></label>
  <label>version <select id="version"></select></label>
  <button id="token-show" type="button">token</button>
  <form id="token-form" hidden>
    <label>bearer token <input id="token" type="password" autocomplete="off" size="24"></label>
    <button id="token-save" type="submit">use token</button>
  </form>
</header>
<div id="message" role="alert" hidden></div>
<main>
<section id="query" class="panel">
  <h2>Query</h2>
  <nav class="tabs">
    <button type="button" class="tab active" data-tab="browse">test split</button>
    <button type="button" class="tab" data-tab="upload">upload</button>
    <button type="button" class="tab" data-tab="draw">draw</button>
  </nav>
  <div id="tab-browse" class="tab-body">
    <label>true class <select id="test-label"><option value="">all</option></select></label>
    <button id="test-prev" type="button">&larr;</button>
    <span id="test-range"></span>
    <button id="test-next" type="button">&rarr;</button>
    <div id="test-grid" class="grid"></div>
  </div>
  <div id="tab-upload" class="tab-body" hidden>
    <p>A PNG or JPEG of the model's input size (<span class="input-shape"></span>); tick resize to scale another size.</p>
    <input id="upload" type="file" accept="image/png,image/jpeg">
    <label><input id="resize" type="checkbox"> resize to the model's input</label>
  </div>
  <div id="tab-draw" class="tab-body" hidden>
    <p>Draw light on dark, as in the dataset; the server scales the canvas down to <span class="input-shape"></span>.</p>
    <canvas id="canvas" width="224" height="224"></canvas>
    <div><button id="draw-clear" type="button">clear</button> <button id="draw-send" type="button">classify drawing</button></div>
  </div>
  <fieldset id="controls">
    <legend>search and vote</legend>
    <label>k <input id="k" type="number" min="1" size="4" placeholder="default"></label>
    <label>weighting <select id="weights">{_options(WEIGHTS)}</select></label>
    <label>ties <select id="tie-break">{_options(TIE_BREAKS)}</select></label>
    <label class="knob-nprobe" hidden>nprobe <input id="nprobe" type="number" min="1" size="5" placeholder="default"></label>
    <label class="knob-ef" hidden>ef_search <input id="ef-search" type="number" min="1" size="5" placeholder="default"></label>
    <button id="run" type="button">run again</button>
  </fieldset>
</section>
<section id="answer" class="panel">
  <h2>Answer</h2>
  <p class="hint">Pick a test image, upload one or draw one.</p>
</section>
<section id="card" class="panel wide">
  <h2>Model card</h2>
  <div id="card-body"></div>
  <h3>Confusion matrix (k-NN head, test split, model defaults)</h3>
  <button id="confusion-run" type="button">compute through the server</button>
  <div id="confusion"></div>
  <div id="examples"></div>
</section>
</main>
<footer>knnserve {escape(__version__)} · every answer comes from the server through the public client · bound to this machine unless started otherwise</footer>
</body>
</html>
"""


__all__ = ["render_page"]
