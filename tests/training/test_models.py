import numpy as np
import pytest
import torch

from service.training.models import build_classifier


def test_standardisation_lives_in_the_model():
    X = np.array([[0.0, 10.0, 5.0], [2.0, 30.0, 5.0]], dtype=np.float32)
    model = build_classifier(X, 3, hidden=(4,))
    torch.testing.assert_close(model.mean, torch.tensor([1.0, 20.0, 5.0]))
    torch.testing.assert_close(model.std, torch.tensor([1.0, 10.0, 1.0]))  # constant column keeps scale 1


def test_binary_head_emits_zero_then_z():
    X = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    model = build_classifier(X, 2, binary_head=True)
    logits = model(torch.as_tensor(X))
    assert logits.shape == (10, 2)
    assert torch.all(logits[:, 0] == 0)
    with pytest.raises(ValueError, match="2 classes"):
        build_classifier(X, 3, binary_head=True)


def test_cnn_takes_flat_rows():
    X = np.random.default_rng(0).normal(size=(6, 64)).astype(np.float32)
    model = build_classifier(X, 10, arch="cnn", hidden=(16,))
    assert model(torch.as_tensor(X)).shape == (6, 10)
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    with pytest.raises(ValueError, match="square"):
        build_classifier(X[:, :30], 10, arch="cnn")
    with pytest.raises(ValueError, match="unknown arch"):
        build_classifier(X, 10, arch="resnet")


def test_cnn1d_is_the_mnist1d_papers_convbase():
    # Greydanus & Kobak's ConvBase: Conv1d(1→25, k5, s2, p1), Conv1d(25→25, k3, s2, p1) ×2, Linear(125 → 10).
    X = np.random.default_rng(0).normal(size=(6, 40)).astype(np.float32)
    model = build_classifier(X, 10, arch="cnn1d", hidden=())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 25, (5,), (2,), (1,)),
        (25, 25, (3,), (2,), (1,)),
        (25, 25, (3,), (2,), (1,)),
    ]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(125, 10)]
    assert model(torch.as_tensor(X)).shape == (6, 10)
    # the feature axis is the convolution axis: shifting the signal by 2 (one stride) shifts the first
    # layer's response by 1 position
    conv = convs[0]
    x = torch.zeros(1, 1, 40)
    x[0, 0, 10] = 1.0
    shifted = torch.roll(x, 2, dims=2)
    torch.testing.assert_close(torch.roll(conv(x) - conv.bias[:, None], 1, dims=2), conv(shifted) - conv.bias[:, None])
    with pytest.raises(ValueError, match="at least 3 features"):
        build_classifier(X[:, :2], 10, arch="cnn1d")
