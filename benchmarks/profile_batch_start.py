"""The fixed cost of a local batch job, part by part, in a fresh process: what `knnserve batch` pays before its
first search and for its first Parquet part (bundle checksums, FAISS read, kernel build steps, first part).

Uses bench_batch.py's work folder (its Fashion-MNIST Flat bundle and test10k.npy; run bench_batch.py once, or
pass --work). To compare revisions, run it once per checkout with PYTHONPATH at that checkout's server/ and
client/ (it runs 0c995d0's code too), under the shared lock:

    flock /tmp/knnserve-bench.lock env PYTHONPATH=server:client .venv/bin/python benchmarks/profile_batch_start.py

'first' is the first call in the process (imports and caches included); 'median' is of 5 more calls.
"""
import statistics, sys, time
T0 = time.perf_counter()
from pathlib import Path
import numpy as np
W = Path(sys.argv[sys.argv.index("--work") + 1]) if "--work" in sys.argv else Path("/tmp/knnserve-bench-batch")
bundle = W / "models/fashion-mnist/1"
import knnserve
from knnserve import bundle as B
from knnserve.index import backend
from knnserve.kernels import exact_int, runtime
from knnserve.kernels.onnx_proto import Node, ValueInfo, model_bytes
from knnserve.model import KNNModel
from knnserve.batch.inputs import plan_inputs
from knnserve.batch.readers.base import ReadOptions
from knnserve.batch.rows import RowSpec
print(f"code: {knnserve.__file__}")
print(f"{'imports (knnserve.model, batch inputs)':46s} first {time.perf_counter() - T0:.3f}")
def part(name, f, n=5):
    t = time.perf_counter(); r = f(); first = time.perf_counter() - t
    ts = []
    for _ in range(n):
        t = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t)
    print(f"{name:46s} first {first:.3f}" + (f"  median {statistics.median(ts):.3f}" if ts else ""), flush=True)
    return r
part("onnxruntime import + u8 x s8 exactness probe", runtime.int8_gemm_exact, 0)
man = part("read_manifest", lambda: B.read_manifest(bundle))
checksums = getattr(B, "verify_checksums", None) or B.verify_files  # 0c995d0: verify_files (sizes + sha256)
part("sha256 of every file", lambda: checksums(bundle, man))
idx = part("faiss read_index", lambda: backend.read_index(bundle / "index.faiss"))
part("load_bundle (verify + read)", lambda: B.load_bundle(bundle))
part("KNNModel.load (kernel not built)", lambda: KNNModel.load(bundle))
base = part("kernel: base as bytes (flat_uint8_vectors)", lambda: backend.flat_uint8_vectors(idx))
shifted, norms = part("kernel: shifted_base", lambda: exact_int.shifted_base(base))
d = base.shape[1]
args = ([*exact_int.key_nodes(("A", "B")), Node("TopK", ["KEY", "K"], ["V", "I"], {"axis": 1, "largest": 0, "sorted": 1})],
        [ValueInfo("A", np.uint8, ["n", d]), ValueInfo("K", np.int64, [1])],
        [ValueInfo("V", np.int32, ["n", "k"]), ValueInfo("I", np.int64, ["n", "k"])])
graph = part("kernel: model_bytes", lambda: model_bytes(*args, initializers={"B": shifted, "NY": norms}))
part("kernel: onnxruntime session", lambda: runtime.new_session(graph))
def warmed():
    m = KNNModel.load(bundle); t = time.perf_counter(); m.warm_kernel(); return time.perf_counter() - t
ts = [warmed() for _ in range(5)]
print(f"{'kernel: warm_kernel (all of the above)':46s} median {statistics.median(ts):.3f}")
kernel = exact_int.ExactInt8Flat(base)
x = np.load(W / "test10k.npy").reshape(10000, -1)
t = time.perf_counter(); kernel.search(x[:1024], 5, 1); first = time.perf_counter() - t
ts = []
for _ in range(3):
    t = time.perf_counter(); kernel.search(x[:1024], 5, 1); ts.append(time.perf_counter() - t)
print(f"{'search 1,024 rows, 1 thread (new kernel / again)':46s} first {first:.3f}  median {statistics.median(ts):.3f}")
part("plan_inputs (10k .npy)", lambda: plan_inputs([str(W / "test10k.npy")], RowSpec((28, 28), "uint8"), ReadOptions(), 2000))
from knnserve.batch.output import encode_part
from knnserve.batch.results import ResultBatch
from knnserve.batch.schema import OutputMeta
n = 2000
rng = np.random.default_rng(0)
r = ResultBatch(0, 0, {"source": np.array([str(W / "test10k.npy")] * n, dtype=object), "index": np.arange(n, dtype=np.int64),
    "error": np.array([""] * n, dtype=object), "knn_prediction": rng.integers(0, 10, n), "knn_top_classes": rng.integers(0, 10, (n, 5)).astype(np.int32),
    "knn_top_scores": rng.random((n, 5)).astype(np.float32)})
part("Parquet part of 2,000 rows (first: pyarrow import)", lambda: encode_part(r, OutputMeta("fashion-mnist", 1, tuple("abcdefghij"), ("knn",), False), "parquet"))
print("pandas imported:", "pandas" in sys.modules)
print(f"{'total in process':46s} {time.perf_counter() - T0:.1f} s")
