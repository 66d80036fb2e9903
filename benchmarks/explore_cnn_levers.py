"""One training run of the embedding network with one set of levers, for ablations (issue 26).

It reproduces ``knnserve train --features cnn``'s training (the same split, initialisation order,
augmentation, AdamW and one-cycle schedule, bf16 autocast, best-validation epoch): with the old
default's levers (``small``, dropout 0.25/0.3, no margin) and 1 thread it gives the pipeline's
seed-0 history to the last digit. Beside that it can switch on levers the product does not carry
(weight EMA, random erasing, separable convolutions, SGD, no final ReLU) to measure them.
k-NN is scored with exact FAISS search on the torch embeddings: k (1..21), uniform or 1/distance
votes and L2 or cosine chosen on the validation rows against the fit rows, then the test split
against all 60,000 training rows, once. The network's own softmax is scored on both.

    python benchmarks/explore_cnn_levers.py NAME --cfg '{"last_pool": false, "margin": 0.2, "drop_e": 0, "drop_h": 0}' \
        --out-dir benchmarks/results/levers
    python benchmarks/explore_cnn_levers.py --summarize benchmarks/results/levers > table.md

Runs of 2026-12-07 went two at a time, one thread each, on the 2-core machine; their wall times
are those of that sharing.
"""
import argparse, copy, glob, json, os, sys, time
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
import faiss
from pathlib import Path
from knnserve.data import load_dataset
from knnserve.data.split import validation_split
from knnserve.features.learned import FEATURES_VAL_FRACTION
from knnserve.training.cnn import CosineScores, _augment, to_nchw

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("name", nargs="?", help="run name: NAME.json (and NAME.emb.npy, float16 embeddings) in --out-dir")
p.add_argument("--cfg", default="{}", help="JSON of the levers that differ from the old default (see cfg below)")
p.add_argument("--out-dir", type=Path, default=Path("benchmarks/results/levers"))
p.add_argument("--summarize", type=Path, default=None, help="print a markdown table of the runs in this folder and stop")
a = p.parse_args()
if a.summarize is not None:
    print("| run | levers | parameters | best epoch | val softmax | val k-NN (choice) | test softmax | test k-NN | k-NN - softmax | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in sorted(glob.glob(str(a.summarize / "*.json")), key=os.path.getmtime):
        d = json.load(open(f))
        print(f"| {d['name']} | `{d.get('levers', '')}` | {d['params']} | {d['best_epoch']} | {d['val_soft'] * 100:.2f}% | "
              f"{d['val_knn'] * 100:.2f}% ({', '.join(map(str, d['knn_choice']))}) | {d['test_soft'] * 100:.2f}% | "
              f"{d['test_knn'] * 100:.2f}% | {100 * (d['test_knn'] - d['test_soft']):+.2f} | {d['train_s']:.0f} |")
    raise SystemExit(0)
if not a.name:
    p.error("NAME is required unless --summarize")
a.out_dir.mkdir(parents=True, exist_ok=True)
cfg = dict(widths=[32, 64, 128], convs=[1, 1, 1], sep=[0, 0, 0], emb=128, last_pool=True, gap=False, drop_e=0.25, drop_h=0.3,
           opt="adamw", lr=3e-3, wd=0.01, epochs=14, batch=128, smooth=0.1, head="cosine", scale=16.0, pad=2, erase=0.0,
           ema=0.0, threads=1, seed=0, warmup=0.25, bf16=True, margin=0.0, final_relu=True)
cfg.update(json.loads(a.cfg))
torch.set_num_threads(cfg["threads"])
data = load_dataset("fashion-mnist", download=False)
fit_rows, val_rows = validation_split(data.y_train, FEATURES_VAL_FRACTION, cfg["seed"])
X = to_nchw(data.x_train); Xt = to_nchw(data.x_test)
fit = X[fit_rows].contiguous(memory_format=torch.channels_last); val = X[val_rows]
yf = torch.as_tensor(data.y_train[fit_rows], dtype=torch.long); yv = torch.as_tensor(data.y_train[val_rows], dtype=torch.long)

class Net(nn.Module):
    def __init__(s):
        super().__init__()
        mean, std = float(fit.mean()), float(fit.std())
        s.mean, s.std = mean, std
        L = []; c = 1; h = 28
        for i, (w, n) in enumerate(zip(cfg["widths"], cfg["convs"])):
            for _ in range(n):
                L += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]; c = w
            for _ in range(cfg["sep"][i]):
                L += [nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < 2 or cfg["last_pool"]:
                L.append(nn.MaxPool2d(2)); h //= 2
        if cfg["gap"]:
            L.append(nn.AdaptiveAvgPool2d(1)); h = 1
        s.blocks = nn.Sequential(*L)
        s.embedding = nn.Sequential(nn.Flatten(), nn.Dropout(cfg["drop_e"]), nn.Linear(c * h * h, cfg["emb"], bias=False), nn.BatchNorm1d(cfg["emb"]), *([nn.ReLU(inplace=True)] if cfg["final_relu"] else []))
        sc = nn.Linear(cfg["emb"], 10) if cfg["head"] == "linear" else CosineScores(cfg["emb"], 10, cfg["scale"])
        s.classifier = nn.Sequential(nn.Dropout(cfg["drop_h"]), sc)
    def embed(s, x): return s.embedding(s.blocks((x - s.mean) / s.std))
    def forward(s, x): return s.classifier(s.embed(x))

torch.manual_seed(cfg["seed"]); g = torch.Generator().manual_seed(cfg["seed"])
net = Net().to(memory_format=torch.channels_last)
params = sum(q.numel() for q in net.parameters())
if cfg["opt"] == "adamw":
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
else:
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=cfg["wd"])
B = cfg["batch"]; steps = -(-fit.shape[0] // B)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps * cfg["epochs"], pct_start=cfg["warmup"])
ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg["ema"]), use_buffers=True) if cfg["ema"] else None

@torch.no_grad()
def embed_all(m, x):
    m.eval(); return torch.cat([m.embed(x[s:s+2048].contiguous(memory_format=torch.channels_last)) for s in range(0, len(x), 2048)])
@torch.no_grad()
def logits_all(m, x):
    m.eval(); return torch.cat([m(x[s:s+2048].contiguous(memory_format=torch.channels_last)) for s in range(0, len(x), 2048)])

def erase(x):
    if not cfg["erase"]: return x
    n = x.shape[0]; m = torch.rand(n, generator=g) < cfg["erase"]
    hs = torch.randint(4, 15, (n,), generator=g); ws = torch.randint(4, 15, (n,), generator=g)
    ys = (torch.rand(n, generator=g) * (28 - hs + 1)).long(); xs = (torch.rand(n, generator=g) * (28 - ws + 1)).long()
    r = torch.arange(28)
    mask = ((r[None, :] >= ys[:, None]) & (r[None, :] < (ys + hs)[:, None]))[:, :, None] & ((r[None, :] >= xs[:, None]) & (r[None, :] < (xs + ws)[:, None]))[:, None, :]
    mask = mask & m[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)

hist = []; t0 = time.perf_counter(); c0 = time.process_time(); best = (-1, None, 0)
for ep in range(1, cfg["epochs"] + 1):
    net.train(); order = torch.randperm(fit.shape[0], generator=g); te = time.perf_counter(); corr = 0
    for st in range(steps):
        rows = order[st * B:(st + 1) * B]
        x = erase(_augment(fit[rows], cfg["pad"], True, g)).contiguous(memory_format=torch.channels_last); y = yf[rows]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg["bf16"]):
            lg = net(x)
            if cfg["margin"]: lg = lg - cfg["margin"] * cfg["scale"] * F.one_hot(y, 10).to(lg.dtype)
            loss = F.cross_entropy(lg, y, label_smoothing=cfg["smooth"])
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
        if ema is not None: ema.update_parameters(net)
        corr += int((lg.argmax(1) == y).sum())
    m = ema.module if ema is not None else net
    va = float((logits_all(m, val).argmax(1) == yv).float().mean())
    hist.append(dict(epoch=ep, train_acc=corr / fit.shape[0], val_acc=va, s=round(time.perf_counter() - te, 1)))
    print(hist[-1], flush=True)
    if va > best[0]: best = (va, copy.deepcopy(m.state_dict()), ep)
train_s = time.perf_counter() - t0; cpu_s = time.process_time() - c0
final = ema.module if ema is not None else net
final.load_state_dict(best[1])

E = embed_all(final, X).numpy(); Et = embed_all(final, Xt).numpy()
np.save(a.out_dir / f'{a.name}.emb.npy', np.concatenate([E, Et]).astype(np.float16))
test_soft = float((logits_all(final, Xt).argmax(1).numpy() == data.y_test).mean())
def vote(D, I, labels, k, w):
    lab = labels[I[:, :k]]; wt = np.ones_like(D[:, :k]) if w == "u" else 1.0 / (np.sqrt(np.maximum(D[:, :k], 0)) + 1e-6)
    sc = np.zeros((len(lab), 10)); np.add.at(sc, (np.arange(len(lab))[:, None], lab), wt); return sc.argmax(1)
res = {}
ytr = data.y_train
for metric in ("l2", "cos"):
    def prep(v):
        v = np.ascontiguousarray(v, dtype=np.float32)
        if metric == "cos": v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
        return v
    ix = faiss.IndexFlatL2(E.shape[1]); ix.add(prep(E[fit_rows])); D, I = ix.search(prep(E[val_rows]), 21)
    for k in (1, 3, 5, 7, 9, 11, 15, 21):
        for w in ("u", "d"):
            res[(metric, k, w)] = float((vote(D, I, ytr[fit_rows], k, w) == ytr[val_rows]).mean())
bestk = max(res, key=lambda z: (res[z], -z[1]))
metric, k, w = bestk
def prep(v):
    v = np.ascontiguousarray(v, dtype=np.float32)
    if metric == "cos": v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
    return v
ix = faiss.IndexFlatL2(E.shape[1]); ix.add(prep(E)); D, I = ix.search(prep(Et), 21)
test_knn = float((vote(D, I, ytr, k, w) == data.y_test).mean())
out = dict(name=a.name, levers=a.cfg, command=' '.join(sys.argv), cfg=cfg, params=params, train_s=round(train_s, 1), cpu_s=round(cpu_s, 1), best_epoch=best[2], val_soft=best[0],
           val_knn=res[bestk], knn_choice=list(bestk), test_soft=test_soft, test_knn=test_knn, hist=hist, load=os.getloadavg())
json.dump(out, open(a.out_dir / f"{a.name}.json", "w"), indent=1)
print(json.dumps({k: v for k, v in out.items() if k != "hist"}))
