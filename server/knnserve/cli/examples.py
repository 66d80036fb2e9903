"""``knnserve examples add|remove|status|snapshot``: writes to a running server (one started with --online-dir).

Writes need the server's write token (``--token-file`` / ``--token-env`` here name it). Each command
prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from knnserve.cli.options import add_client_options, add_common_options, tls_of, token_of


def _client(args: argparse.Namespace):  # noqa: ANN202 - knnserve_client loads only when a command runs
    from knnserve_client import Client

    return Client(args.server, timeout=args.timeout, token=token_of(args), tls=tls_of(args))


def _labels(args: argparse.Namespace, rows: int) -> list[str]:
    from knnserve.errors import InvalidInputError

    if args.label is not None:
        return [args.label] * rows
    lines = [line.strip() for line in Path(args.labels_file).read_text().splitlines() if line.strip()]
    if len(lines) != rows:
        raise InvalidInputError("--labels-file", f"one class name a line for each of the {rows} input rows", f"{len(lines)} lines")
    return lines


def run_add(args: argparse.Namespace) -> int:
    """Add the rows of a .npy or IDX file with their class names."""
    from knnserve.data.inputs import read_input_array

    x = read_input_array(args.input)
    labels = _labels(args, x.shape[0])
    with _client(args) as client:
        limit = max(1, args.rows_per_request)
        ids: list[int] = []
        position = 0
        for start in range(0, x.shape[0], limit):
            request_id = f"{args.request_id}-{start}" if args.request_id else None
            result = client.add_examples(args.model, x[start : start + limit], labels[start : start + limit],
                                         request_id=request_id)
            ids.extend(int(i) for i in result.ids)
            position = result.log_position
    print(json.dumps({"model": args.model, "version": result.version, "added": len(ids), "first_id": ids[0],
                      "last_id": ids[-1], "log_position": position}))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Hide examples by id."""
    ids = [int(part) for part in args.ids.split(",") if part.strip()]
    with _client(args) as client:
        result = client.remove_examples(args.model, ids, request_id=args.request_id)
    print(json.dumps({"model": args.model, "version": result.version, "removed": len(ids),
                      "log_position": result.log_position, "duplicate": result.duplicate}))
    return 0


def run_status(args: argparse.Namespace) -> int:
    """What changed in the newest version since its bundle."""
    with _client(args) as client:
        info = client.model(args.model)
        state = client.online_state(args.model)
    body: dict[str, object] = {"model": info.name, "version": info.version, "ntotal": info.index.ntotal,
                               "classes": len(info.class_names), "writes": state is not None}
    if state is not None:
        body.update(writable=state.writable, added=state.added, removed=state.removed, log_position=state.log_position,
                    log_bytes=state.log_bytes, max_log_bytes=state.max_log_bytes, head_classes=dict(state.head_classes))
    print(json.dumps(body))
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    """Fold the log into the next bundle version and serve it."""
    with _client(args) as client:
        result = client.snapshot(args.model)
    print(json.dumps({"model": result.model, "version": result.version, "previous_version": result.previous_version,
                      "ntotal": result.ntotal}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``examples`` and its commands."""
    parser = sub.add_parser("examples", help="add or remove labelled examples on a running server, take snapshots")
    commands = parser.add_subparsers(dest="examples_command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, handler: object) -> argparse.ArgumentParser:
        one = commands.add_parser(name, help=help_text, description=help_text + " (docs/online.md)")
        add_common_options(one)
        add_client_options(one, timeout=60.0)
        one.add_argument("--model", required=True, help="model name; writes go to its newest version")
        one.set_defaults(handler=handler)
        return one

    add = command("add", "add labelled rows (a .npy or IDX file) to a model", run_add)
    add.add_argument("--input", type=Path, required=True, help=".npy array or IDX images file, in the model's input space")
    labels = add.add_mutually_exclusive_group(required=True)
    labels.add_argument("--label", default=None, help="one class name for every row (a new name makes a new class)")
    labels.add_argument("--labels-file", type=Path, default=None, help="text file: one class name a line, one per row")
    add.add_argument("--rows-per-request", type=int, default=1024, help="rows per AddExamples call (default: 1024)")
    add.add_argument("--request-id", default=None,
                     help="make a rerun of this command idempotent: calls get ids REQUEST_ID-<first row>")
    remove = command("remove", "hide examples (training rows or added ones) by id", run_remove)
    remove.add_argument("--ids", required=True, help="comma-separated ids (as Search and `examples add` report them)")
    remove.add_argument("--request-id", default=None, help="a rerun with the same id is applied once")
    command("status", "what changed in a model since its bundle: rows added and removed, log position and size", run_status)
    command("snapshot", "write bundle + log as the model's next version (atomically) and serve it", run_snapshot)


__all__ = ["register", "run_add", "run_remove", "run_snapshot", "run_status"]
