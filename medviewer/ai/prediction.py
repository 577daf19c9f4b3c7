"""What a model run yields while it works (Progress) and what it returns (Prediction).

:class:`Prediction` and :class:`ModelInfo` live in :mod:`medviewer.core.findings` (the findings
model the viewer and the reports share); they are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from medviewer.core.findings import ModelInfo, Prediction

__all__ = ["ModelInfo", "Prediction", "Progress"]


@dataclass(frozen=True)
class Progress:
    """How far a run is: `fraction` in [0, 1] and a short message for a status line."""

    fraction: float
    message: str
