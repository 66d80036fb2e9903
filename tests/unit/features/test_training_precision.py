"""Training precision (bf16 autocast where the CPU has bf16 instructions, fp32 otherwise or when forced), the
cosine training head, and what each does to the export: the ONNX graph stays float32 and passes the parity check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from learned_bundles import template_images

from knnserve.errors import InvalidInputError

pytest.importorskip("torch")

FLAGS_WITH = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n"
FLAGS_WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_auto_takes_bf16_only_where_the_flags_say_so(tmp_path: Path) -> None:
    from knnserve.machine import cpu_flags
    from knnserve.training.precision import resolve_precision

    with_bf16, without = _cpuinfo(tmp_path, FLAGS_WITH), _cpuinfo(tmp_path / "..", FLAGS_WITHOUT)
    assert "avx512_bf16" in cpu_flags(with_bf16)
    assert resolve_precision("auto", with_bf16) == "bf16"
    assert resolve_precision("auto", without) == "fp32"  # the fallback: no bf16 instructions
    assert resolve_precision("fp32", with_bf16) == "fp32"  # forced, whatever the processor has
    assert resolve_precision("bf16", without) == "bf16"
    with pytest.raises(InvalidInputError, match="precision"):
        resolve_precision("fp16", with_bf16)


def test_without_a_cpuinfo_file_torch_decides(tmp_path: Path) -> None:
    import torch

    from knnserve.training.precision import has_bf16

    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    assert has_bf16(tmp_path / "absent") == ("AMX" in capability or "BF16" in capability)


def _train(precision: str, head: str = "linear"):  # type: ignore[no-untyped-def]
    from knnserve.training.cnn import train_network
    from knnserve.training.config import CnnConfig

    x, y = template_images(5, 160, (8, 8))
    config = CnnConfig(arch="tiny", epochs=2, threads=1, batch_size=32, precision=precision, head=head, label_smoothing=0.1)
    return x, y, train_network(x[:120], y[:120], x[120:], y[120:], 3, config)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_precision_is_the_one_asked_and_reproducible(precision: str) -> None:
    import torch

    _, _, a = _train(precision)
    _, _, b = _train(precision)
    assert a.precision == precision and a.record()["precision"] == precision
    for (name, left), right in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert left.dtype in (torch.float32, torch.int64), name  # autocast keeps the weights float32
        assert torch.equal(left, right), name  # bitwise, for a fixed seed and thread count


def test_bf16_and_fp32_training_differ() -> None:
    """The forced fp32 path is not the bf16 one under another name: the same seed gives other weights."""
    import torch

    _, _, fp32 = _train("fp32")
    _, _, bf16 = _train("bf16")
    assert not all(torch.equal(a, b) for a, b in zip(fp32.net.state_dict().values(), bf16.net.state_dict().values()))


@pytest.mark.parametrize(("precision", "head"), [("bf16", "linear"), ("bf16", "cosine"), ("fp32", "cosine")])
def test_the_export_of_a_bf16_or_cosine_network_passes_parity(precision: str, head: str) -> None:
    from knnserve.features.extractor import Extractor
    from knnserve.training.cnn import embed, to_nchw
    from knnserve.training.export import PARITY_TOLERANCE, check_parity, export_onnx, record_of

    x, y, trained = _train(precision, head)
    onnx = export_onnx(trained)
    extractor = Extractor(onnx, record_of(trained, onnx, scale=255.0, source="cnn:tiny"), threads=1)
    fit = embed(trained.net, to_nchw(x[:120]))
    parity = check_parity(trained.net, extractor, x[120:], fit, y[:120], n_classes=3)
    assert parity.passed and parity.max_abs_diff <= PARITY_TOLERANCE and parity.knn_disagreements == 0
    assert extractor(np.ascontiguousarray(x[:4].reshape(4, -1), np.float32), (8, 8)).dtype == np.float32


def test_the_cosine_head_scores_with_scaled_cosines() -> None:
    import torch

    from knnserve.training.cnn import CosineScores

    torch.manual_seed(0)
    scores = CosineScores(4, 3, scale=10.0)
    x = torch.randn(5, 4)
    out = scores(x)
    assert out.shape == (5, 3) and float(out.abs().max()) <= 10.0 + 1e-5
    torch.testing.assert_close(scores(3 * x), out)  # the length of the embedding does not count


@pytest.mark.parametrize(("field", "value"), [("precision", "fp16"), ("head", "arcface"), ("label_smoothing", 1.0)])
def test_bad_training_options_are_refused(field: str, value: object) -> None:
    from knnserve.training.config import CnnConfig

    with pytest.raises(InvalidInputError, match=field):
        CnnConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_precision_option_reaches_the_training_and_the_manifest(tmp_path: Path, precision: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from knnserve.cli import main
    from knnserve.model import KNNModel

    x, y = template_images(3, 200, (12, 12))
    xt, yt = template_images(4, 40, (12, 12))
    np.savez(tmp_path / "grey.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    out = tmp_path / "bundle"
    status = main(["train", "--data-dir", str(tmp_path / "grey.npz"), "--features", "cnn:tiny", "--precision", precision,
                   "--epochs", "1", "--train-threads", "1", "--k", "3", "--preprocess", "raw", "--linear", "none",
                   "--out", str(out), "--no-progress"])
    assert status == 0, capsys.readouterr().err
    record = KNNModel.load(out).extractor.record  # type: ignore[union-attr]
    assert record.training["precision"] == precision and record.training["config"]["precision"] == precision
    assert record.parity is not None and record.parity.passed
