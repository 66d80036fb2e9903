// knnserve inspection page: fills the server-rendered panels from the JSON endpoints. No framework, no build step.
"use strict";

const state = { model: null, version: null, card: null, lastInput: null, offset: 0, limit: 24, ticket: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

function token() { return sessionStorage.getItem("knnserve-token") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  let response;
  try {
    response = await fetch(path, Object.assign({}, options, { headers }));
  } catch (error) {
    throw new Error("the inspection page did not answer (" + error.message + ")");
  }
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    const message = (body && body.error) || ("HTTP " + response.status);
    if (response.status === 401) {
      $("token-form").hidden = false;
      $("token").focus();
    }
    const failure = new Error(message);
    failure.status = response.status;
    throw failure;
  }
  return body;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined && value !== "") search.set(key, value);
  return search.toString();
}

function modelParams() { return { model: state.model, version: state.version }; }

// -- models and the card --------------------------------------------------------------------------

async function loadModels() {
  try {
    const answer = await api("/api/models");
    const select = $("model");
    select.replaceChildren(...answer.models.map((m) => el("option", { value: m.name, text: `${m.name} (${m.input})` })));
    if (!answer.models.length) { showMessage("the server serves no models"); return; }
    showMessage("");
    state.model = answer.models[0].name;
    state.version = null;
    await loadCard();
  } catch (error) {
    showMessage(error.message);
  }
}

function fillVersions(card) {
  const select = $("version");
  select.replaceChildren(...card.versions.slice().reverse().map((v) => el("option", { value: String(v), text: String(v) })));
  select.value = String(card.version);
}

function row(label, value) { return el("tr", {}, el("th", { text: label }), el("td", { text: value })); }

async function loadCard() {
  try {
    const card = await api("/api/card?" + query(modelParams()));
    state.card = card;
    state.version = card.version;
    fillVersions(card);
    renderCard(card);
    for (const span of document.querySelectorAll(".input-shape")) span.textContent = card.input;
    document.querySelector(".knob-nprobe").hidden = card.limits.max_nprobe === null;
    document.querySelector(".knob-ef").hidden = card.limits.max_ef_search === null;
    $("k").max = card.limits.max_k;
    const labels = $("test-label");
    labels.replaceChildren(el("option", { value: "", text: "all" }),
      ...card.class_names.map((name, i) => el("option", { value: String(i), text: `${i} ${name}` })));
    state.offset = 0;
    $("answer").replaceChildren(el("h2", { text: "Answer" }), el("p", { class: "hint", text: "Pick a test image, upload one or draw one." }));
    $("confusion").replaceChildren();
    $("examples").replaceChildren();
    showMessage("");
    if (card.test_rows) await loadTests();
    else $("test-grid").replaceChildren(el("p", { class: "note", text: "No test split to browse: " + card.dataset_match.reason }));
  } catch (error) {
    showMessage(error.message);
  }
}

function renderCard(card) {
  const body = $("card-body");
  const idx = card.index;
  const table = el("table", { class: "facts" },
    row("model", `${card.name} v${card.version} (created ${card.created_at || "?"})`),
    row("dataset", `${card.dataset || "?"} — ${card.dataset_match.ok ? "matches: " : "thumbnails off: "}${card.dataset_match.reason}`),
    row("input", card.input + " · heads " + card.heads.join(", ")),
    row("index", `${idx.spec} (${idx.factory}, ${idx.kind}) · ${idx.ntotal} vectors of ${idx.dim} dims` + (idx.nlist ? ` · nlist ${idx.nlist}` : "")),
    row("metric", idx.metric),
    row("features", card.features.input === "pixels" ? `pixels, k-NN preprocessing ${card.features.preprocessing}`
      : `${card.features.extractor} → ${card.features.embedding_dim}-d embedding, k-NN preprocessing ${card.features.preprocessing}`),
    row("defaults", Object.entries(card.defaults).map(([k, v]) => `${k}=${v}`).join(", ")),
    row("limits", `k ≤ ${card.limits.max_k}` + (card.limits.max_nprobe ? `, nprobe ≤ ${card.limits.max_nprobe}` : "")
      + (card.limits.max_ef_search ? `, ef_search ≤ ${card.limits.max_ef_search}` : "")));
  const parts = [table];
  const bundle = card.bundle;
  if (bundle) {
    if (bundle.extractor) table.append(row("extractor", bundle.extractor));
    table.append(row("index file", `${(bundle.index_bytes / 1048576).toFixed(1)} MiB, vectors stored as ${bundle.index_storage}`));
    const acc = Object.entries(bundle.accuracies);
    table.append(row("accuracies (bundle)", acc.length ? acc.map(([k, v]) => `${k} ${(100 * v).toFixed(2)}%`).join(" · ") : "none recorded"));
    table.append(row("bundle", bundle.path));
    if (bundle.cv_plot) parts.push(el("figure", {}, el("img", { src: bundle.cv_plot, alt: "cross-validation curve", class: "plot" }),
      el("figcaption", { text: "choosing k: " + bundle.cv_best })));
    if (bundle.templates.length) {
      parts.push(el("h3", { text: "Linear head templates (rows of W in input space)" }));
      parts.push(el("div", { class: "grid templates" }, ...bundle.templates.map((t) =>
        el("figure", { class: "template" }, el("img", { src: t.image, alt: "template " + t.class }), el("figcaption", { text: t.class })))));
    } else if (bundle.templates_note) {
      parts.push(el("p", { class: "note", text: "Templates: " + bundle.templates_note }));
    }
  } else {
    parts.push(el("p", { class: "note", text: "Bundle records (accuracies, CV curve, templates): " + card.bundle_note }));
  }
  if (card.evaluation && card.evaluation.plot) {
    parts.push(el("h3", { text: "Recall vs QPS (latest evaluation)" }));
    parts.push(el("figure", {}, el("img", { src: card.evaluation.plot, alt: "recall vs QPS", class: "plot wide-plot" }),
      el("figcaption", { text: `${card.evaluation.folder} (${card.evaluation.created_at})` })));
  } else {
    parts.push(el("p", { class: "note", text: "Recall vs QPS: no evaluation of this dataset found (knnserve ui --evaluations DIR)." }));
  }
  body.replaceChildren(...parts);
}

// -- test split ------------------------------------------------------------------------------------

function thumbButton(image, onClick) {
  const button = el("button", { type: "button", class: "thumb test-thumb", "data-row": String(image.row), "data-label": String(image.label),
    title: `test row ${image.row}: ${image.name}` },
    image.thumbnail ? el("img", { src: image.thumbnail, alt: `test row ${image.row}` }) : el("div", { class: "noimg", text: "vector" }),
    el("span", { text: `${image.row} · ${image.name}` }));
  button.addEventListener("click", onClick);
  return button;
}

async function loadTests() {
  try {
    const answer = await api("/api/test?" + query(Object.assign(modelParams(), { offset: state.offset, limit: state.limit, label: $("test-label").value })));
    $("test-grid").replaceChildren(...answer.images.map((image) => thumbButton(image, () => inspectTest(image.row))));
    const end = Math.min(state.offset + answer.images.length, answer.total);
    $("test-range").textContent = answer.total ? `${state.offset + 1}–${end} of ${answer.total}` : "none";
    $("test-prev").disabled = state.offset === 0;
    $("test-next").disabled = end >= answer.total;
  } catch (error) {
    showMessage(error.message);
  }
}

// -- inspection ------------------------------------------------------------------------------------

function controls() {
  const value = (id) => { const v = $(id).value.trim(); return v === "" ? null : Number(v); };
  return { k: value("k"), weights: $("weights").value || null, tie_break: $("tie-break").value || null,
    nprobe: document.querySelector(".knob-nprobe").hidden ? null : value("nprobe"),
    ef_search: document.querySelector(".knob-ef").hidden ? null : value("ef-search") };
}

async function runInspection(input) {
  state.lastInput = input;
  const body = Object.assign({}, modelParams(), input, controls());
  const ticket = ++state.ticket;  // only the newest request's answer is drawn (answers may arrive out of order)
  $("answer").classList.add("busy");
  try {
    const answer = await api("/api/inspect", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (ticket !== state.ticket) return;
    showMessage("");
    renderAnswer(answer);
  } catch (error) {
    if (ticket === state.ticket) showMessage(error.message);
  } finally {
    if (ticket === state.ticket) $("answer").classList.remove("busy");
  }
}

function inspectTest(row) { return runInspection({ source: "test", row }); }

function headBlock(name, head) {
  if (!head) return null;
  const bars = head.top.map((t) => el("li", { class: "score" },
    el("span", { class: "bar" }), el("span", { text: `${t.name} ${(100 * t.score).toFixed(1)}%` })));
  bars.forEach((li, i) => { li.firstChild.style.width = `${Math.round(100 * head.top[i].score)}px`; });
  return el("div", { class: `head head-${name}` },
    el("h3", {}, `${name} head: `, el("span", { class: "prediction", "data-class": String(head.prediction), text: head.name })),
    el("ol", { class: "top" }, ...bars));
}

function renderAnswer(answer) {
  const input = answer.input;
  const what = input.source === "test" ? `test row ${input.row}, true class ${input.truth_name}` : "uploaded image";
  const parts = [el("h2", { text: "Answer" }),
    el("div", { class: "query-line" },
      input.thumbnail ? el("img", { src: input.thumbnail, class: "query-image", alt: "the query" }) : null,
      el("div", {}, el("p", { id: "query-what", text: what }),
        el("p", {}, "Classify call ", el("strong", { id: "latency", text: `${answer.latency_ms.toFixed(1)} ms` }),
          ` · ${answer.model} v${answer.version} · ` + Object.entries(answer.params).map(([k, v]) => `${k}=${v}`).join(", "))))];
  parts.push(el("div", { class: "heads" }, headBlock("knn", answer.heads.knn), headBlock("linear", answer.heads.linear)));
  if (answer.votes) {
    const votes = answer.votes;
    parts.push(el("h3", { text: `Votes (${votes.weights})` }));
    parts.push(el("table", { class: "votes" }, el("tr", {}, el("th", { text: "class" }), el("th", { text: "vote" })),
      ...votes.per_class.map((v) => el("tr", { class: votes.tied.includes(v.class) && votes.tied.length > 1 ? "tied" : "" },
        el("td", { text: v.name }), el("td", { text: v.vote.toPrecision(4) })))));
    parts.push(el("p", { id: "tie-rule", text: "Tie rule: " + votes.rule }));
    if (!answer.votes_agree) parts.push(el("p", { class: "warning", text: "The votes recomputed here differ from the server's k-NN prediction." }));
    parts.push(el("h3", { text: `${answer.neighbors.length} nearest training images` }));
    if (state.card) {
      const f = state.card.features;
      const space = f.input === "pixels" ? `pixels, ${f.preprocessing}` : `${f.extractor} embedding, ${f.preprocessing}`;
      parts.push(el("p", { class: "note", id: "distance-space",
        text: `distances: ${state.card.index.metric} (true scale) between ${state.card.index.dim}-d vectors in the index's space (${space})` }));
    }
    if (answer.dataset_note && !answer.neighbors.some((n) => n.thumbnail)) parts.push(el("p", { class: "note", text: answer.dataset_note }));
    parts.push(el("div", { id: "neighbors", class: "grid" }, ...answer.neighbors.map((n) =>
      el("figure", { class: "neighbor" + (answer.heads.knn && n.label === answer.heads.knn.prediction ? " winner" : ""),
        "data-id": String(n.id), "data-label": String(n.label), "data-distance": String(n.distance) },
        n.thumbnail ? el("img", { src: n.thumbnail, alt: `training row ${n.id}` }) : el("div", { class: "noimg", text: "no image" }),
        el("figcaption", {}, el("span", { class: "nlabel", text: n.name }), el("br"),
          el("span", { class: "ndist", text: `d=${n.distance.toPrecision(5)}` }), el("br"),
          el("span", { class: "nid", text: `#${n.id} · w=${n.weight.toPrecision(3)}` }))))));
  }
  $("answer").replaceChildren(...parts);
}

// -- upload and drawing ----------------------------------------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error("could not read the file"));
    reader.readAsDataURL(file);
  });
}

async function uploadChosen() {
  const file = $("upload").files[0];
  if (!file) return;
  try {
    const data = await readFile(file);
    await runInspection({ source: "image", image: data, resize: $("resize").checked });
  } catch (error) {
    showMessage(error.message);
  }
}

function setupCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false;
  const at = (event) => { const r = canvas.getBoundingClientRect(); return [event.clientX - r.left, event.clientY - r.top]; };
  canvas.addEventListener("pointerdown", (event) => { drawing = true; ctx.beginPath(); ctx.moveTo(...at(event)); });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.lineTo(...at(event)); ctx.stroke();
  });
  for (const name of ["pointerup", "pointerleave"]) canvas.addEventListener(name, () => { drawing = false; });
  $("draw-clear").addEventListener("click", clear);
  $("draw-send").addEventListener("click", () => runInspection({ source: "image", image: canvas.toDataURL("image/png"), resize: true }));
}

// -- confusion matrix ------------------------------------------------------------------------------

async function loadConfusion() {
  const box = $("confusion");
  box.replaceChildren(el("p", { class: "note", text: "classifying the test split through the server…" }));
  try {
    const c = await api("/api/confusion?" + query(modelParams()));
    const max = Math.max(1, ...c.counts.flat());
    const header = el("tr", {}, el("th", { text: "true \\ predicted" }), ...c.class_names.map((n, i) => el("th", { text: String(i), title: n })));
    const rows = c.counts.map((counts, t) => el("tr", {}, el("th", { text: `${t} ${c.class_names[t]}` }),
      ...counts.map((n, p) => { const cell = el("td", { text: String(n), class: (t === p ? "diag" : "") + (n / max > 0.55 ? " hot" : "") });
        cell.style.setProperty("--heat", String(n / max)); return cell; })));
    const worst = c.worst.map((w) => { const link = el("a", { href: "#", class: "pair", text: `${w.true_name} → ${w.predicted_name}: ${w.count}` });
      link.addEventListener("click", (event) => { event.preventDefault(); loadExamples(w.true, w.predicted); }); return el("li", {}, link); });
    box.replaceChildren(el("p", { text: `${c.rows} test rows, accuracy ${(100 * c.accuracy).toFixed(2)}%, ${c.seconds}s through the server` }),
      el("table", { class: "confusion" }, header, ...rows), el("h4", { text: "Worst pairs (click for examples)" }), el("ul", { class: "worst" }, ...worst));
  } catch (error) {
    box.replaceChildren();
    showMessage(error.message);
  }
}

async function loadExamples(t, p) {
  try {
    const answer = await api("/api/examples?" + query(Object.assign(modelParams(), { true: t, predicted: p })));
    $("examples").replaceChildren(el("h4", { text: `${answer.true_name} predicted as ${answer.predicted_name} (click one to inspect)` }),
      el("div", { class: "grid" }, ...answer.images.map((image) => thumbButton(image, () => inspectTest(image.row)))));
  } catch (error) {
    showMessage(error.message);
  }
}

// -- wiring ----------------------------------------------------------------------------------------

function setupTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
      for (const body of document.querySelectorAll(".tab-body")) body.hidden = body.id !== "tab-" + tab.dataset.tab;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupTabs();
  setupCanvas();
  $("model").addEventListener("change", () => { state.model = $("model").value; state.version = null; loadCard(); });
  $("version").addEventListener("change", () => { state.version = Number($("version").value); loadCard(); });
  $("test-label").addEventListener("change", () => { state.offset = 0; loadTests(); });
  $("test-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadTests(); });
  $("test-next").addEventListener("click", () => { state.offset += state.limit; loadTests(); });
  $("upload").addEventListener("change", uploadChosen);
  $("resize").addEventListener("change", uploadChosen);  // the chosen file again, scaled or not
  $("run").addEventListener("click", () => { if (state.lastInput) runInspection(state.lastInput); });
  for (const id of ["k", "weights", "tie-break", "nprobe", "ef-search"]) $(id).addEventListener("change", () => { if (state.lastInput) runInspection(state.lastInput); });
  $("confusion-run").addEventListener("click", loadConfusion);
  $("token-show").addEventListener("click", () => { $("token-form").hidden = !$("token-form").hidden; });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("knnserve-token", $("token").value.trim());
    $("token-form").hidden = true;
    loadModels();
  });
  loadModels();
});
