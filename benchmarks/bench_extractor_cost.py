"""What each architecture costs to serve, before any training: onnxruntime on the exported graph of an untrained network.

The time of a graph does not depend on its weights, so this tells, in seconds, which
architectures can meet the extraction targets (70k images, one image p50) without training them
for minutes. Random 28x28 images; one-image p50 over ``--single`` calls; batch extraction of
``--rows`` images, best of 3, scaled to 70,000.

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_extractor_cost.py --out benchmarks/results/extractor-cost-DATE.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["small", "mid", "wide"])
    parser.add_argument("--rows", type=int, default=7000)
    parser.add_argument("--single", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from knnserve.training import require_torch

    torch = require_torch()
    from knnserve.features.extractor import Extractor
    from knnserve.machine import cpu_model
    from knnserve.training.cnn import EmbeddingNet, TrainedNetwork
    from knnserve.training.config import CnnConfig
    from knnserve.training.export import export_onnx, record_of

    x = np.random.default_rng(0).integers(0, 256, (args.rows, 784)).astype(np.float32)
    out = {"command": " ".join(sys.argv), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{cpu_model()}, {os.cpu_count()} cores", "load_start": [round(v, 2) for v in os.getloadavg()], "rows": []}
    for arch in args.archs:
        torch.manual_seed(0)
        net = EmbeddingNet((1, 28, 28), 10, arch, np.array([0.3], np.float32), np.array([0.3], np.float32)).eval()
        trained = TrainedNetwork(net=net, config=CnnConfig(arch=arch), image_chw=(1, 28, 28))
        onnx = export_onnx(trained)
        extractor = Extractor(onnx, record_of(trained, onnx, scale=255.0, source=f"cnn:{arch}"), threads=args.threads)
        extractor(x[:1000], (28, 28))
        batch = []
        for _ in range(3):
            began = time.perf_counter()
            extractor(x, (28, 28))
            batch.append(time.perf_counter() - began)
        one = []
        for i in range(args.single):
            row = x[i % args.rows : i % args.rows + 1]
            began = time.perf_counter()
            extractor(row, (28, 28))
            one.append(time.perf_counter() - began)
        out["rows"].append({"arch": arch, "parameters": trained.parameters, "batch_s": min(batch),
                            "per_70k_s": min(batch) * 70_000 / args.rows, "one_p50_ms": float(np.median(one) * 1e3),
                            "load": [round(v, 2) for v in os.getloadavg()]})
        print(json.dumps(out["rows"][-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"# Serving cost of each architecture, untrained weights ({out['date']})", "",
             f"- command: `{out['command']}`", f"- machine: {out['machine']}; onnxruntime, {args.threads} threads",
             f"- load average at the start: {out['load_start']} (per row below)", "",
             "| arch | parameters | 70k images (scaled from the batch) | one image p50 | load |", "|---|---|---|---|---|"]
    lines += [f"| {r['arch']} | {r['parameters']} | {r['per_70k_s']:.1f} s | {r['one_p50_ms']:.3f} ms | {r['load']} |" for r in out["rows"]]
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
