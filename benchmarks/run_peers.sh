#!/usr/bin/env bash
# knnserve against the other nearest-neighbour libraries (hnswlib, USearch, ScaNN, pynndescent, Annoy,
# Voyager), the ann-benchmarks protocol, on Fashion-MNIST in two spaces: raw pixels (784-d, L2) and a
# learned 128-d CNN embedding (L2). Writes benchmarks/results/peers-DATE/ (report.md, results.json, one
# Pareto plot per space and mode, lscpu.txt, uptime.txt).
#
# Usage (from the repository root): benchmarks/run_peers.sh [OUT_DIR]
# Needs: pip install -e '.[peers,cnn,plots]' (make test's environment has them), the Debian package
# dataset-fashion-mnist. The CNN bundle is trained once into $BUNDLE and reused (334 CPU-s, 15 min wall on
# the loaded machine of the recorded run).
# The whole run holds the shared benchmark lock (flock). Recorded: 41 minutes on 2 cores shared at load
# average 8 (benchmarks/results/peers-2026-12-06, whose Annoy sweep still went to search_k=200,000).
set -euo pipefail

OUT=${1:-benchmarks/results/peers-$(date -u +%Y-%m-%d)}
KNNSERVE=${KNNSERVE:-.venv/bin/knnserve}
LOCK=${BENCH_LOCK:-/tmp/knnserve-bench.lock}
BUNDLE=${BUNDLE:-models/fashion-mnist-cnn-embedding/1}

if [ -n "$LOCK" ] && [ -z "${KNNSERVE_BENCH_LOCKED:-}" ] && command -v flock >/dev/null; then
  export KNNSERVE_BENCH_LOCKED=1
  exec flock "$LOCK" "$0" "$@"
fi

mkdir -p "$OUT"
lscpu > "$OUT/lscpu.txt"
{ date -u; uptime; } > "$OUT/uptime.txt"

# The embedding: knnserve's CNN (--features cnn), no k-NN preprocessing (--preprocess raw: the 128-d
# embedding as the network emits it), exact Flat; --linear none and --k 5 skip what this run does not use.
if [ ! -f "$BUNDLE/manifest.json" ]; then
  "$KNNSERVE" train --dataset fashion-mnist --no-download --features cnn --preprocess raw --k 5 --linear none \
    --index flat --out "$BUNDLE" --name fashion-mnist-cnn-embedding --no-progress
fi

# knnserve: exact Flat (its exact-int8 kernel on pixels), IVF1024,Flat (ivf-gemm-int8 on pixels) and
# HNSW32 over nprobe / efSearch sweeps, in both spaces (with peers, the --index specs are also built
# over the bundle's embeddings). Every peer: in both spaces, its documented build and sweep.
# All 10,000 test queries for recall and batch QPS; single-query QPS on a seeded subset of 300 (100
# for exact search, O(N) a query), one thread; 3 passes, no new pass after 20 s.
"$KNNSERVE" evaluate --dataset fashion-mnist --no-download \
  --index flat --index IVF1024,Flat --index hnsw --bundle "$BUNDLE" \
  --sweep nprobe=1,2,4,8,16,32,64 --sweep efSearch=16,24,32,48,64,96,128,256 \
  --baseline hnswlib --baseline usearch --baseline scann --baseline pynndescent --baseline annoy --baseline voyager \
  --k 10 --vote-k 5 --mode both --single-queries 300 --exact-single-queries 100 --repeats 3 --max-run-seconds 20 \
  --no-progress --out "$OUT" 2>&1 | tee "$OUT/stdout.txt"
{ date -u; uptime; } >> "$OUT/uptime.txt"
