"""Which models suit a series, and why the others do not.

One rule, two wordings: :func:`why_not_applicable` gives the AI panel's model list a short
reason, :func:`check_applicable` (the runner's check before a run) raises it as a sentence and
returns the warnings a run that goes ahead carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from medviewer.ai.model_card import ModelCard
from medviewer.ai.transforms import channels_of
from medviewer.core.errors import InferenceError
from medviewer.core.volume import Volume


@dataclass(frozen=True)
class Mismatch:
    """Why a model cannot run on a series.

    Attributes
    ----------
    reason : str
        Short, for a list of models ("for MR; this series is CT").
    message : str
        A sentence for an error ("Liver is for MR images; this series is CT").
    """

    reason: str
    message: str


def mismatch(card: ModelCard, volume: Volume) -> Mismatch | None:
    """Why `card` cannot run on `volume`, or None when it can.

    A promptable (interactive) model never runs on its own: it needs prompts.
    A model suits a series when the series' modality is one of the card's, its channel count
    matches, and a 3D model gets a volume (at least two voxels along each axis). 2D models run
    on single images and slice by slice on volumes. A series without a modality is allowed
    (the run warns).
    """
    if card.task == "interactive":
        return Mismatch("runs on clicks: the Smart tool (S)",
                        f"{card.name} is a promptable model: it runs on your clicks, with the "
                        f"Smart tool (key S) or `medviewer segment-click --engine {card.id}`")
    modality = volume.metadata.modality.upper()
    if modality and modality not in card.modalities:
        modalities = "/".join(card.modalities)
        return Mismatch(f"for {modalities}; this series is {modality}",
                        f"{card.name} is for {modalities} images; this series is {modality}")
    channels = channels_of(volume.array)
    if channels != card.input.channels:
        kind = "colour (3 channels)" if channels == 3 else "greyscale (1 channel)"
        return Mismatch(
            f"needs {card.input.channels} channel(s); this series has {channels}",
            f"the model expects {card.input.channels} channel(s); this series is {kind}",
        )
    if card.input.dims == 3 and min(volume.shape) < 2:
        return Mismatch("a 3D model; this series is a single image",
                        f"{card.name} is a 3D model; this series is a single image")
    return None


def why_not_applicable(card: ModelCard, volume: Volume) -> str:
    """An empty string when `card` can run on `volume`, else the short reason it cannot."""
    found = mismatch(card, volume)
    return found.reason if found is not None else ""


def check_applicable(card: ModelCard, volume: Volume) -> list[str]:
    """Check that `volume` suits `card` before a run.

    Returns
    -------
    list of str
        Warnings: a series without a modality, or without patient orientation.

    Raises
    ------
    InferenceError
        When the model cannot run on the series (:func:`mismatch`).
    """
    found = mismatch(card, volume)
    if found is not None:
        raise InferenceError(found.message)
    warnings: list[str] = []
    if not volume.metadata.modality:
        warnings.append(f"the series has no modality; {card.id} is for "
                        f"{'/'.join(card.modalities)}")
    if not volume.metadata.positioned:
        warnings.append("the series has no patient orientation: the model sees the pixel "
                        "array as stored (rows toward P, columns toward L)")
    return warnings
