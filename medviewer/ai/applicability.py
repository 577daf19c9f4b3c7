"""Which models suit a series, and why the others do not (for the AI panel's model list)."""

from __future__ import annotations

from medviewer.ai.model_card import ModelCard
from medviewer.ai.transforms import channels_of
from medviewer.core.volume import Volume


def why_not_applicable(card: ModelCard, volume: Volume) -> str:
    """An empty string when `card` can run on `volume`, else the reason it cannot.

    A model suits a series when the series' modality is one of the card's, its channel count
    matches, and a 3D model gets a volume (more than one slice). 2D models run on single
    images and slice by slice on volumes. A series without a modality is allowed (the runner
    warns).
    """
    modality = volume.metadata.modality.upper()
    if modality and modality not in card.modalities:
        return f"for {'/'.join(card.modalities)}; this series is {modality}"
    channels = channels_of(volume.array)
    if channels != card.input.channels:
        return f"needs {card.input.channels} channel(s); this series has {channels}"
    if card.input.dims == 3 and volume.array.shape[0] < 2:
        return "a 3D model; this series is a single image"
    return ""
