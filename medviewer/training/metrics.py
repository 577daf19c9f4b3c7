"""Evaluation metrics of the demo models: Dice, detection, FROC, ROC AUC, calibration, bootstrap.

Label maps are numpy arrays indexed ``[slice, row, col]``; ``spacing`` is the voxel size
``(slice, row, col)`` in mm. Connected components use full connectivity (26 neighbours in 3D):
voxels sharing a face, an edge or a corner belong to the same component.

Only numpy and SimpleITK (imported lazily).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "FROC_RATES",
    "CaseCandidates",
    "Component",
    "DetectionResult",
    "Froc",
    "Interval",
    "ReliabilityBin",
    "bootstrap",
    "bootstrap_values",
    "detection_candidates",
    "dice",
    "expected_calibration_error",
    "froc",
    "gather",
    "heatmap_hit",
    "match_nodules",
    "nodule_components",
    "per_nodule_dice",
    "reliability_bins",
    "reliability_json",
    "roc_auc",
    "roc_points",
    "sensitivity_specificity",
    "summarise",
]

NODULE_LABEL = 3


@dataclass(frozen=True)
class Component:
    """One connected component (26-connectivity) of a label.

    Attributes
    ----------
    index : int
        1-based number. Components are numbered in raster order of their first voxel (the one
        with the lowest ``(slice, row, col)`` in lexicographic order).
    voxels : int
        Number of voxels.
    volume_mm3 : float
        ``voxels`` times the voxel volume ``spacing[0] * spacing[1] * spacing[2]``.
    equivalent_diameter_mm : float
        Diameter of the sphere of volume ``volume_mm3``: ``(6 * volume_mm3 / pi) ** (1 / 3)``.
    centroid_index : tuple of float
        Mean ``(slice, row, col)`` index of the component's voxels.
    bounding_box : tuple of slice
        Smallest index box ``(slices, rows, cols)`` holding the component, ends exclusive.
    """

    index: int
    voxels: int
    volume_mm3: float
    equivalent_diameter_mm: float
    centroid_index: tuple[float, float, float]
    bounding_box: tuple[slice, slice, slice]


@dataclass(frozen=True)
class DetectionResult:
    """Counts of :func:`match_nodules`.

    Attributes
    ----------
    true_positives : int
        Eligible truth nodules (equivalent diameter >= ``min_diameter_mm``) that share at least
        one voxel with a kept predicted component. Counted per truth nodule.
    false_negatives : int
        Eligible truth nodules that no kept predicted component touches.
    false_positives : int
        Kept predicted components that share no voxel with any truth nodule.
    ignored : int
        Kept predicted components that touch only truth nodules smaller than
        ``min_diameter_mm`` (neither true nor false positives).
    discarded : int
        Predicted components dropped before matching, their volume < ``min_candidate_mm3``.
    sensitivity : float
        ``true_positives / (true_positives + false_negatives)``; NaN with no eligible nodule.
    detected_diameters_mm : tuple of float
        Equivalent diameters of the detected eligible truth nodules, in truth component order.
    missed_diameters_mm : tuple of float
        Equivalent diameters of the missed eligible truth nodules, in truth component order.
    """

    true_positives: int
    false_negatives: int
    false_positives: int
    ignored: int
    discarded: int
    sensitivity: float
    detected_diameters_mm: tuple[float, ...]
    missed_diameters_mm: tuple[float, ...]


@dataclass(frozen=True)
class _Labelled:
    """Components of one label: their ids inside the label's bounding box, and every voxel."""

    shape: tuple[int, ...]
    offset: tuple[int, ...]  # start of the crop that `ids` covers
    ids: np.ndarray  # component id of each voxel of the crop, 0 elsewhere
    flat: np.ndarray  # ascending flat indices (in the full array) of the label's voxels
    owner: np.ndarray  # component id of each voxel of `flat`
    components: list[Component]

    def ids_in(self, box: tuple[slice, ...]) -> np.ndarray:
        """Component ids over the index box `box` of the full array (0 outside the crop)."""
        out = np.zeros(tuple(s.stop - s.start for s in box), dtype=self.ids.dtype)
        source, target = [], []
        for s, start, size in zip(box, self.offset, self.ids.shape, strict=True):
            lo, hi = max(s.start, start), min(s.stop, start + size)
            if lo >= hi:
                return out
            source.append(slice(lo - start, hi - start))
            target.append(slice(lo - s.start, hi - s.start))
        out[tuple(target)] = self.ids[tuple(source)]
        return out


# --------------------------------------------------------------------------------------------
# Overlap


def dice(pred: np.ndarray, truth: np.ndarray, label: int) -> float:
    """Dice coefficient of ``pred == label`` against ``truth == label``.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        Label maps of the same shape.
    label : int
        The label compared.

    Returns
    -------
    float
        ``2 |P & T| / (|P| + |T|)``; 1.0 when both masks are empty.
    """
    p, t = _same_shape(pred, truth)
    p, t = p == label, t == label
    total = np.count_nonzero(p) + np.count_nonzero(t)
    if total == 0:
        return 1.0
    return 2.0 * np.count_nonzero(p & t) / total


def nodule_components(
    labels: np.ndarray, spacing: Sequence[float], label: int = NODULE_LABEL
) -> list[Component]:
    """Connected components (26-connectivity) of ``labels == label``.

    Parameters
    ----------
    labels : numpy.ndarray
        3D label map ``[slice, row, col]``.
    spacing : sequence of float
        Voxel size ``(slice, row, col)`` in mm.
    label : int, optional
        The label whose components are wanted (3, nodule, by default).

    Returns
    -------
    list of Component
        In raster order of their first voxel; empty when the label is absent.
    """
    return _labelled(labels, spacing, label).components


def per_nodule_dice(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float],
    min_diameter_mm: float = 6.0,
    label: int = NODULE_LABEL,
) -> list[tuple[float, float]]:
    """Dice of each truth nodule against the prediction around it.

    For each truth component of equivalent diameter >= `min_diameter_mm`, the local box is its
    bounding box grown on each side, along each axis, by ``ceil(r / spacing) + 1`` voxels, where
    ``r`` is half its equivalent diameter (clipped to the array). Within that box, T is the
    nodule's voxels and P the voxels predicted `label` that belong to no OTHER truth component;
    the nodule's Dice is ``2 |P & T| / (|P| + |T|)``.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        3D label maps of the same shape.
    spacing : sequence of float
        Voxel size ``(slice, row, col)`` in mm.
    min_diameter_mm : float, optional
        Smallest equivalent diameter of the truth nodules scored.
    label : int, optional
        The nodule label.

    Returns
    -------
    list of tuple of float
        ``(equivalent diameter in mm, Dice)`` per scored nodule, in truth component order.
    """
    pred, truth = _same_shape(pred, truth)
    truth_components = _labelled(truth, spacing, label)
    scores = []
    for component in truth_components.components:
        if component.equivalent_diameter_mm < min_diameter_mm:
            continue
        box = _grown_box(component, spacing, truth.shape)
        ids = truth_components.ids_in(box)
        mine = ids == component.index
        predicted = (pred[box] == label) & ((ids == 0) | mine)
        overlap = np.count_nonzero(predicted & mine)
        total = np.count_nonzero(predicted) + np.count_nonzero(mine)
        scores.append((component.equivalent_diameter_mm, 2.0 * overlap / total))
    return scores


def match_nodules(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float],
    min_diameter_mm: float = 6.0,
    min_candidate_mm3: float = 0.0,
    label: int = NODULE_LABEL,
) -> DetectionResult:
    """Match predicted nodule components to truth nodule components by overlap.

    Predicted components of volume < `min_candidate_mm3` are discarded first. A truth nodule
    with equivalent diameter >= `min_diameter_mm` is eligible; it is detected when a kept
    predicted component shares at least one voxel with it (one predicted component may detect
    several nodules). A kept predicted component touching no truth nodule is a false positive;
    one touching only nodules smaller than `min_diameter_mm` is ignored.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        3D label maps of the same shape.
    spacing : sequence of float
        Voxel size ``(slice, row, col)`` in mm.
    min_diameter_mm : float, optional
        Smallest equivalent diameter of an eligible truth nodule.
    min_candidate_mm3 : float, optional
        Smallest volume of a predicted component that is kept.
    label : int, optional
        The nodule label in both maps.

    Returns
    -------
    DetectionResult
        The counts, the sensitivity and the detected and missed diameters.
    """
    pred, truth = _same_shape(pred, truth)
    p, t = _labelled(pred, spacing, label), _labelled(truth, spacing, label)
    kept = np.array([False] + [c.volume_mm3 >= min_candidate_mm3 for c in p.components])
    eligible = np.array(
        [False] + [c.equivalent_diameter_mm >= min_diameter_mm for c in t.components]
    )
    pairs_p, pairs_t = _overlapping_pairs(p, t, kept)
    detected = np.zeros(eligible.size, dtype=bool)
    detected[pairs_t[eligible[pairs_t]]] = True
    touches_any = np.zeros(kept.size, dtype=bool)
    touches_any[pairs_p] = True
    touches_eligible = np.zeros(kept.size, dtype=bool)
    touches_eligible[pairs_p[eligible[pairs_t]]] = True
    true_positives = int(np.count_nonzero(detected))
    false_negatives = int(np.count_nonzero(eligible & ~detected))
    diameters = [0.0] + [c.equivalent_diameter_mm for c in t.components]
    eligible_ids = np.flatnonzero(eligible)
    eligible_count = true_positives + false_negatives
    return DetectionResult(
        true_positives=true_positives,
        false_negatives=false_negatives,
        false_positives=int(np.count_nonzero(kept & ~touches_any)),
        ignored=int(np.count_nonzero(kept & touches_any & ~touches_eligible)),
        discarded=len(p.components) - int(np.count_nonzero(kept)),
        sensitivity=true_positives / eligible_count if eligible_count else math.nan,
        detected_diameters_mm=tuple(diameters[i] for i in eligible_ids if detected[i]),
        missed_diameters_mm=tuple(diameters[i] for i in eligible_ids if not detected[i]),
    )


def _overlapping_pairs(
    p: _Labelled, t: _Labelled, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (kept predicted id, truth id) pairs sharing at least one voxel."""
    _, in_p, in_t = np.intersect1d(p.flat, t.flat, assume_unique=True, return_indices=True)
    pred_ids, truth_ids = p.owner[in_p].astype(np.int64), t.owner[in_t].astype(np.int64)
    keep = kept[pred_ids]
    stride = len(t.components) + 1
    codes = np.unique(pred_ids[keep] * stride + truth_ids[keep])
    return codes // stride, codes % stride


# --------------------------------------------------------------------------------------------
# Components


def _labelled(labels: np.ndarray, spacing: Sequence[float], label: int) -> _Labelled:
    """Label the components of ``labels == label`` inside the label's bounding box."""
    mask = np.asarray(labels) == label
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D label map [slice, row, col], got shape {mask.shape}")
    spacing = _spacing(spacing, 3)
    box = _bounding_box(mask)
    if box is None:
        empty = np.zeros(0, dtype=np.int64)
        return _Labelled(mask.shape, (0, 0, 0), np.zeros((0, 0, 0), np.int32), empty, empty, [])
    offset = tuple(s.start for s in box)
    ids, local, owner = _connected_components(mask[box])
    coords = np.unravel_index(local, ids.shape)
    coords = tuple(c + o for c, o in zip(coords, offset, strict=True))
    flat = np.ravel_multi_index(coords, mask.shape)
    components = _component_stats(owner, coords, spacing)
    return _Labelled(mask.shape, offset, ids, flat, owner, components)


def _connected_components(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids numbered in raster order of first voxel, flat indices of voxels, their ids)."""
    import SimpleITK as sitk

    image = sitk.ConnectedComponent(sitk.GetImageFromArray(crop.astype(np.uint8)), True)
    raw = sitk.GetArrayFromImage(image)
    local = np.flatnonzero(raw)
    present, first, inverse = np.unique(raw.ravel()[local], return_index=True, return_inverse=True)
    renumber = np.empty(present.size, dtype=np.int32)
    renumber[np.argsort(first, kind="stable")] = np.arange(1, present.size + 1, dtype=np.int32)
    table = np.zeros(int(present[-1]) + 1, dtype=np.int32)
    table[present] = renumber
    return table[raw], local, renumber[inverse]


def _component_stats(
    owner: np.ndarray, coords: tuple[np.ndarray, ...], spacing: tuple[float, ...]
) -> list[Component]:
    """Size, centroid and bounding box of each component id 1..n from its voxels."""
    n = int(owner.max())
    counts = np.bincount(owner, minlength=n + 1)[1:]
    centroids = [np.bincount(owner, weights=c, minlength=n + 1)[1:] / counts for c in coords]
    order = np.argsort(owner, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lows = [np.minimum.reduceat(c[order], starts) for c in coords]
    highs = [np.maximum.reduceat(c[order], starts) for c in coords]
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    components = []
    for i in range(n):
        volume = float(counts[i]) * voxel_mm3
        components.append(
            Component(
                index=i + 1,
                voxels=int(counts[i]),
                volume_mm3=volume,
                equivalent_diameter_mm=(6.0 * volume / math.pi) ** (1.0 / 3.0),
                centroid_index=tuple(float(c[i]) for c in centroids),  # type: ignore[arg-type]
                bounding_box=tuple(
                    slice(int(lo[i]), int(hi[i]) + 1) for lo, hi in zip(lows, highs, strict=True)
                ),  # type: ignore[arg-type]
            )
        )
    return components


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest index box holding every True of `mask`; None when there is none."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _grown_box(
    component: Component, spacing: Sequence[float], shape: tuple[int, ...]
) -> tuple[slice, ...]:
    """`component`'s bounding box grown by its equivalent radius plus one voxel, clipped."""
    radius = component.equivalent_diameter_mm / 2.0
    box = []
    for s, step, size in zip(component.bounding_box, _spacing(spacing, 3), shape, strict=True):
        margin = math.ceil(radius / step) + 1
        box.append(slice(max(s.start - margin, 0), min(s.stop + margin, size)))
    return tuple(box)


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"prediction shape {a.shape} differs from truth shape {b.shape}")
    return a, b


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be {ndim} positive numbers (mm), got {spacing!r}")
    return values


# --------------------------------------------------------------------------------------------
# Classification


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve, as the Mann-Whitney U statistic over ``n_pos * n_neg``.

    Equals the fraction of (positive, negative) pairs where the positive scores higher, a tied
    pair counting one half. Computed from average ranks (ties share their mean rank).

    Parameters
    ----------
    scores : array_like of float
        Finite scores, higher meaning more likely positive.
    labels : array_like of bool or {0, 1}
        Truth, 1 (True) for positive.

    Returns
    -------
    float
        The AUC in [0, 1].

    Raises
    ------
    ValueError
        When a class is absent, the lengths differ, a score is not finite or a label is not 0/1.
    """
    s, y = _binary(scores, labels)
    n_pos, n_neg = _class_counts(y, "roc_auc")
    u = _average_ranks(s)[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_points(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve: sensitivity and specificity at every distinct threshold.

    A case is called positive when its score >= the threshold. The thresholds are ``+inf``
    (nothing positive) followed by the distinct scores in decreasing order (the last calls
    everything positive). The trapezoidal area under (1 - specificity, sensitivity) equals
    :func:`roc_auc`.

    Parameters
    ----------
    scores : array_like of float
        Finite scores.
    labels : array_like of bool or {0, 1}
        Truth, 1 (True) for positive.

    Returns
    -------
    thresholds, sensitivity, specificity : numpy.ndarray
        Float arrays of equal length.

    Raises
    ------
    ValueError
        As :func:`roc_auc`.
    """
    s, y = _binary(scores, labels)
    n_pos, n_neg = _class_counts(y, "roc_points")
    values, inverse = np.unique(s, return_inverse=True)
    positives = np.bincount(inverse, weights=y, minlength=values.size)[::-1]
    negatives = np.bincount(inverse, weights=~y, minlength=values.size)[::-1]
    thresholds = np.concatenate(([np.inf], values[::-1]))
    sensitivity = np.concatenate(([0.0], np.cumsum(positives) / n_pos))
    specificity = np.concatenate(([1.0], 1.0 - np.cumsum(negatives) / n_neg))
    return thresholds, sensitivity, specificity


def sensitivity_specificity(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, threshold: float
) -> tuple[float, float]:
    """Sensitivity and specificity when a case is called positive at score >= `threshold`.

    Parameters
    ----------
    scores : array_like of float
        Finite scores.
    labels : array_like of bool or {0, 1}
        Truth, 1 (True) for positive.
    threshold : float
        The decision threshold.

    Returns
    -------
    tuple of float
        ``(TP / (TP + FN), TN / (TN + FP))``; either is NaN when its class is absent.
    """
    s, y = _binary(scores, labels)
    called = s >= threshold
    n_pos, n_neg = int(np.count_nonzero(y)), int(np.count_nonzero(~y))
    tp, tn = int(np.count_nonzero(called & y)), int(np.count_nonzero(~called & ~y))
    return (tp / n_pos if n_pos else math.nan, tn / n_neg if n_neg else math.nan)


def _binary(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (found NaN or infinity)")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be booleans or 0/1")
        y = y == 1
    return s, y


def _class_counts(y: np.ndarray, name: str) -> tuple[int, int]:
    n_pos, n_neg = int(np.count_nonzero(y)), int(np.count_nonzero(~y))
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"{name} needs both classes: got {n_pos} positive and {n_neg} negative labels"
        )
    return n_pos, n_neg


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return (last - (counts - 1) / 2.0)[inverse]


# --------------------------------------------------------------------------------------------
# Heatmaps and summaries


def heatmap_hit(
    heatmap: np.ndarray,
    spacing_rc: Sequence[float],
    target_rc: Sequence[float],
    radius_mm: float,
) -> tuple[bool, float]:
    """Whether a 2D heatmap's peak lies within `radius_mm` of a target.

    The peak is the first maximum in C order (``numpy.argmax``), at its pixel's integer
    ``(row, col)``; the distance to the fractional ``target_rc`` is
    ``hypot(d_row * spacing_rc[0], d_col * spacing_rc[1])``.

    Parameters
    ----------
    heatmap : numpy.ndarray
        2D map ``[row, col]`` without NaN.
    spacing_rc : sequence of float
        Pixel size ``(row spacing, col spacing)`` in mm.
    target_rc : sequence of float
        Target ``(row, col)`` in fractional pixels.
    radius_mm : float
        Hit radius; a peak at exactly this distance is a hit.

    Returns
    -------
    tuple of (bool, float)
        Whether it is a hit, and the peak's distance to the target in mm.
    """
    h = np.asarray(heatmap)
    if h.ndim != 2 or h.size == 0:
        raise ValueError(f"expected a non-empty 2D heatmap, got shape {h.shape}")
    if np.isnan(h).any():
        raise ValueError("heatmap contains NaN")
    row_mm, col_mm = _spacing(spacing_rc, 2)
    row, col = np.unravel_index(int(np.argmax(h)), h.shape)
    distance = math.hypot((row - target_rc[0]) * row_mm, (col - target_rc[1]) * col_mm)
    return bool(distance <= radius_mm), float(distance)


def summarise(values: Iterable[float]) -> dict[str, float]:
    """Count, mean, median, minimum and maximum of `values`, NaNs left out.

    Parameters
    ----------
    values : iterable of float
        The values; NaNs are dropped (and not counted).

    Returns
    -------
    dict of str to float
        Keys ``n`` (int: the number of non-NaN values), ``mean``, ``median``, ``min`` and ``max``;
        the statistics are NaN when no value is left (``n == 0``).
    """
    v = np.asarray(list(values), dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"n": 0, "mean": math.nan, "median": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


# --------------------------------------------------------------------------------------------
# Case-level bootstrap

#: Resamples drawn by :func:`bootstrap`.
BOOTSTRAP_RESAMPLES = 2000
#: Seed of the resampling (numpy ``default_rng``): the same cases give the same interval.
BOOTSTRAP_SEED = 0
_PERCENTILES = (2.5, 97.5)  # a 95 % percentile interval

Statistic = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A statistic over cases and its 95 % case-level percentile bootstrap interval.

    Attributes
    ----------
    value : float
        The statistic on all cases; NaN when it is undefined there.
    low, high : float
        The 2.5th and 97.5th percentiles of the statistic over the kept resamples (numpy's
        linear interpolation between order statistics); NaN when `value` is NaN or no resample
        was kept.
    resamples : int
        Resamples drawn.
    skipped : int
        Resamples on which the statistic was undefined (NaN), e.g. an AUC whose resample holds
        one class only; they are left out of the percentiles.
    """

    value: float
    low: float
    high: float
    resamples: int
    skipped: int

    def to_json(self, digits: int = 4) -> dict[str, Any]:
        """``{"value": v, "ci95": [low, high]}``, rounded to `digits`, None for NaN.

        ``"ci95_skipped"`` (the number of skipped resamples) is added when it is not 0.
        """
        ci = None if math.isnan(self.low) else [_rounded(self.low, digits),
                                                 _rounded(self.high, digits)]
        out: dict[str, Any] = {"value": _rounded(self.value, digits), "ci95": ci}
        if self.skipped:
            out["ci95_skipped"] = self.skipped
        return out


def bootstrap_values(
    statistic: Statistic, n: int, *, resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, np.ndarray]:
    """A statistic on all `n` cases and on case resamples drawn with replacement.

    Parameters
    ----------
    statistic : callable
        Maps an int array of case indices (repeats allowed, length `n`) to a float, NaN when
        undefined on those cases. The cases are whatever the caller indexes: a radiograph, a
        CT series with all its slices or all its nodules (a cluster bootstrap).
    n : int
        Number of cases.
    resamples : int, optional
        Number of resamples.
    seed : int, optional
        Seed of ``numpy.random.default_rng``; resample ``r`` is the ``r``-th draw of
        ``rng.integers(0, n, size=n)``.

    Returns
    -------
    tuple of (float, numpy.ndarray)
        The statistic on ``arange(n)``, and its value on each resample (NaN kept); NaN and an
        empty array when `n` is 0.
    """
    if n == 0:
        return math.nan, np.empty(0)
    value = float(statistic(np.arange(n)))
    rng = np.random.default_rng(seed)
    values = np.array([float(statistic(rng.integers(0, n, size=n))) for _ in range(resamples)])
    return value, values


def bootstrap(
    statistic: Statistic, n: int, *, resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """A statistic with its 95 % percentile bootstrap interval over `n` cases.

    Parameters are those of :func:`bootstrap_values`. Resamples on which the statistic is NaN
    are skipped and counted (:attr:`Interval.skipped`).

    Returns
    -------
    Interval
    """
    value, values = bootstrap_values(statistic, n, resamples=resamples, seed=seed)
    kept = values[~np.isnan(values)]
    low = high = math.nan
    if not math.isnan(value) and kept.size:
        low, high = (float(v) for v in np.percentile(kept, _PERCENTILES))
    return Interval(value, low, high, int(values.size), int(values.size - kept.size))


def gather(groups: Sequence[np.ndarray], index: np.ndarray) -> np.ndarray:
    """The groups picked by `index` (repeats allowed), concatenated in that order.

    With one group per case (a CT series' slices, a case's nodules), a statistic of
    ``gather(groups, index)`` resamples whole cases: :func:`bootstrap` as a cluster bootstrap.

    Parameters
    ----------
    groups : sequence of numpy.ndarray
        One 1D array per case (possibly empty).
    index : numpy.ndarray
        Case indices.

    Returns
    -------
    numpy.ndarray
        1D; empty (float64) when nothing is picked.
    """
    picked = [np.asarray(groups[i]).ravel() for i in index]
    return np.concatenate(picked) if picked else np.empty(0)


def _rounded(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else round(float(value), digits)


# --------------------------------------------------------------------------------------------
# FROC (free-response ROC), as the LUNA16 challenge reports detection

#: False positives per case at which the FROC is read; their mean sensitivity is the CPM.
FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class CaseCandidates:
    """One case's scored detection candidates (:func:`detection_candidates`).

    Attributes
    ----------
    nodule_scores : tuple of float
        Per eligible truth nodule, in truth component order: the highest score among the kept
        candidates touching it, ``-inf`` when none does (missed at every threshold).
    false_positive_scores : tuple of float
        Scores of the kept candidates touching no truth nodule, in candidate order.
    ignored : int
        Kept candidates touching only truth nodules under the minimum diameter.
    discarded : int
        Candidates under the minimum volume, dropped before matching.
    """

    nodule_scores: tuple[float, ...]
    false_positive_scores: tuple[float, ...]
    ignored: int = 0
    discarded: int = 0


def detection_candidates(
    pred: np.ndarray,
    truth: np.ndarray,
    probability: np.ndarray,
    spacing: Sequence[float],
    min_diameter_mm: float = 6.0,
    min_candidate_mm3: float = 0.0,
    label: int = NODULE_LABEL,
) -> CaseCandidates:
    """Score each predicted component and match it to the truth as :func:`match_nodules` does.

    A candidate is a predicted component of `label` (26-connectivity) of volume >=
    `min_candidate_mm3`; its score is the MAXIMUM of `probability` over its voxels. A
    candidate sharing a voxel with an eligible truth nodule (equivalent diameter >=
    `min_diameter_mm`) hits it; a nodule hit by several candidates takes the highest score and
    the other candidates are neither true nor false positives (as in LUNA16). A candidate
    touching no truth nodule is a false positive; one touching only smaller nodules is
    ignored. At the lowest threshold the counts equal :func:`match_nodules`'.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        3D label maps of the same shape.
    probability : numpy.ndarray
        The model's `label` probability per voxel, of the same shape (any strides).
    spacing : sequence of float
        Voxel size ``(slice, row, col)`` in mm.
    min_diameter_mm, min_candidate_mm3 : float, optional
        As :func:`match_nodules`.
    label : int, optional
        The nodule label in both maps.

    Returns
    -------
    CaseCandidates
    """
    pred, truth = _same_shape(pred, truth)
    if np.shape(probability) != pred.shape:
        raise ValueError(f"probability shape {np.shape(probability)} differs from {pred.shape}")
    p, t = _labelled(pred, spacing, label), _labelled(truth, spacing, label)
    kept = np.array([False] + [c.volume_mm3 >= min_candidate_mm3 for c in p.components])
    eligible = np.array(
        [False] + [c.equivalent_diameter_mm >= min_diameter_mm for c in t.components]
    )
    scores = _component_maxima(p, probability)
    pairs_p, pairs_t = _overlapping_pairs(p, t, kept)
    hits = eligible[pairs_t]
    best = np.full(eligible.size, -np.inf)
    np.maximum.at(best, pairs_t[hits], scores[pairs_p[hits]])
    touches_any = np.zeros(kept.size, dtype=bool)
    touches_any[pairs_p] = True
    touches_eligible = np.zeros(kept.size, dtype=bool)
    touches_eligible[pairs_p[hits]] = True
    return CaseCandidates(
        nodule_scores=tuple(float(s) for s in best[eligible]),
        false_positive_scores=tuple(float(scores[i]) for i in np.flatnonzero(kept & ~touches_any)),
        ignored=int(np.count_nonzero(kept & touches_any & ~touches_eligible)),
        discarded=len(p.components) - int(np.count_nonzero(kept)),
    )


def _component_maxima(p: _Labelled, probability: np.ndarray) -> np.ndarray:
    """The maximum of `probability` over each component (index 0 unused, -inf)."""
    values = np.asarray(probability)[np.unravel_index(p.flat, p.shape)].astype(np.float64)
    out = np.full(len(p.components) + 1, -np.inf)
    np.maximum.at(out, p.owner, values)
    return out


@dataclass(frozen=True)
class Froc:
    """A free-response ROC: candidates are kept when their score >= a threshold.

    Attributes
    ----------
    thresholds : numpy.ndarray
        ``+inf`` (nothing kept), then each distinct finite candidate score, decreasing.
    sensitivity : numpy.ndarray
        Per threshold: the fraction of eligible truth nodules with a score >= it; NaN with no
        nodule.
    false_positives : numpy.ndarray
        Per threshold: the number of false-positive candidates with a score >= it (int).
    nodules, cases : int
        Eligible truth nodules and cases.
    """

    thresholds: np.ndarray
    sensitivity: np.ndarray
    false_positives: np.ndarray
    nodules: int
    cases: int

    @property
    def false_positives_per_case(self) -> np.ndarray:
        """``false_positives / cases`` per threshold."""
        return self.false_positives / max(self.cases, 1)

    def sensitivity_at(self, rate: float) -> float:
        """The highest sensitivity of an operating point with at most `rate` FPs per case.

        A step function of `rate`, not interpolated (LUNA16 interpolates linearly between the
        operating points, which reads a little higher between them). Beyond the last operating
        point (every candidate kept) it stays at that point's sensitivity. NaN with no nodule.
        """
        within = self.false_positives <= rate * self.cases
        return float(self.sensitivity[within].max())

    def cpm(self, rates: Sequence[float] = FROC_RATES) -> float:
        """Competition performance metric: the mean of :meth:`sensitivity_at` over `rates`."""
        return float(np.mean([self.sensitivity_at(r) for r in rates]))


def froc(cases: Sequence[CaseCandidates]) -> Froc:
    """The FROC of scored candidates pooled over `cases`.

    Parameters
    ----------
    cases : sequence of CaseCandidates
        One per case (a case without nodules or candidates counts in the per-case rate).

    Returns
    -------
    Froc
    """
    nodules = np.sort([s for c in cases for s in c.nodule_scores])
    fps = np.sort([s for c in cases for s in c.false_positive_scores])
    finite = np.concatenate((nodules[np.isfinite(nodules)], fps))
    thresholds = np.concatenate(([np.inf], np.unique(finite)[::-1]))
    found = nodules.size - np.searchsorted(nodules, thresholds, side="left")
    sensitivity = found / nodules.size if nodules.size else np.full(thresholds.size, math.nan)
    false_positives = fps.size - np.searchsorted(fps, thresholds, side="left")
    return Froc(thresholds, sensitivity, false_positives, int(nodules.size), len(cases))


# --------------------------------------------------------------------------------------------
# Calibration


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram of positive-class probabilities.

    Attributes
    ----------
    low, high : float
        The bin's probability range ``[low, high)`` (the last bin includes 1).
    count : int
        Samples whose probability falls in it.
    confidence : float
        Their mean probability; NaN when the bin is empty.
    accuracy : float
        The fraction of them that are positive; NaN when the bin is empty.
    """

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


def reliability_json(bins: Sequence[ReliabilityBin], digits: int = 4) -> dict[str, Any]:
    """Reliability bins as JSON columns: ``edges`` (n + 1), ``count``, ``confidence`` and
    ``accuracy`` (n each; None for an empty bin's confidence and accuracy)."""
    return {
        "edges": [round(b.low, 6) for b in bins[:1]] + [round(b.high, 6) for b in bins],
        "count": [b.count for b in bins],
        "confidence": [_rounded(b.confidence, digits) for b in bins],
        "accuracy": [_rounded(b.accuracy, digits) for b in bins],
    }


def reliability_bins(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
    bins: int = 10,
) -> list[ReliabilityBin]:
    """Reliability diagram of positive-class probabilities in `bins` equal-width bins.

    Sample ``i`` goes to bin ``min(floor(bins * p_i), bins - 1)``.

    Parameters
    ----------
    probabilities : array_like of float
        Positive-class probabilities in [0, 1].
    labels : array_like of bool or {0, 1}
        Truth, 1 (True) for positive.
    bins : int, optional
        Number of bins over [0, 1].

    Returns
    -------
    list of ReliabilityBin
        `bins` bins in increasing order, empty ones included.
    """
    p, y = _binary(probabilities, labels)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    confidence = np.bincount(index, weights=p, minlength=bins)
    positives = np.bincount(index, weights=y, minlength=bins)
    out = []
    for k in range(bins):
        n = int(counts[k])
        out.append(ReliabilityBin(k / bins, (k + 1) / bins, n,
                                  confidence[k] / n if n else math.nan,
                                  positives[k] / n if n else math.nan))
    return out


def expected_calibration_error(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
    bins: int = 10,
) -> float:
    """Expected calibration error of positive-class probabilities.

    ``sum_k (n_k / N) |accuracy_k - confidence_k|`` over the :func:`reliability_bins`
    (equal-width bins, each weighted by its share of the samples).

    Parameters
    ----------
    probabilities, labels, bins
        As :func:`reliability_bins`.

    Returns
    -------
    float
        In [0, 1]; NaN with no sample.
    """
    table = reliability_bins(probabilities, labels, bins)
    total = sum(b.count for b in table)
    if total == 0:
        return math.nan
    return float(sum(b.count * abs(b.accuracy - b.confidence) for b in table if b.count) / total)
