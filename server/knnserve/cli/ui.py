"""``knnserve ui``: the inspection page, a separate process that answers through a running server's public API."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from knnserve.cli.options import PORT, POSITIVE, Ranged, add_common_options, add_tls_client_options, tls_of

DEFAULT_UI_PORT = 8470


def run_ui(args: argparse.Namespace) -> int:
    """Serve the page until SIGTERM/SIGINT."""
    from knnserve.ui.app import UiApp, UiConfig
    from knnserve.ui.images import require_extra
    from knnserve.ui.web import UiHttpServer

    require_extra()  # without Pillow or matplotlib: one line now, not a broken page later

    config = UiConfig(
        server=args.server, models_dir=args.models, dataset=args.dataset, data_dir=args.data_dir,
        evaluations=tuple(args.evaluations), confusion_rows=args.confusion_rows, tls=tls_of(args),
        tls_server_name=args.tls_server_name, timeout=args.timeout,
    )
    app = UiApp(config)
    try:
        http = UiHttpServer(app, host=args.host, port=args.port)
    except OSError as exc:
        app.close()
        from knnserve.errors import KnnServeError

        raise KnnServeError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    http.start()
    dataset = app.dataset.name if app.dataset is not None else "each model's own, when installed"
    print(f"inspection page on {http.url} for server {args.server} (dataset: {dataset}); Ctrl-C stops it", flush=True)
    stop.wait()
    http.stop()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ui``."""
    parser = sub.add_parser(
        "ui", help="serve the inspection page (neighbours, votes, model card) for a running server",
        description="A web page over a running knnserve server: classify a test image, an upload or a drawing and see "
                    "each head's answer, the k nearest training images with labels and distances, the votes and the tie "
                    "rule, with k, weighting and search effort to change; and the model card. Every answer goes "
                    "through the server's public API with the bearer token the browser gives, so the server's own "
                    "auth applies. Bound to 127.0.0.1 unless --host says otherwise.",
    )
    add_common_options(parser)
    parser.add_argument("--server", required=True, help="HOST:PORT of the knnserve server to inspect")
    add_tls_client_options(parser, prefix="to the server: ")
    parser.add_argument("--tls-server-name", default=None, help="name checked against the server's certificate")
    parser.add_argument("--timeout", type=Ranged(float, 0.001), default=60.0, help="seconds per server call (default: 60)")
    parser.add_argument("--host", default="127.0.0.1", help="address the page binds (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=PORT, default=DEFAULT_UI_PORT, help=f"port of the page (default: {DEFAULT_UI_PORT}; 0 picks one)")
    parser.add_argument("--models", type=Path, default=None,
                        help="the server's bundles folder NAME/VERSION/, read-only: accuracies, CV curve and linear "
                             "templates on the model card (default: none; the card shows what the server reports)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=None,
                        help="registered dataset for test images and neighbour thumbnails, never downloaded "
                             "(default: the one each model was trained on, when it is installed)")
    source.add_argument("--data-dir", type=Path, default=None, help="folder with IDX, CIFAR binary or .npz files instead")
    parser.add_argument("--evaluations", type=Path, action="append", default=[], metavar="DIR",
                        help="folder searched for `knnserve evaluate --out` results; the newest of the model's dataset "
                             "gives the card its recall-vs-QPS plot (repeatable)")
    parser.add_argument("--confusion-rows", type=POSITIVE, default=None,
                        help="test rows the confusion matrix classifies (default: the whole test split)")
    parser.set_defaults(handler=run_ui)


__all__ = ["DEFAULT_UI_PORT", "register", "run_ui"]
