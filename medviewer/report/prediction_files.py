"""A model run's files: ``result.json`` and its NIfTI volumes, written all or nothing (what
``medviewer infer`` and ``medviewer batch`` write for each series)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medviewer.ai.prediction import Prediction
    from medviewer.report.deidentify import Deidentifier


def write_prediction(
    prediction: Prediction, out: Path, deid: Deidentifier | None = None
) -> dict[str, Any]:
    """Write ``result.json`` and the NIfTI outputs into `out`; all or nothing.

    Files are written into a hidden folder beside them and moved in only when every one was
    written, so a failure leaves `out` as it was; what killed runs left in `out` is removed
    first. With `deid` (a Deidentifier), result.json is de-identified with it.
    """
    from medviewer.core.staging import StagingFolder
    from medviewer.report.tabular import write_volume

    with StagingFolder(out) as staging:
        result = prediction.to_json() if deid is None else deid.document(prediction.to_json())
        arrays = {"labels.nii.gz": prediction.label_map, "heatmap.nii.gz": prediction.heatmap,
                  "probabilities.nii.gz": prediction.probabilities}
        for name, array in arrays.items():
            if array is not None:
                write_volume(array, prediction.affine, staging.path / name)
                result.setdefault("files", []).append(name)
        (staging.path / "result.json").write_text(json.dumps(result, indent=2))
        written = sorted(staging.path.iterdir(), key=lambda p: p.name == "result.json")
        staging.move_into_place([(item, out / item.name) for item in written])
    return result
