"""Votes on saved embeddings of one run of explore_cnn_levers.py: uniform, 1/distance, and exp((cos - cos_1) / tau); k and the scheme
chosen on the validation rows, the test split scored once. Run once on 2026-12-07 on ndm_nopool (output in README.md here)."""
import sys, json, numpy as np, faiss
from knnserve.data import load_dataset
from knnserve.data.split import validation_split
from knnserve.features.learned import FEATURES_VAL_FRACTION
name = sys.argv[1]; seed = json.load(open(f"benchmarks/results/levers-2026-12-07/{name}.json"))["cfg"]["seed"]
d = load_dataset("fashion-mnist", download=False); y = d.y_train; yt = d.y_test
fit, val = validation_split(y, FEATURES_VAL_FRACTION, seed)
A = np.load(f"benchmarks/results/levers/{name}.emb.npy").astype(np.float32); A /= np.linalg.norm(A, axis=1, keepdims=True)
E, Et = A[:60000], A[60000:]
def search(base, q, k=50):
    ix = faiss.IndexFlatIP(base.shape[1]); ix.add(np.ascontiguousarray(base)); return ix.search(np.ascontiguousarray(q), k)
def vote(S, I, labels, k, scheme):
    lab = labels[I[:, :k]]; s = S[:, :k]
    w = {"u": np.ones_like(s), "d": 1 / np.sqrt(np.maximum(2 - 2 * s, 1e-12))}.get(scheme)
    if w is None: w = np.exp((s - s[:, :1]) / float(scheme))
    sc = np.zeros((len(lab), 10)); np.add.at(sc, (np.arange(len(lab))[:, None], lab), w); return sc.argmax(1)
S, I = search(E[fit], E[val]); St, It = search(E, Et)
for scheme in ("u", "d", "0.02", "0.05", "0.1"):
    best = max(((float((vote(S, I, y[fit], k, scheme) == y[val]).mean()), k) for k in (1, 3, 5, 7, 9, 11, 15, 21, 31, 50)))
    t = float((vote(St, It, y, best[1], scheme) == yt).mean())
    print(f"{name} {scheme:5s} val {best[0]*100:.2f} k={best[1]:2d} test {t*100:.2f}")
