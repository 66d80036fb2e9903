#!/usr/bin/env bash
# Exact vs approximate k-NN search on Fashion-MNIST (60k base rows, 10k test queries, k=10), with
# knnserve's evaluation harness. Writes benchmarks/results/evaluate-fashion-mnist-DATE/:
#   sweep/    Flat (float32 and raw uint8 bytes), IVF at two nlist, IVF-PQ, HNSW32; baselines; batch and single-query
#   serving/  a trained bundle (PCA-128 + cosine, HNSW32) in-process and served over gRPC, side by
#             side, and target-recall tuning (knnserve tune writes the tuned bundle as version 2)
#   lscpu.txt the machine
#
# Usage (from the repository root): benchmarks/run_evaluate.sh [sweep|serving|all] [OUT_DIR]
# Needs the Debian package dataset-fashion-mnist (or KNNSERVE_DATA pointing at the IDX files).
# The sweep takes about 9 minutes on 2 cores, the serving part about 5.
set -euo pipefail

PART=${1:-all}
OUT=${2:-benchmarks/results/evaluate-fashion-mnist-$(date -u +%Y-%m-%d)}
KNNSERVE=${KNNSERVE:-.venv/bin/knnserve}
LOCK=${BENCH_LOCK:-/work/bench.lock}
PORT=${PORT:-50571}

# The whole script holds the shared benchmark lock (training and serving included), so no other
# timing on this machine overlaps it: re-run this script under flock once.
if [ -n "$LOCK" ] && [ -z "${KNNSERVE_BENCH_LOCKED:-}" ] && command -v flock >/dev/null; then
  export KNNSERVE_BENCH_LOCKED=1
  exec flock "$LOCK" "$0" "$@"
fi

mkdir -p "$OUT"
lscpu > "$OUT/lscpu.txt"

if [ "$PART" = sweep ] || [ "$PART" = all ]; then
  # flat (float32, BLAS) first: the bare-faiss yardstick is timed interleaved with it on the same index.
  # flat@uint8: the same exact search over raw bytes (SQ8_direct): 4x smaller, no BLAS.
  # PQ56np: FAISS's factory trains IVF-PQ codes for polysemous search unless told "np"; knnserve never
  # searches that way, and the training took 76-175 s of this run's budget (16 s without it). Same codes size.
  "$KNNSERVE" evaluate --dataset fashion-mnist --no-download \
    --index flat --index flat@uint8 --index IVF256,Flat --index IVF1024,Flat --index IVF1024,PQ56np --index hnsw \
    --sweep nprobe=1,2,4,8,16,32,64 --sweep efSearch=16,24,32,48,64,128 \
    --k 10 --vote-k 5 --mode both --single-queries 1000 --exact-single-queries 500 --repeats 3 --max-run-seconds 40 \
    --baseline faiss --baseline sklearn --baseline matmul --baseline naive --naive-queries 20 \
    --out "$OUT/sweep"
fi

if [ "$PART" = serving ] || [ "$PART" = all ]; then
  WORK=$(mktemp -d)
  BUNDLE="$WORK/fashion-hnsw/1"
  SERVER_PID=""
  cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
  }
  trap cleanup EXIT
  # knnserve's usual k-NN model for this data: PCA-128 + cosine, HNSW32 (no CV, no linear head, to keep it short).
  "$KNNSERVE" train --dataset fashion-mnist --no-download --index hnsw --preprocess pca:128+cosine --k 5 \
    --linear none --out "$BUNDLE" --name fashion-hnsw --no-progress
  "$KNNSERVE" serve --model "$BUNDLE" --port "$PORT" --log-format text --log-level WARNING &
  SERVER_PID=$!
  for _ in $(seq 1 120); do
    if "$KNNSERVE" models --server "127.0.0.1:$PORT" --timeout 2 >/dev/null 2>&1; then break; fi
    sleep 1
  done
  # The bundle in-process (--bundle) and over gRPC (--server), both scored in its PCA-128 + cosine space;
  # exact float32 Flat on raw pixels as the speed reference.
  "$KNNSERVE" evaluate --dataset fashion-mnist --no-download \
    --index flat@float32 --bundle "$BUNDLE" --sweep efSearch=16,24,32,64 \
    --server "127.0.0.1:$PORT" --model fashion-hnsw \
    --k 10 --vote-k 5 --mode both --single-queries 1000 --exact-single-queries 300 --repeats 3 --max-run-seconds 40 \
    --target-recall 0.99 --tune-queries 1000 \
    --out "$OUT/serving"
  # The evaluation only reports the tuning; knnserve tune writes it, as the next version beside the bundle.
  "$KNNSERVE" tune --dataset fashion-mnist --no-download --bundle "$BUNDLE" --target-recall 0.99 --k 10 \
    --tune-queries 1000 --no-progress | tee "$OUT/serving/tune.txt"
  "$KNNSERVE" info --model "$WORK/fashion-hnsw/2" | tee "$OUT/serving/bundle-info-after-tuning.txt"
fi
