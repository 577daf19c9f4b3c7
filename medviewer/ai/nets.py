"""medviewer's own small network architectures, nameable in a card as ``medviewer.ai.nets.X``.

Only architectures (code that ships with medviewer) are named by cards; their weights come from
safetensors or ``weights_only`` state dicts, never from pickles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class HalvingMaxPool(nn.Module):
    """``nn.MaxPool{2,3}d(2)`` (odd trailing rows dropped, as there), as the maximum of the
    2**dims strided views: the same values, and on the CPU about a third faster than PyTorch's
    pooling, which also computes the indices of the maxima."""

    def __init__(self, spatial_dims: int) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.spatial_dims = spatial_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, *spatial]`` -> ``[B, C, *(spatial // 2)]``."""
        dims = self.spatial_dims
        crop: tuple[Any, ...] = (..., *(slice(0, n - n % 2) for n in x.shape[-dims:]))
        even = x[crop]
        out: torch.Tensor | None = None
        for corner in range(2**dims):
            starts = [(corner >> (dims - 1 - d)) & 1 for d in range(dims)]
            strided: tuple[Any, ...] = (..., *(slice(s, None, 2) for s in starts))
            view = even[strided]
            out = view if out is None else torch.maximum(out, view)
        assert out is not None
        return out


class ConvClassifier(nn.Module):
    """A compact 2D/3D CNN classifier with a named feature layer for Grad-CAM.

    ``features`` is a stack of (conv, instance norm, downsample, ReLU) blocks ending in the
    last convolutional block, ``features.block{N-1}`` (a ReLU after a max pool equals the pool
    after the ReLU, at a quarter of the work); ``head`` pools globally and maps to
    class logits. Grad-CAM cards name ``features`` (or one of its blocks) as their layer.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels : int
        Image channels.
    num_classes : int
        Number of output logits.
    channels : sequence of int
        Feature channels of each block; every block but the last halves the resolution.
    norm : bool
        Instance normalisation after each convolution.
    pooling : {"avg", "max"}
        Global pooling before the head. ``"max"`` suits small findings (a nodule in a large
        image), whose evidence an average over the whole image would dilute.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        norm: bool = True,
        pooling: str = "avg",
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm_layer = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        blocks = nn.Sequential()
        previous = in_channels
        for index, width in enumerate(channels):
            layers: list[nn.Module] = [conv(previous, width, 3, padding=1)]
            if norm:
                layers.append(norm_layer(width, affine=True))
            if index < len(channels) - 1:
                layers.append(HalvingMaxPool(spatial_dims))
            layers.append(nn.ReLU())
            blocks.add_module(f"block{index}", nn.Sequential(*layers))
            previous = width
        self.features = blocks
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        pools = {("avg", 2): nn.AdaptiveAvgPool2d, ("avg", 3): nn.AdaptiveAvgPool3d,
                 ("max", 2): nn.AdaptiveMaxPool2d, ("max", 3): nn.AdaptiveMaxPool3d}
        global_pool = pools[(pooling, spatial_dims)](1)
        self.head = nn.Sequential(global_pool, nn.Flatten(), nn.Linear(previous, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, num_classes]`` for images ``[B, C, *spatial]``."""
        return self.head(self.features(x))


class EvidenceClassifier(nn.Module):
    """A classifier that decides from a map of local evidence (small findings in large images).

    The same convolutional ``features`` as :class:`ConvClassifier` (the resolution halved by
    every block but the last) end in a 1x1 convolution, ``evidence``: one logit per location
    for each non-reference class. A class's logit is the maximum of its map, the reference
    class (index 0) has logit 0. Training can supervise the map itself where the finding is
    known (see ``medviewer/training``), which teaches "where" together with "whether" from few
    examples; Grad-CAM on ``features.block{N-1}`` then points at the deciding location.

    Parameters
    ----------
    spatial_dims, in_channels, num_classes, channels, norm
        As for :class:`ConvClassifier`.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        norm: bool = True,
    ) -> None:
        super().__init__()
        trunk = ConvClassifier(spatial_dims, in_channels, num_classes, channels, norm)
        self.features = trunk.features
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.evidence = conv(channels[-1], num_classes - 1, 1)

    def evidence_map(self, x: torch.Tensor) -> torch.Tensor:
        """Per-location logits ``[B, num_classes - 1, *spatial / 2**(N-1)]``."""
        return self.evidence(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, num_classes]``: 0 for the reference, each map's maximum after."""
        peaks = self.evidence_map(x).flatten(2).amax(dim=2)
        return torch.cat([torch.zeros_like(peaks[:, :1]), peaks], dim=1)
