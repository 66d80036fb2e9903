"""The embedding network and its training loop (torch; imported only by ``knnserve train --features cnn``).

Network (the default ``small7``, 897k parameters on 28x28x1): three blocks of Conv3x3 (32, 64, 128
channels, no bias) -> BatchNorm -> ReLU, the first two followed by MaxPool2, the last keeping its 7x7
map; then Linear(128*7*7, 128, no bias) -> BatchNorm1d -> ReLU = the embedding; the class scores,
only while training, are the scaled cosine between the normalised embedding and each class's
normalised weights (``head="cosine"``, trained with an additive margin on the true class) or a
Linear(128, classes) (``head="linear"``). ``small`` pools the last block too (7x7 -> 3x3, 242k
parameters); ``config.ARCHITECTURES`` lists every network. Dropout before the embedding layer and
before the scores is 0 by default (``CnnConfig.dropout``/``head_dropout``). Input normalisation
(per-channel mean and standard deviation of the training images) is inside the network, so it takes
pixels in [0, 1].

Training: AdamW (weight decay 0.01), one-cycle learning rate (max 3e-3, 25% warm-up) over the
epoch budget, batches of 128, channels_last, cross-entropy (label-smoothed 0.1 by default), bfloat16
autocast where the processor has bf16 instructions (``precision.py``), augmentation = a random crop
from a 2-pixel zero pad and (unless turned off) a horizontal flip. Each epoch is scored on the
validation rows (in float32); training stops after ``patience`` epochs without a better validation
accuracy and keeps the best epoch's weights. The same seed, precision and thread count give the
same weights.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knnserve.training import require_torch

torch = require_torch("training the feature extractor")  # sets OMP_WAIT_POLICY first (see require_torch)
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from knnserve.images import require_image_layout  # noqa: E402
from knnserve.training.config import ARCHITECTURES, CnnConfig  # noqa: E402
from knnserve.training.precision import resolve_precision  # noqa: E402


class EmbeddingNet(nn.Module):
    """Conv blocks -> an embedding (``embed``) -> class scores (``forward``, training only)."""

    def __init__(self, image_chw: tuple[int, int, int], n_classes: int, arch: str, mean: np.ndarray, std: np.ndarray,
                 head: str = "linear", cosine_scale: float = 16.0, dropout: float = 0.0, head_dropout: float = 0.0) -> None:
        super().__init__()
        spec = ARCHITECTURES[arch]
        channels, h, w = image_chw
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, channels, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, channels, 1, 1))
        layers: list[nn.Module] = []
        for block, (width, block_convs) in enumerate(zip(spec.widths, spec.convs)):
            for _ in range(block_convs):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
            last = block == len(spec.widths) - 1
            if min(h, w) >= 2 and (spec.pool_last or not last):  # tiny test images run out of pixels to pool
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.blocks = nn.Sequential(*layers)
        self.embedding = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * h * w, spec.embedding, bias=False),
            nn.BatchNorm1d(spec.embedding), nn.ReLU(inplace=True),
        )
        scores = nn.Linear(spec.embedding, n_classes) if head == "linear" else CosineScores(spec.embedding, n_classes, cosine_scale)
        self.classifier = nn.Sequential(nn.Dropout(head_dropout), scores)
        self.embedding_dim = spec.embedding

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding of images (n, C, H, W) with pixels in [0, 1]."""
        return self.embedding(self.blocks((x - self.mean) / self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (training and the CNN's own softmax accuracy)."""
        return self.classifier(self.embed(x))


class CosineScores(nn.Module):
    """``scale`` times the cosine between each row and each class's weight vector (a softmax at temperature 1/scale)."""

    def __init__(self, features: int, n_classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, features))
        nn.init.normal_(self.weight, std=features ** -0.5)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


class Embedder(nn.Module):
    """What is exported: images in, embeddings out (the classifier stays behind)."""

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x)


@dataclass
class TrainedNetwork:
    """A trained network and its training record."""

    net: EmbeddingNet
    config: CnnConfig
    image_chw: tuple[int, int, int]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    threads: int = 1
    precision: str = "fp32"

    @property
    def parameters(self) -> int:
        """Trainable parameters of the embedding part and the training classifier."""
        return sum(p.numel() for p in self.net.parameters())

    def record(self) -> dict[str, Any]:
        """JSON-able summary for the manifest."""
        return {
            "config": self.config.to_dict(),
            "parameters": self.parameters,
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch,
            "best_val_accuracy": self.best_val_accuracy,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "threads": self.threads,
            "precision": self.precision,
            "history": self.history,
        }


def to_nchw(images: np.ndarray, scale: float = 255.0) -> torch.Tensor:
    """Dataset images (N, H, W) / (N, H, W, C) / (N, C, H, W) as float32 NCHW divided by ``scale`` (pixels: [0, 1])."""
    c, h, w = require_image_layout(tuple(images.shape[1:])).chw
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] == c and x.shape[1] != c:
        x = x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / np.float32(scale))


def pixel_scale(images: np.ndarray) -> float:
    """What images are divided by before the network: 255 for uint8 pixels, 1 for floats (taken as [0, 1])."""
    return 255.0 if np.asarray(images).dtype == np.uint8 else 1.0


def _augment(x: torch.Tensor, pad: int, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """A random crop of each image from a ``pad``-pixel zero pad, and a random horizontal flip."""
    n, _, h, w = x.shape
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w)
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
        x = _crop(padded, rows, cols)
    if hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def _crop(padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """padded[i, c, rows[i, c, y, x], cols[i, c, y, x]] for every output pixel."""
    n, c, hp, wp = padded.shape
    flat = padded.reshape(n, c, hp * wp)
    return flat.gather(2, (rows * wp + cols).reshape(n, c, -1)).reshape(rows.shape)


def training_loss(logits: torch.Tensor, labels: torch.Tensor, config: CnnConfig) -> torch.Tensor:
    """Cross-entropy (label-smoothed by ``config.label_smoothing``) of class scores; with ``config.margin``, the
    true class's cosine is lowered by the margin first (the scores are ``cosine_scale`` x cosine)."""
    if config.margin:
        logits = logits - (config.margin * config.cosine_scale) * F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Class scores of NCHW images in eval mode."""
    net.eval()
    return torch.cat([net(x[s : s + batch].contiguous(memory_format=torch.channels_last)) for s in range(0, x.shape[0], batch)])


@torch.no_grad()
def embed(net: EmbeddingNet, x: torch.Tensor, batch: int = 1024) -> np.ndarray:
    """Embeddings (n, D) float32 of NCHW images, in eval mode."""
    net.eval()
    parts = [net.embed(x[s : s + batch].contiguous(memory_format=torch.channels_last)) for s in range(0, x.shape[0], batch)]
    return torch.cat(parts).numpy()


def train_network(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: CnnConfig = CnnConfig(),
    *,
    progress: bool = False,
) -> TrainedNetwork:
    """Train the embedding network on images ``x_fit`` (dataset layout, pixel values), early-stopped on ``x_val``."""
    threads_before = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(int(config.threads))
    try:
        return _train(x_fit, y_fit, x_val, y_val, n_classes, config, progress=progress)
    finally:
        torch.set_num_threads(threads_before)


def _train(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int, config: CnnConfig,
           *, progress: bool) -> TrainedNetwork:
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    scale = pixel_scale(x_fit)
    fit = to_nchw(x_fit, scale).contiguous(memory_format=torch.channels_last)
    val = to_nchw(x_val, scale)
    labels = torch.as_tensor(np.asarray(y_fit), dtype=torch.long)
    val_labels = torch.as_tensor(np.asarray(y_val), dtype=torch.long)
    chw = (int(fit.shape[1]), int(fit.shape[2]), int(fit.shape[3]))
    mean = fit.mean(dim=(0, 2, 3)).numpy()
    std = fit.std(dim=(0, 2, 3)).clamp_min(1e-3).numpy()
    net = EmbeddingNet(chw, n_classes, config.arch, mean, std, config.head, config.cosine_scale, config.dropout,
                       config.head_dropout).to(memory_format=torch.channels_last)
    precision = resolve_precision(config.precision)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.max_lr, weight_decay=config.weight_decay)
    steps = max(1, -(-fit.shape[0] // config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, total_steps=max(steps * config.epochs, 10), pct_start=config.warmup,  # >= 10: tiny runs
    )
    result = TrainedNetwork(net=net, config=config, image_chw=chw, threads=torch.get_num_threads(), precision=precision)
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    epochs = tqdm(range(1, config.epochs + 1), desc="train cnn", unit="epoch", disable=not progress)
    for epoch in epochs:
        net.train()
        order = torch.randperm(fit.shape[0], generator=generator)
        total_loss, seen, correct = 0.0, 0, 0
        epoch_started = time.perf_counter()
        batches = tqdm(range(steps), desc=f"epoch {epoch}", unit="batch", leave=False, disable=not progress)
        for step in batches:
            rows = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = _augment(fit[rows], config.pad, config.hflip, generator).contiguous(memory_format=torch.channels_last)
            y = labels[rows]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = net(x)
                loss = training_loss(logits, y, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss.detach()) * rows.shape[0]
            seen += rows.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            if step % 20 == 0:
                batches.set_postfix(loss=f"{total_loss / seen:.4f}")
        batches.close()
        val_logits = predict_logits(net, val)
        val_loss = float(F.cross_entropy(val_logits, val_labels))
        val_accuracy = float((val_logits.argmax(1) == val_labels).float().mean())
        result.history.append({
            "epoch": epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen, "val_loss": val_loss,
            "val_accuracy": val_accuracy, "seconds": round(time.perf_counter() - epoch_started, 3),
        })
        epochs.set_postfix(loss=f"{total_loss / seen:.4f}", val_acc=f"{val_accuracy:.4f}")
        if progress:
            epochs.write(f"epoch {epoch}: train loss {total_loss / seen:.4f}, validation loss {val_loss:.4f}, "
                         f"validation accuracy {val_accuracy:.4f} ({time.perf_counter() - epoch_started:.1f} s)")
        if best_state is None or val_accuracy > result.best_val_accuracy:
            result.best_val_accuracy, result.best_epoch, stale = val_accuracy, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            stale += 1
            if config.patience is not None and stale >= config.patience:
                break
    epochs.close()
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu_started
    return result


__all__ = ["ARCHITECTURES", "CnnConfig", "CosineScores", "Embedder", "EmbeddingNet", "TrainedNetwork", "embed", "pixel_scale", "predict_logits",
           "to_nchw", "train_network", "training_loss"]
