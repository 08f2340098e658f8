"""Network builders: an MLP for tabular rows, a small CNN for square images given as flat rows, and a
1-D CNN over the feature axis (MNIST-1D's sequences).

Every network is wrapped in ``Classifier``, which standardises raw features with the training mean/std
held as buffers, so the exported ONNX graph takes the raw feature row the client has.  A binary
AnyLoss model has one output unit z and emits 2-class logits ``[0, z]``: softmax of that is
(1 − σ(z), σ(z)), so the server treats every model as K-class logits.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from service.training.options import ARCHITECTURES


class Classifier(nn.Module):
    """(x − mean)/std → body → logits ``(N, K)``; with ``binary_head`` the body's (N, 1) becomes [0, z]."""

    mean: Tensor
    std: Tensor

    def __init__(self, body: nn.Module, mean: np.ndarray, std: np.ndarray, *, binary_head: bool = False):
        super().__init__()
        self.body = body
        self.binary_head = binary_head
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        # Constant features (e.g. the always-blank corner pixels of digits) keep scale 1.
        safe_std = np.where(np.asarray(std) > 1e-6, std, 1.0)
        self.register_buffer("std", torch.as_tensor(safe_std, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        z: Tensor = self.body((x - self.mean) / self.std)
        if self.binary_head:
            z = torch.cat([torch.zeros_like(z), z], dim=1)
        return z


def build_mlp(n_features: int, n_outputs: int, hidden: tuple[int, ...] = (64,)) -> nn.Sequential:
    """Linear → ReLU for each hidden width, then a linear output layer."""
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class _Unflatten(nn.Module):
    """Flat ``(N, side²)`` rows → ``(N, 1, side, side)`` images; exported as an ONNX Reshape."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(-1, 1, self.side, self.side)


def build_cnn(n_features: int, n_outputs: int, hidden: tuple[int, ...] = (64,)) -> nn.Sequential:
    """Two 3×3 convolutions (16, 32 channels), one 2×2 max-pool, then an MLP head (``hidden``).

    Takes flat rows of a square single-channel image (64 features = 8×8 digits).
    """
    side = math.isqrt(n_features)
    if side * side != n_features or side < 2:
        raise ValueError(f"arch 'cnn' needs a square image as flat rows; {n_features} features is not square")
    pooled = 32 * (side // 2) ** 2
    return nn.Sequential(
        _Unflatten(side),
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        build_mlp(pooled, n_outputs, hidden),
    )


class _AsSequence(nn.Module):
    """Flat ``(N, L)`` rows → ``(N, 1, L)`` one-channel sequences; exported as an ONNX Reshape."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(1)


CNN1D_CHANNELS = 25
CNN1D_KERNELS = (5, 3, 3)


def build_cnn1d(n_features: int, n_outputs: int, hidden: tuple[int, ...] = ()) -> nn.Sequential:
    """Three 1-D convolutions over the feature axis (25 channels; kernels 5, 3, 3; stride 2; padding 1;
    ReLU), then an MLP head (``hidden``; empty = one linear layer, as in MNIST-1D's ``ConvBase``).

    This is the CNN of Greydanus & Kobak 2024 (mnist1d repository, ``models.py``): 40 features shrink
    to 19, 10 and 5 positions, so its linear layer takes 25 × 5 = 125 inputs.
    """
    length = n_features
    layers: list[nn.Module] = [_AsSequence()]
    channels_in = 1
    for kernel in CNN1D_KERNELS:
        length = (length + 2 - kernel) // 2 + 1
        if length < 1:
            raise ValueError(f"arch 'cnn1d' needs at least 3 features; got {n_features}")
        layers += [nn.Conv1d(channels_in, CNN1D_CHANNELS, kernel_size=kernel, stride=2, padding=1), nn.ReLU()]
        channels_in = CNN1D_CHANNELS
    layers += [nn.Flatten(), build_mlp(CNN1D_CHANNELS * length, n_outputs, hidden)]
    return nn.Sequential(*layers)


def build_classifier(
    X_train: np.ndarray,
    n_classes: int,
    *,
    arch: str = "mlp",
    hidden: tuple[int, ...] = (64,),
    binary_head: bool = False,
) -> Classifier:
    """A ``Classifier`` whose standardisation comes from ``X_train`` (n, d). Initialise under a seed."""
    if binary_head and n_classes != 2:
        raise ValueError(f"a binary head needs exactly 2 classes, got {n_classes}")
    n_outputs = 1 if binary_head else n_classes
    n_features = int(X_train.shape[1])
    if arch == "mlp":
        body: nn.Module = build_mlp(n_features, n_outputs, hidden)
    elif arch == "cnn":
        body = build_cnn(n_features, n_outputs, hidden)
    elif arch == "cnn1d":
        body = build_cnn1d(n_features, n_outputs, hidden)
    else:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    X64 = X_train.astype(np.float64)
    return Classifier(body, X64.mean(axis=0), X64.std(axis=0), binary_head=binary_head)
