"""Training levers of issue 26: the cosine head's additive margin, dropout, and an architecture whose last
block keeps its feature map (``small7``); what each does to the loss, the network and the export."""

from __future__ import annotations

import numpy as np
import pytest
from learned_bundles import template_images

from knnserve.errors import InvalidInputError

pytest.importorskip("torch")


def test_the_margin_lowers_only_the_true_class_score() -> None:
    import torch
    from torch.nn import functional as F

    from knnserve.training.cnn import training_loss
    from knnserve.training.config import CnnConfig

    torch.manual_seed(0)
    logits, labels = 16 * torch.rand(6, 4) * 2 - 16, torch.tensor([0, 1, 2, 3, 1, 0])
    config = CnnConfig(head="cosine", margin=0.25, cosine_scale=16.0, label_smoothing=0.1)
    shifted = logits.clone()
    shifted[torch.arange(6), labels] -= 0.25 * 16.0
    torch.testing.assert_close(training_loss(logits, labels, config), F.cross_entropy(shifted, labels, label_smoothing=0.1))
    plain = CnnConfig(head="cosine", margin=0.0, label_smoothing=0.0)
    torch.testing.assert_close(training_loss(logits, labels, plain), F.cross_entropy(logits, labels))
    assert training_loss(logits, labels, config) > training_loss(logits, labels, CnnConfig(head="cosine", margin=0.0))


def test_the_margin_follows_the_head() -> None:
    from knnserve.training.config import DEFAULT_MARGIN, CnnConfig

    assert CnnConfig(head="cosine").margin == DEFAULT_MARGIN
    assert CnnConfig(head="linear").margin == 0.0
    assert CnnConfig(head="cosine", margin=0.0).margin == 0.0
    assert CnnConfig(**CnnConfig().to_dict()) == CnnConfig()  # the recorded config rebuilds the same one
    with pytest.raises(InvalidInputError, match="margin.*linear"):
        CnnConfig(head="linear", margin=0.2)


@pytest.mark.parametrize(("field", "value"), [("margin", -0.1), ("margin", 1.0), ("dropout", 1.0), ("head_dropout", -0.5)])
def test_bad_lever_values_are_refused(field: str, value: float) -> None:
    from knnserve.training.config import CnnConfig

    with pytest.raises(InvalidInputError, match=field):
        CnnConfig(**{field: value})  # type: ignore[arg-type]


def test_small7_keeps_the_last_map_and_small_pools_it() -> None:
    import torch

    from knnserve.training.cnn import EmbeddingNet

    mean, std = np.array([0.3], np.float32), np.array([0.3], np.float32)
    x = torch.rand(2, 1, 28, 28)
    for arch, side in (("small", 3), ("small7", 7)):
        net = EmbeddingNet((1, 28, 28), 10, arch, mean, std).eval()
        assert net.blocks(x).shape == (2, 128, side, side), arch
        assert net.embed(x).shape == (2, 128)
        assert net.embedding[2].in_features == 128 * side * side


def test_dropout_is_where_the_config_puts_it() -> None:
    from torch import nn

    from knnserve.training.cnn import EmbeddingNet
    from knnserve.training.config import CnnConfig

    mean, std = np.array([0.3], np.float32), np.array([0.3], np.float32)
    default = CnnConfig()
    net = EmbeddingNet((1, 28, 28), 10, "small", mean, std, dropout=default.dropout, head_dropout=default.head_dropout)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [default.dropout, default.head_dropout]
    net = EmbeddingNet((1, 28, 28), 10, "small", mean, std, dropout=0.25, head_dropout=0.3)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.3]


def test_a_small7_network_trained_with_the_margin_exports_with_parity() -> None:
    """The default's levers together, on a few 28x28 images: training is reproducible and the export passes."""
    import torch

    from knnserve.features.extractor import Extractor
    from knnserve.training.cnn import embed, to_nchw, train_network
    from knnserve.training.config import CnnConfig
    from knnserve.training.export import PARITY_TOLERANCE, check_parity, export_onnx, record_of

    x, y = template_images(3, 120, (28, 28))
    config = CnnConfig(arch="small7", epochs=1, threads=1, batch_size=32, head="cosine", margin=0.2)
    trained = train_network(x[:90], y[:90], x[90:], y[90:], 3, config)
    again = train_network(x[:90], y[:90], x[90:], y[90:], 3, config)
    for left, right in zip(trained.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(left, right)
    assert trained.record()["config"]["margin"] == 0.2 and trained.record()["config"]["arch"] == "small7"
    onnx = export_onnx(trained)
    extractor = Extractor(onnx, record_of(trained, onnx, scale=255.0, source="cnn:small7"), threads=1)
    parity = check_parity(trained.net, extractor, x[90:], embed(trained.net, to_nchw(x[:90])), y[:90], n_classes=3)
    assert parity.passed and parity.max_abs_diff <= PARITY_TOLERANCE
