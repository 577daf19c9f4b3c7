"""Class-activation heatmaps (Grad-CAM, Grad-CAM++) through MONAI's implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medviewer.ai.model_card import ExplainSpec
from medviewer.core.errors import InferenceError

if TYPE_CHECKING:
    import torch


def class_activation_maps(
    module: torch.nn.Module, batch: torch.Tensor, spec: ExplainSpec, class_index: int
) -> torch.Tensor:
    """Raw (un-normalised, >= 0) CAMs ``[B, *spatial]`` of `class_index` for `batch`.

    MONAI upsamples the layer's map to the input size. Normalisation is left to the caller, so a
    volume classified slice by slice can be scaled once over all slices (a per-slice [0, 1]
    scale would make the weakest slice look as hot as the strongest).
    """
    import torch
    from monai.visualize import GradCAM, GradCAMpp

    layers = dict(module.named_modules())
    if spec.layer not in layers:
        convolutional = [n for n, m in layers.items() if "Conv" in type(m).__name__][-3:]
        raise InferenceError(
            f"explain.layer {spec.layer!r} is not a layer of the network (last convolutions: "
            f"{', '.join(convolutional) or 'none'})"
        )
    cam_class = GradCAM if spec.method == "gradcam" else GradCAMpp
    try:
        cam = cam_class(nn_module=module, target_layers=spec.layer, postprocessing=_identity)
    except (ValueError, AttributeError) as exc:
        raise InferenceError(f"explain.layer {spec.layer!r}: {exc}") from None
    with torch.enable_grad():
        batch = batch.detach().clone().requires_grad_(True)
        try:
            maps = cam(batch, class_idx=class_index)
        except (KeyError, AttributeError, ValueError) as exc:
            raise InferenceError(
                f"Grad-CAM could not hook layer {spec.layer!r}: {type(exc).__name__}: {exc}"
            ) from None
    return maps.detach()[:, 0].float().clamp_min(0)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x
