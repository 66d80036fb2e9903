"""Milliseconds per training step of the embedding network: architecture x precision x memory format x batch.

The cheap half of the training ablation (docs/features.md): one optimiser step (forward, loss,
backward, AdamW) on random 28x28 images, timed after a warm-up, median of ``--steps`` steps; the
configurations are interleaved round by round so the shared machine's load falls on all of them.
Nothing here is trained to an accuracy: the full runs are benchmarks/bench_features.py.

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_train_step.py --out benchmarks/results/train-step-DATE.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["small", "wide"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--formats", nargs="+", default=["contiguous", "channels_last"])
    parser.add_argument("--batches", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--heads", nargs="+", default=["linear"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each configuration (default: 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; steps are split among them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="markdown report; a .json with the same stem beside it")
    args = parser.parse_args()

    from knnserve.training import require_torch

    torch = require_torch()
    from torch.nn import functional as F

    from knnserve.machine import cpu_flags, cpu_model
    from knnserve.training.cnn import EmbeddingNet
    from knnserve.training.precision import has_bf16

    torch.set_num_threads(args.threads)
    flags = cpu_flags() or frozenset()
    out: dict[str, Any] = {
        "command": " ".join(sys.argv), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "torch": torch.__version__, "threads": args.threads, "bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "has_bf16": has_bf16(), "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "load_start": [round(v, 2) for v in os.getloadavg()], "rows": [],
    }
    rng = np.random.default_rng(0)
    mean, std = np.array([0.286], np.float32), np.array([0.353], np.float32)
    setups = []
    for arch, precision, fmt, batch, head in itertools.product(args.archs, args.precisions, args.formats, args.batches, args.heads):
        torch.manual_seed(0)
        net = EmbeddingNet((1, 28, 28), 10, arch, mean, std, head)
        memory = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        net = net.to(memory_format=memory).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
        x = torch.from_numpy(rng.random((batch, 1, 28, 28), dtype=np.float32)).contiguous(memory_format=memory)
        y = torch.from_numpy(rng.integers(0, 10, batch))
        setups.append({"arch": arch, "precision": precision, "format": fmt, "batch": batch, "head": head,
                       "net": net, "opt": optimizer, "x": x, "y": y, "times": []})

    def step(s: dict[str, Any]) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s["precision"] == "bf16"):
            loss = F.cross_entropy(s["net"](s["x"]), s["y"], label_smoothing=0.1)
        s["opt"].zero_grad(set_to_none=True)
        loss.backward()
        s["opt"].step()

    for s in setups:  # warm-up: oneDNN builds its kernels on the first calls
        for _ in range(3):
            step(s)
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for s in setups:
            for _ in range(per_round):
                began = time.perf_counter()
                step(s)
                s["times"].append(time.perf_counter() - began)
    for s in setups:
        ms = float(np.median(s["times"]) * 1e3)
        out["rows"].append({k: s[k] for k in ("arch", "precision", "format", "batch", "head")} | {
            "ms_per_step": ms, "ms_per_1k_images": ms * 1000 / s["batch"], "steps": len(s["times"]),
            "p90_ms": float(np.percentile(s["times"], 90) * 1e3)})
    out["load_end"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    base = {(r["arch"], r["batch"], r["head"]): r["ms_per_step"] for r in out["rows"]
            if r["precision"] == "fp32" and r["format"] == "contiguous"}
    lines = [f"# Training step time of the embedding network ({out['date']})", "",
             f"- command: `{out['command']}` (under `flock /tmp/knnserve-bench.lock`)",
             f"- machine: {out['machine']}; torch {out['torch']}, {args.threads} threads, CPU capability "
             f"{out['cpu_capability']}, bf16 flags {out['bf16_flags']}",
             f"- load average (1/5/15 min): start {out['load_start']}, end {out['load_end']}",
             f"- median of {out['rows'][0]['steps']} steps a configuration, interleaved in {args.rounds} rounds; one step = "
             "forward, label-smoothed cross-entropy, backward, AdamW", "",
             "| arch | head | batch | precision | memory format | ms / step | p90 ms | ms / 1k images | vs fp32 contiguous |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        ref = base.get((r["arch"], r["batch"], r["head"]))
        ratio = f"{ref / r['ms_per_step']:.2f}x" if ref else "-"
        lines.append(f"| {r['arch']} | {r['head']} | {r['batch']} | {r['precision']} | {r['format']} | {r['ms_per_step']:.1f} | "
                     f"{r['p90_ms']:.1f} | {r['ms_per_1k_images']:.1f} | {ratio} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
