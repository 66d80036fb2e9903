"""One-image extraction p50 of a trained bundle's extractor beside untrained graphs of the same and other architectures.

A graph's time does not depend on its weights unless they hold denormal floats, so a trained
extractor should cost what its untrained architecture costs; this measures both in one process,
in interleaved rounds (the machine's speed drifts between runs), and counts the trained graph's
denormal weights. Random uint8 28x28 images, one a call, through knnserve's ``Extractor`` (two
threads; one image runs on its single-threaded small-batch session).

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/ab_one_image.py models/fashion-mnist-cnn/1 \\
        --out benchmarks/results/one-image-ab-DATE.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="a bundle folder with extractor.onnx")
    parser.add_argument("--archs", nargs="+", default=["small", "small7"], help="untrained graphs measured beside it")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=600, help="calls of each graph per round")
    parser.add_argument("--out", type=Path, required=True, help="markdown report")
    args = parser.parse_args()

    from knnserve.training import require_torch

    torch = require_torch()
    import onnx
    from onnx import numpy_helper

    from knnserve.features.extractor import Extractor
    from knnserve.machine import cpu_model
    from knnserve.model import KNNModel
    from knnserve.training.cnn import EmbeddingNet, TrainedNetwork
    from knnserve.training.config import CnnConfig
    from knnserve.training.export import export_onnx, record_of

    load_start = [round(v, 2) for v in os.getloadavg()]
    trained = KNNModel.load(args.bundle).extractor
    assert trained is not None, f"{args.bundle} has no extractor"
    extractors: dict[str, Extractor] = {f"trained {trained.record.source} ({args.bundle})": trained}
    for arch in args.archs:
        torch.manual_seed(0)
        net = EmbeddingNet((1, 28, 28), 10, arch, np.array([0.3], np.float32), np.array([0.3], np.float32)).eval()
        network = TrainedNetwork(net=net, config=CnnConfig(arch=arch), image_chw=(1, 28, 28))
        graph = export_onnx(network)
        extractors[f"untrained cnn:{arch}"] = Extractor(graph, record_of(network, graph, scale=255.0, source=f"cnn:{arch}"),
                                                         threads=2)
    images = np.random.default_rng(0).integers(0, 256, (args.calls, 28, 28)).astype(np.uint8)
    seconds: dict[str, list[float]] = {name: [] for name in extractors}
    for extractor in extractors.values():
        for i in range(50):
            extractor(images[i : i + 1], (28, 28))
    for _ in range(args.rounds):
        for name, extractor in extractors.items():
            for i in range(args.calls):
                began = time.perf_counter()
                extractor(images[i : i + 1], (28, 28))
                seconds[name].append(time.perf_counter() - began)
    graph = onnx.load(str(args.bundle / "extractor.onnx"))
    denormal = 0
    for tensor in graph.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32:
            denormal += int(((np.abs(values) < np.finfo(np.float32).tiny) & (values != 0)).sum())
    lines = [f"# One-image extraction, a trained bundle beside untrained graphs ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"- command: `{' '.join(sys.argv)}` (under `flock /tmp/knnserve-bench.lock`)",
             f"- machine: {cpu_model()}, {os.cpu_count()} cores; load average start {load_start}, end "
             f"{[round(v, 2) for v in os.getloadavg()]}",
             f"- {args.rounds} interleaved rounds of {args.calls} one-image calls per graph; denormal weights in the trained graph: {denormal}",
             "", "| graph | p50 | p99 | calls |", "|---|---|---|---|"]
    for name, values in seconds.items():
        lines.append(f"| {name} | {np.median(values) * 1e3:.3f} ms | {np.percentile(values, 99) * 1e3:.3f} ms | {len(values)} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
