"""Comparing two studies: the rigid map from the current study's patient space to a prior's.

Two studies of a patient rarely share a frame of reference: the patient lay differently,
the table moved. A :class:`RigidMap` carries a point of the current study (LPS mm) to the
same anatomy in the prior: a translation the user sets once by pointing at the same anatomy
in both (:meth:`RigidMap.from_points`), or a rotation and translation found by
:func:`register_rigid` (SimpleITK, Mattes mutual information, a multi-resolution Euler
transform from a centred start). Linked scrolling, the crosshair and windowing follow it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medviewer.core.errors import CancelledError
from medviewer.core.volume import Volume


@dataclass(frozen=True)
class RigidMap:
    """``prior = rotation @ current + translation`` (LPS mm), and how it was found."""

    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    method: str = "identity"  # "points", "registration", "identity"
    metric: float | None = None  # the registration's final Mattes MI (lower is better)

    @classmethod
    def from_points(cls, current: np.ndarray, prior: np.ndarray) -> RigidMap:
        """The translation that takes the point in the current study to the same anatomy in
        the prior."""
        offset = np.asarray(prior, float) - np.asarray(current, float)
        return cls(translation=(float(offset[0]), float(offset[1]), float(offset[2])),
                   method="points")  # fmt: skip

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 rotation."""
        return np.asarray(self.rotation, float).reshape(3, 3)

    def apply(self, point: np.ndarray) -> np.ndarray:
        """A current-study point in the prior's patient space."""
        return np.asarray(self.matrix @ np.asarray(point, float) + np.asarray(self.translation))

    def inverse(self) -> RigidMap:
        """The map back from the prior to the current study."""
        back = self.matrix.T
        shift = -back @ np.asarray(self.translation)
        return RigidMap(tuple(float(v) for v in back.ravel()),
                        (float(shift[0]), float(shift[1]), float(shift[2])),
                        self.method, self.metric)  # fmt: skip

    def rotation_degrees(self) -> float:
        """The rotation's angle (degrees)."""
        cosine = (np.trace(self.matrix) - 1.0) / 2.0
        return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


@dataclass(frozen=True)
class Registration:
    """What :func:`register_rigid` found, and what it cost."""

    map: RigidMap
    metric: float
    iterations: int
    seconds: float
    stop: str


def register_rigid(
    current: Volume,
    prior: Volume,
    cancel: Callable[[], bool] | None = None,
    start: RigidMap | None = None,
) -> Registration:
    """Rigid registration of `prior` onto `current` (both grey volumes).

    Mattes mutual information (50 bins, 5 % of the voxels sampled at random with a fixed
    seed), regular-step gradient descent over a 3-level pyramid (shrink 4, 2, 1 with
    smoothing 2, 1, 0 voxels), starting from `start` or from the volumes' centres aligned.

    Raises
    ------
    CancelledError
        When `cancel` returns True (checked at each iteration).
    """
    import SimpleITK as sitk

    started = time.perf_counter()
    fixed = sitk.Cast(current.to_sitk(), sitk.sitkFloat32)
    moving = sitk.Cast(prior.to_sitk(), sitk.sitkFloat32)
    if start is None:
        initial = sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.GEOMETRY)  # fmt: skip
    else:
        initial = sitk.Euler3DTransform()
        initial.SetMatrix([float(v) for v in start.rotation])
        initial.SetTranslation([float(v) for v in start.translation])
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.05, seed=7)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=200, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    iterations = [0]

    def step() -> None:
        iterations[0] += 1
        if cancel is not None and cancel():
            method.StopRegistration()

    method.AddCommand(sitk.sitkIterationEvent, step)
    found = method.Execute(fixed, moving)
    if cancel is not None and cancel():
        raise CancelledError("registration cancelled")
    euler = sitk.Euler3DTransform(sitk.CompositeTransform(found).GetNthTransform(0))
    # ITK maps fixed (current) points to moving (prior) points: exactly RigidMap's direction
    matrix = np.asarray(euler.GetMatrix(), float).reshape(3, 3)
    centre = np.asarray(euler.GetCenter(), float)
    offset = np.asarray(euler.GetTranslation(), float) + centre - matrix @ centre
    metric = float(method.GetMetricValue())
    rigid = RigidMap(tuple(float(v) for v in matrix.ravel()),
                     (float(offset[0]), float(offset[1]), float(offset[2])), "registration",
                     metric)  # fmt: skip
    return Registration(rigid, metric, iterations[0], time.perf_counter() - started,
                        method.GetOptimizerStopConditionDescription())  # fmt: skip
