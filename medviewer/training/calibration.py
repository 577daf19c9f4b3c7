"""Temperature and Platt scaling of the demo classifiers, fitted on their validation seeds.

A two-class softmax of logits ``(l0, l1)`` divided by a temperature ``T`` gives
``p(nodule) = sigmoid((l1 - l0) / T)``. The runner reports the softmax probabilities, not the
logits; the logit difference is recovered exactly from them as
``log p(nodule) - log p(normal)`` (:func:`logit_difference`), so fitting needs no access to the
network's raw output. ``T`` minimises the mean negative log-likelihood of the validation
samples (:func:`fit_temperature`, a golden-section search on ``log T``: the likelihood is
convex in ``1 / T``, so it has one minimum), and is written into the card as
``output.temperature``, which :func:`medviewer.ai.decisions.activate` applies to every run.

:func:`calibrate` fits Platt scaling, ``sigmoid(z / T + b)`` (:func:`fit_platt`), and stores
``b`` as ``output.bias = [0, b]``: a model trained on balanced batches carries their prior as
an offset in its logits, which no temperature removes (the slice classifier's ECE stayed at
0.09 with one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.ai.model_card import ModelCard, load_card
from medviewer.core.staging import staged_file
from medviewer.training import evaluate, metrics
from medviewer.training.specs import RECIPES

Log = Callable[[str], None]
#: The range searched for T.
TEMPERATURE_BOUNDS = (0.05, 20.0)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_TINY = float(np.finfo(np.float32).smallest_subnormal)  # softmax outputs are float32
CLASSIFIERS = {
    "demo-ct-nodule-cls": ("slice", evaluate.slice_classifier_cases),
    "demo-cxr-nodule-cls": ("radiograph", evaluate.radiograph_cases),
}


def logit_difference(negative: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """``l1 - l0`` of a two-class softmax from its probabilities ``(p0, p1)``.

    Exact: ``log p1 - log p0 = l1 - l0`` whatever the softmax's normaliser. A probability
    that underflowed to 0 is taken as the smallest float32 (``|l1 - l0|`` about 103).

    Parameters
    ----------
    negative, positive : numpy.ndarray
        The probabilities of the first and the second class, per sample.

    Returns
    -------
    numpy.ndarray
        float64 logit differences.
    """
    p0 = np.maximum(np.asarray(negative, dtype=np.float64), _TINY)
    p1 = np.maximum(np.asarray(positive, dtype=np.float64), _TINY)
    return np.log(p1) - np.log(p0)


def binary_nll(
    logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, bias: float = 0.0
) -> float:
    """Mean negative log-likelihood of ``sigmoid(logits / temperature + bias)`` for `labels`.

    Parameters
    ----------
    logits : numpy.ndarray
        Logit differences ``l1 - l0``.
    labels : numpy.ndarray
        True (1) for the second class.
    temperature : float, optional
    bias : float, optional
        Added after the division (Platt scaling).

    Returns
    -------
    float
        In nats per sample; NaN with no sample.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature + bias
    sign = np.where(np.asarray(labels, dtype=bool), 1.0, -1.0)
    return float(np.mean(np.logaddexp(0.0, -sign * z))) if z.size else math.nan


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tolerance: float = 1e-7,
) -> float:
    """The temperature in `bounds` that minimises :func:`binary_nll`.

    Golden-section search on ``log T`` down to an interval of `tolerance` (deterministic).

    Parameters
    ----------
    logits, labels : numpy.ndarray
        As :func:`binary_nll`; at least one sample.
    bounds : tuple of float, optional
        Smallest and largest temperature; a minimum outside is clipped to them.
    tolerance : float, optional
        Width of the final ``log T`` interval.

    Returns
    -------
    float
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=bool)
    if logits.size == 0 or logits.shape != labels.shape:
        raise ValueError(f"need logits and labels of one shape, got {logits.shape} and "
                         f"{labels.shape}")

    def nll(u: float) -> float:
        return binary_nll(logits, labels, math.exp(u))

    a, b = math.log(bounds[0]), math.log(bounds[1])
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > tolerance:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2.0)


def fit_platt(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    ridge: float = 1e-6, steps: int = 100,
) -> tuple[float, float]:
    """Platt scaling: the temperature and bias minimising :func:`binary_nll`.

    ``p = sigmoid(z / T + b)`` is a logistic regression on the logit, so the likelihood is
    convex in ``(1 / T, b)``: Newton's method from ``(1, 0)`` (a `ridge` keeps separable data
    finite). A temperature outside `bounds` is clipped and ``b`` refitted with it.

    Parameters
    ----------
    logits, labels : numpy.ndarray
        As :func:`binary_nll`; at least one sample.
    bounds : tuple of float, optional
        Smallest and largest temperature.
    ridge, steps : optional
        L2 weight on ``(1 / T - 1, b)`` and the most Newton steps.

    Returns
    -------
    tuple of float
        ``(T, b)``.
    """
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if z.size == 0 or z.shape != y.shape:
        raise ValueError(f"need logits and labels of one shape, got {z.shape} and {y.shape}")
    slope, bias = _newton(z, y, np.array([1.0, 0.0]), ridge, steps, fit_slope=True)
    low, high = 1.0 / bounds[1], 1.0 / bounds[0]
    if not low <= slope <= high:
        slope = float(np.clip(slope, low, high))
        slope, bias = _newton(z, y, np.array([slope, bias]), ridge, steps, fit_slope=False)
    return 1.0 / slope, bias


def _newton(z: np.ndarray, y: np.ndarray, start: np.ndarray, ridge: float, steps: int, *,
            fit_slope: bool) -> tuple[float, float]:
    """Damped Newton's method on the mean NLL of ``sigmoid(a z + b)`` over ``(a, b)`` or
    ``b`` (each step halved until the objective falls)."""
    features = np.stack([z, np.ones_like(z)], axis=1)
    weights, prior = start.copy(), np.array([1.0, 0.0])
    free = [0, 1] if fit_slope else [1]

    def objective(w: np.ndarray) -> float:
        margin = (features @ w) * np.where(y > 0, 1.0, -1.0)
        return float(np.mean(np.logaddexp(0.0, -margin))
                     + ridge / 2 * np.sum((w - prior) ** 2))

    current = objective(weights)
    for _ in range(steps):
        p = 0.5 * (1.0 + np.tanh(0.5 * (features @ weights)))  # sigmoid, no overflow
        gradient = features.T @ (p - y) / z.size + ridge * (weights - prior)
        hessian = (features.T * (p * (1.0 - p))) @ features / z.size + ridge * np.eye(2)
        step = np.zeros(2)
        step[free] = np.linalg.solve(hessian[np.ix_(free, free)], gradient[free])
        for _ in range(50):
            trial = objective(weights - step)
            if trial <= current:
                break
            step /= 2.0
        weights, current = weights - step, min(trial, current)
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(weights[0]), float(weights[1])


def calibrate(
    model_id: str,
    seeds: Iterable[int] | None = None,
    model_dir: str | None = None,
    device: str = "cpu",
    *,
    write: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """Fit a classifier's temperature on validation seeds and write it into its card.

    The model runs through the app's runner at temperature 1 and no bias (whatever its card
    says), on
    the recipe's validation seeds or a subset of them: any other seed is refused.

    Parameters
    ----------
    model_id : str
        ``demo-ct-nodule-cls`` (fitted on slices) or ``demo-cxr-nodule-cls`` (radiographs).
    seeds : iterable of int, optional
        Validation seeds (default: all of the recipe's).
    model_dir : str, optional
        The model folder whose ``model.json`` is rewritten; by default the installed model.
    device : str, optional
    write : bool, optional
        Write ``output.temperature`` and ``metrics.calibration`` into the card.
    log : callable, optional

    Returns
    -------
    dict
        ``metrics.calibration``: seeds, unit, samples, positives, temperature, nll_before,
        nll_after, ece_before, ece_after.
    """
    from medviewer.ai.registry import ModelRegistry

    if model_id not in CLASSIFIERS:
        raise ValueError(f"calibrate fits the classifiers {sorted(CLASSIFIERS)}, not {model_id}")
    seeds = _validation_seeds(model_id, seeds)
    card = load_card(model_dir) if model_dir else ModelRegistry().get(model_id).card
    unit, source = CLASSIFIERS[model_id]
    raw = replace(card, output=replace(card.output, temperature=1.0, bias=()), explain=None)
    cases = list(source(raw, seeds, device, log))
    logits = logit_difference(metrics.gather([c.negative for c in cases], np.arange(len(cases))),
                              metrics.gather([c.positive for c in cases], np.arange(len(cases))))
    labels = metrics.gather([c.targets for c in cases], np.arange(len(cases))).astype(bool)
    temperature, bias = (round(v, 4) for v in fit_platt(logits, labels))
    summary = calibration_summary(logits, labels, temperature, seeds, unit, bias)
    if any(math.isclose(temperature, b, rel_tol=1e-3) for b in TEMPERATURE_BOUNDS):
        log(f"the fitted temperature {temperature} lies on the bound of {TEMPERATURE_BOUNDS}")
    if write:
        write_calibration(card.folder / Path(str(card.path)).name, temperature, summary, bias)
    return summary


def calibration_summary(
    logits: np.ndarray, labels: np.ndarray, temperature: float, seeds: Sequence[int], unit: str,
    bias: float = 0.0,
) -> dict[str, Any]:
    """The card's ``metrics.calibration``: fit data and NLL and ECE before and after."""
    before = 1.0 / (1.0 + np.exp(-logits))
    after = 1.0 / (1.0 + np.exp(-(logits / temperature + bias)))
    return {
        "seeds": f"{seeds[0]}-{seeds[-1]}",
        "unit": unit,
        "samples": int(labels.size),
        "positives": int(labels.sum()),
        "temperature": temperature,
        "bias": bias,
        "nll_before": round(binary_nll(logits, labels), 4),
        "nll_after": round(binary_nll(logits, labels, temperature, bias), 4),
        "ece_before": round(metrics.expected_calibration_error(before, labels), 4),
        "ece_after": round(metrics.expected_calibration_error(after, labels), 4),
        "method": "Platt scaling of the logit difference, p = sigmoid(z / T + b), NLL "
                  "minimised on validation seeds; ECE in 10 equal-width bins of p(nodule), "
                  "weighted by count",
    }


def write_calibration(
    card_path: Path, temperature: float, summary: dict[str, Any], bias: float = 0.0
) -> None:
    """Set ``output.temperature``, ``output.bias`` (``[0, b]``: the offset goes to the second
    class) and ``metrics.calibration`` in a card file, all or nothing.

    The card is validated before the file is replaced; the weights are not touched.
    """
    data = json.loads(card_path.read_text())
    data["output"]["temperature"] = temperature
    if bias:
        data["output"]["bias"] = [0.0, bias]
    else:
        data["output"].pop("bias", None)
    data.setdefault("metrics", {})["calibration"] = summary
    ModelCard.from_dict(data, str(card_path), path=card_path)
    with staged_file(card_path) as staging:
        staging.write_text(json.dumps(data, indent=2) + "\n")


def _validation_seeds(model_id: str, seeds: Iterable[int] | None) -> list[int]:
    """`seeds` (default: the recipe's validation seeds); any other seed is refused."""
    allowed = RECIPES[model_id].validation_seeds
    chosen = list(allowed if seeds is None else seeds)
    outside = [s for s in chosen if s not in allowed]
    if outside or not chosen:
        where = f"seed {outside[0]} is not" if outside else "no seed is"
        raise ValueError(f"{where} a validation seed of {model_id}: a temperature is fitted "
                         f"on {RECIPES[model_id].seed_ranges()['validation']} only")
    return chosen
