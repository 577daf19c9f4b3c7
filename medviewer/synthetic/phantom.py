"""Synthetic chest phantoms: CT volumes with truth labels, and radiographs projected from them.

Everything is deterministic from a seed and entirely synthetic (no patient data). A case is a
parametric description in patient coordinates (LPS, mm: x toward the patient's Left, y toward
Posterior, z toward Superior); :func:`render_ct` rasterises it onto any axial grid, so the demo
series (512x512) and the training samples (a few chosen slices) come from the same anatomy.

Labels: 0 background, 1 left lung, 2 right lung, 3 nodule. Vessels inside a lung are lung;
the trachea and main bronchi are not.

Only numpy and SimpleITK; never Qt or torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

LEFT_LUNG, RIGHT_LUNG, NODULE = 1, 2, 3
RADIOGRAPH_NODULE_MM = 8.0  # a radiograph is labelled "nodule" when a nodule this large projects
_MU_WATER = 0.0195  # 1/mm, about 70 keV


@dataclass(frozen=True)
class Nodule:
    """One nodule: nominal diameter (equivalent sphere) and centre in LPS mm."""

    centre_lps: tuple[float, float, float]
    diameter_mm: float
    kind: str  # "solid" or "part-solid"
    side: int  # LEFT_LUNG or RIGHT_LUNG
    hu: float
    core_fraction: float  # part-solid: the solid core's share of the diameter
    lobulation: tuple[float, ...]  # shape coefficients (zero: a sphere)


@dataclass(frozen=True)
class Lung:
    """One lung: an elliptic cylinder with a rounded apex, a diaphragm dome and a wavy border."""

    side: int
    centre_xy: tuple[float, float]
    half_axes: tuple[float, float]
    apex_z: float
    dome_z: float
    dome_depth: float
    harmonics: tuple[tuple[float, float, float], ...]  # (order, amplitude, phase)


@dataclass(frozen=True)
class Tube:
    """A capsule from p0 to p1 with radius r0 to r1 (vessels, ribs, airways, aorta)."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    r0: float
    r1: float


@dataclass(frozen=True)
class ChestCase:
    """Anatomy and acquisition of one synthetic chest, drawn from `seed` by :func:`chest_case`."""

    seed: int
    body_half_axes: tuple[float, float]
    fat_mm: float
    muscle_mm: float
    lungs: tuple[Lung, Lung]
    lung_hu: float
    heart_centre: tuple[float, float, float]
    heart_half_axes: tuple[float, float, float]
    aorta: tuple[Tube, ...]
    aorta_hu: float
    airways: tuple[Tube, ...]
    vessels: tuple[Tube, ...]
    ribs: tuple[Tube, ...]
    spine_centre_xy: tuple[float, float]
    spine_radius: float
    nodules: tuple[Nodule, ...]
    pixel_spacing_mm: float
    slice_spacing_mm: float
    slice_count: int
    noise_hu: float
    blur_mm: float

    @property
    def radiograph_class(self) -> str:
        """ "nodule" when a nodule of at least 8 mm projects into the lungs, else "normal"."""
        large = any(n.diameter_mm >= RADIOGRAPH_NODULE_MM for n in self.nodules)
        return "nodule" if large else "normal"


@dataclass(frozen=True)
class AxialGrid:
    """An axial grid: columns toward L, rows toward P, slices at `z_positions` (increasing)."""

    rows: int
    cols: int
    pixel_spacing: float
    origin_xy: tuple[float, float]  # LPS x, y of the centre of pixel (row 0, col 0)
    z_positions: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols)."""
        return (len(self.z_positions), self.rows, self.cols)

    def xs(self) -> np.ndarray:
        """LPS x of each column centre."""
        return self.origin_xy[0] + self.pixel_spacing * np.arange(self.cols, dtype=np.float32)

    def ys(self) -> np.ndarray:
        """LPS y of each row centre."""
        return self.origin_xy[1] + self.pixel_spacing * np.arange(self.rows, dtype=np.float32)

    def zs(self) -> np.ndarray:
        """LPS z of each slice."""
        return np.asarray(self.z_positions, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Drawing a case


def chest_case(seed: int) -> ChestCase:
    """The chest of case `seed`: anatomy, nodules and acquisition, all drawn from the seed."""
    rng = np.random.default_rng([seed, 7401])
    half_w, half_d = rng.uniform(140, 180), rng.uniform(95, 125)
    fat, muscle = rng.uniform(6, 22), rng.uniform(8, 15)
    lungs = tuple(_draw_lung(rng, side, half_w, half_d) for side in (LEFT_LUNG, RIGHT_LUNG))
    heart_centre = (
        half_w * rng.uniform(0.05, 0.14),
        -half_d * rng.uniform(0.15, 0.3),
        min(lung.dome_z for lung in lungs) + rng.uniform(45, 60),
    )
    heart_axes = (
        half_w * rng.uniform(0.3, 0.36),
        half_d * rng.uniform(0.38, 0.46),
        rng.uniform(55, 70),
    )
    spine_xy = (0.0, half_d * rng.uniform(0.5, 0.6))
    spine_r = rng.uniform(16, 21)
    arch_z = heart_centre[2] + heart_axes[2] + rng.uniform(10, 30)
    aorta = _aorta(rng, heart_centre, arch_z, spine_xy, spine_r)
    airways = _airways(rng, lungs, arch_z, spine_xy, spine_r)
    spacing = rng.uniform(0.6, 2.5)  # 150-300 slices covering 280-380 mm where they can
    vessels = tuple(v for lung in lungs for v in _vessel_tree(rng, lung))
    ribs = _ribs(rng, half_w, half_d, fat, muscle, spine_xy, lungs)
    case = ChestCase(
        seed=seed,
        body_half_axes=(half_w, half_d),
        fat_mm=fat,
        muscle_mm=muscle,
        lungs=lungs,  # type: ignore[arg-type]
        lung_hu=rng.uniform(-890, -830),
        heart_centre=heart_centre,
        heart_half_axes=heart_axes,
        aorta=aorta,
        aorta_hu=float(rng.choice([rng.uniform(30, 50), rng.uniform(150, 300)])),
        airways=airways,
        vessels=vessels,
        ribs=ribs,
        spine_centre_xy=spine_xy,
        spine_radius=spine_r,
        nodules=(),
        pixel_spacing_mm=rng.uniform(0.6, 0.8),
        slice_spacing_mm=spacing,
        slice_count=int(np.clip(round(rng.uniform(280, 380) / spacing), 150, 300)),
        noise_hu=rng.uniform(10, 30),
        blur_mm=rng.uniform(0.45, 0.8),
    )
    nodules = _draw_nodules(rng, case)
    return _replace(case, nodules=nodules)


def _replace(case: ChestCase, **changes: object) -> ChestCase:
    from dataclasses import replace

    return replace(case, **changes)


def _draw_lung(rng: np.random.Generator, side: int, half_w: float, half_d: float) -> Lung:
    sign = 1.0 if side == LEFT_LUNG else -1.0
    apex = rng.uniform(110, 140)
    dome = rng.uniform(-95, -60) + (
        12.0 if side == RIGHT_LUNG else 0.0
    )  # the liver lifts the right
    harmonics = tuple(
        (float(order), rng.uniform(0.0, 0.05), rng.uniform(0, 2 * np.pi)) for order in (2, 3, 4, 5)
    )
    return Lung(
        side=side,
        centre_xy=(sign * half_w * rng.uniform(0.45, 0.52), -half_d * rng.uniform(0.0, 0.08)),
        half_axes=(half_w * rng.uniform(0.3, 0.35), half_d * rng.uniform(0.66, 0.76)),
        apex_z=apex,
        dome_z=dome,
        dome_depth=rng.uniform(25, 45),
        harmonics=harmonics,
    )


def _aorta(rng: np.random.Generator, heart, arch_z, spine_xy, spine_r) -> tuple[Tube, ...]:
    radius = rng.uniform(11, 15)
    root = (heart[0] - 10.0, heart[1] + 15.0, heart[2] + 20.0)
    top = (root[0], root[1], arch_z)
    back_x = spine_xy[0] + spine_r + radius * 0.6
    back = (back_x, spine_xy[1] - spine_r * 0.6, arch_z)
    return (
        Tube(root, top, radius, radius),
        Tube(top, back, radius, radius * 0.95),
        Tube(back, (back_x, back[1], -400.0), radius * 0.95, radius * 0.85),
    )


def _airways(rng: np.random.Generator, lungs, arch_z, spine_xy, spine_r) -> tuple[Tube, ...]:
    radius = rng.uniform(7.5, 10)
    carina = (0.0, spine_xy[1] - spine_r - radius - 4.0, arch_z - rng.uniform(10, 25))
    tubes = [Tube((0.0, carina[1], 400.0), carina, radius, radius)]
    for lung in lungs:
        hilum = _hilum(lung)
        tubes.append(Tube(carina, hilum, radius * 0.75, radius * 0.55))
    return tuple(tubes)


def _hilum(lung: Lung) -> tuple[float, float, float]:
    sign = 1.0 if lung.side == LEFT_LUNG else -1.0
    x = lung.centre_xy[0] - sign * lung.half_axes[0] * 0.75
    z = lung.dome_z + 0.45 * (lung.apex_z - lung.dome_z)
    return (x, lung.centre_xy[1], z)


def _vessel_tree(rng: np.random.Generator, lung: Lung) -> list[Tube]:
    sign = 1.0 if lung.side == LEFT_LUNG else -1.0
    root = np.array(_hilum(lung))
    tubes: list[Tube] = []
    starts = [
        (sign * 0.6, 0.0, 0.8),
        (sign * 0.5, 0.5, 0.6),
        (sign * 1.0, -0.4, 0.0),
        (sign * 1.0, 0.4, 0.1),
        (sign * 0.6, 0.4, -0.8),
        (sign * 0.7, -0.5, -0.5),
    ]
    for direction in starts:
        d = np.array(direction, dtype=float) + rng.normal(0, 0.15, 3)
        _branch(rng, tubes, root, d / np.linalg.norm(d), rng.uniform(4.0, 5.5), 0, sign)
    return tubes


def _branch(
    rng, tubes: list[Tube], start, direction, radius: float, depth: int, sign: float
) -> None:
    length = rng.uniform(20, 32) * 0.85**depth
    end = start + direction * length
    r1 = radius * 0.8
    tubes.append(Tube(tuple(start), tuple(end), radius, r1))  # type: ignore[arg-type]
    if depth >= 6 or r1 < 0.6:
        return
    for _ in range(2):
        outward = np.array([sign, 0.0, 0.0])
        d = direction + rng.normal(0, 0.45, 3) + 0.25 * outward
        _branch(
            rng, tubes, end, d / np.linalg.norm(d), r1 * rng.uniform(0.8, 0.95), depth + 1, sign
        )


def _ribs(rng, half_w, half_d, fat, muscle, spine_xy, lungs) -> tuple[Tube, ...]:
    a = half_w - fat - muscle * 0.5
    b = half_d - fat - muscle * 0.5
    top = max(lung.apex_z for lung in lungs) + 5
    pitch = rng.uniform(24, 30)
    radius = rng.uniform(4.0, 5.5)
    tubes = []
    for k in range(12):
        z0 = top - k * pitch
        for sign in (-1.0, 1.0):
            angles = np.linspace(0.15, 2.5, 9)  # from the back (0) round to the front
            points = [
                (
                    sign * a * np.sin(t),
                    b * np.cos(t) * (1.0 if t < np.pi / 2 else 1.05),
                    z0 - 16.0 * t,
                )
                for t in angles
            ]
            start = (sign * 22.0, spine_xy[1], z0 + 4)
            points.insert(0, start)
            for p, q in itertools.pairwise(points):
                tubes.append(Tube(p, q, radius, radius))
    return tuple(tubes)


def _draw_nodules(rng: np.random.Generator, case: ChestCase) -> tuple[Nodule, ...]:
    count = int(rng.choice(5, p=[0.3, 0.3, 0.2, 0.12, 0.08]))
    nodules: list[Nodule] = []
    for _ in range(count):
        nodule = _one_nodule(rng, case, nodules)
        if nodule is not None:
            nodules.append(nodule)
    return tuple(nodules)


def with_extra_nodules(
    case: ChestCase, count: int, part_solid_share: float = 0.0, on_vessel_share: float = 0.0
) -> ChestCase:
    """`case` with up to `count` more nodules, for training only.

    The extra nodules come from their own stream of the case's seed, so `case` itself (and
    every held-out case) is unchanged. By default they are drawn as :func:`chest_case` draws
    nodules. A `part_solid_share` of them are part-solid (8-30 mm, the rare kind a case draws
    in one of four nodules of 8 mm or more), and an `on_vessel_share` are juxtavascular: centred
    on a vessel, at a branching or along it (:func:`_place_on_vessel`), the hardest place to
    tell a nodule from the vessel tree.
    """
    rng = np.random.default_rng([case.seed, 7402])
    nodules = list(case.nodules)
    for _ in range(count):
        part_solid = rng.random() < part_solid_share
        on_vessel = rng.random() < on_vessel_share
        if part_solid or on_vessel:
            nodule = _extra_nodule(rng, case, nodules, part_solid, on_vessel)
        else:
            nodule = _one_nodule(rng, case, nodules)
        if nodule is not None:
            nodules.append(nodule)
    return _replace(case, nodules=tuple(nodules))


def _extra_nodule(
    rng: np.random.Generator, case: ChestCase, others: list[Nodule], part_solid: bool,
    on_vessel: bool,
) -> Nodule | None:
    low = 8.0 if part_solid else 3.0
    diameter = float(np.exp(rng.uniform(np.log(low), np.log(30.0))))
    if on_vessel:
        placed = _place_on_vessel(rng, case, diameter / 2, others)
    else:
        side = LEFT_LUNG if rng.random() < 0.5 else RIGHT_LUNG
        centre = _place_nodule(rng, case, side, diameter / 2, rng.random() < 0.3, others)
        placed = None if centre is None else (centre, side)
    if placed is None:
        return None
    lobes = tuple(float(v) for v in rng.uniform(-0.12, 0.12, 6)) if diameter >= 8 else (0.0,) * 6
    return Nodule(
        centre_lps=tuple(float(v) for v in placed[0]),  # type: ignore[arg-type]
        diameter_mm=round(diameter, 2),
        kind="part-solid" if part_solid else "solid",
        side=placed[1],
        hu=rng.uniform(-20, 60),
        core_fraction=rng.uniform(0.35, 0.6) if part_solid else 1.0,
        lobulation=lobes,
    )


def _place_on_vessel(
    rng: np.random.Generator, case: ChestCase, radius: float, others: list[Nodule]
) -> tuple[np.ndarray, int] | None:
    """A centre on a vessel's axis (and its lung) for a nodule of `radius` wholly in a lung.

    The vessel is drawn in proportion to its cross-section ((r0 + r1)^2), so the thick central
    vessels, where a nodule is hardest to see, are chosen most; half the centres are at the
    vessel's far end, where it branches, the others anywhere along it.
    """
    tubes = case.vessels
    weights = np.array([(t.r0 + t.r1) ** 2 for t in tubes], dtype=float)
    for _ in range(100):
        tube = tubes[int(rng.choice(len(tubes), p=weights / weights.sum()))]
        t = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 1.0))
        centre = np.asarray(tube.p0) + t * (np.asarray(tube.p1) - np.asarray(tube.p0))
        if any(
            np.linalg.norm(centre - np.array(o.centre_lps)) < radius + o.diameter_mm / 2 + 5
            for o in others
        ):
            continue
        inner = np.vstack([centre[None], centre + (radius + 1.0) * _SPHERE_DIRECTIONS])
        for side in (LEFT_LUNG, RIGHT_LUNG):
            if _inside_lungs(case, inner, side).all():
                return centre, side
    return None


def _one_nodule(rng: np.random.Generator, case: ChestCase, others: list[Nodule]) -> Nodule | None:
    diameter = float(np.exp(rng.uniform(np.log(3.0), np.log(30.0))))
    side = LEFT_LUNG if rng.random() < 0.5 else RIGHT_LUNG
    pleural = rng.random() < 0.3
    centre = _place_nodule(rng, case, side, diameter / 2, pleural, others)
    if centre is None:
        return None
    part_solid = diameter >= 8 and rng.random() < 0.25
    lobes = tuple(float(v) for v in rng.uniform(-0.12, 0.12, 6))
    lobes = lobes if diameter >= 8 else (0.0,) * 6
    return Nodule(
        centre_lps=tuple(float(v) for v in centre),  # type: ignore[arg-type]
        diameter_mm=round(diameter, 2),
        kind="part-solid" if part_solid else "solid",
        side=side,
        hu=rng.uniform(-20, 60),
        core_fraction=rng.uniform(0.35, 0.6) if part_solid else 1.0,
        lobulation=lobes,
    )


_SPHERE_DIRECTIONS = np.array([d for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)], dtype=float) - 1.0
_SPHERE_DIRECTIONS /= np.linalg.norm(_SPHERE_DIRECTIONS, axis=1, keepdims=True)


def _place_nodule(
    rng, case: ChestCase, side: int, radius: float, pleural: bool, others
) -> np.ndarray | None:
    lung = case.lungs[0] if side == LEFT_LUNG else case.lungs[1]
    for _ in range(400):
        centre = np.array(
            [
                rng.uniform(
                    lung.centre_xy[0] - lung.half_axes[0], lung.centre_xy[0] + lung.half_axes[0]
                ),
                rng.uniform(
                    lung.centre_xy[1] - lung.half_axes[1], lung.centre_xy[1] + lung.half_axes[1]
                ),
                rng.uniform(lung.dome_z - 10, lung.apex_z - 15),
            ]
        )
        if any(
            np.linalg.norm(centre - np.array(o.centre_lps)) < radius + o.diameter_mm / 2 + 5
            for o in others
        ):
            continue
        inner = centre + (radius + 1.0) * _SPHERE_DIRECTIONS
        if not _inside_lungs(case, inner, side).all():
            if not pleural:
                continue
            touching = centre + max(radius - 2.0, 0.5) * _SPHERE_DIRECTIONS
            if (
                _inside_lungs(case, touching, side).all()
                and _inside_lungs(case, centre[None], side).all()
            ):
                return centre
            continue
        if not pleural:
            return centre
    return None


# --------------------------------------------------------------------------------------------
# Lungs as functions of position


def _lung_mask(case: ChestCase, lung: Lung, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
    """Inside `lung` on a slice at height z; x, y broadcast to the slice."""
    scale = _lung_scale(lung, z)
    if scale <= 0:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    u = (x - lung.centre_xy[0]) / (lung.half_axes[0] * scale)
    v = (y - lung.centre_xy[1]) / (lung.half_axes[1] * scale)
    rho2 = u * u + v * v
    theta = np.arctan2(v, u)
    wave = 1.0
    for order, amplitude, phase in lung.harmonics:
        wave = wave + amplitude * np.cos(order * theta + phase + 0.01 * z)
    inside = rho2 < wave * wave
    floor = lung.dome_z - lung.dome_depth * np.minimum(rho2, 1.0)
    inside &= z > floor
    inside &= ~_heart_mask(case, x, y, z, margin=6.0)
    return inside


def _lung_scale(lung: Lung, z: float) -> float:
    """Cross-section scale at z: 1 in the middle, rounding off toward the apex."""
    start = lung.apex_z - 70.0
    if z >= lung.apex_z:
        return 0.0
    if z <= start:
        return 1.0 - 0.1 * max(0.0, (start - z) / 150.0)
    t = (z - start) / (lung.apex_z - start)
    return float(np.sqrt(max(0.0, 1.0 - t * t)))


def _heart_mask(case: ChestCase, x, y, z: float, margin: float = 0.0) -> np.ndarray:
    cx, cy, cz = case.heart_centre
    ax, ay, az = (a + margin for a in case.heart_half_axes)
    w = 1.0 - ((z - cz) / az) ** 2
    if w <= 0:
        return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)), dtype=bool)
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < w


def _inside_lungs(case: ChestCase, points: np.ndarray, side: int) -> np.ndarray:
    """Whether each LPS point (N x 3) gets the label of lung `side` as :func:`render_ct` draws it.

    The same tests as the renderer: the lung's shape, inside the chest wall's muscle, outside
    the heart and clear of the airways, so a nodule placed here is always drawn.
    """
    lung = case.lungs[0] if side == LEFT_LUNG else case.lungs[1]
    inside = []
    for p in np.asarray(points, dtype=float):
        x, y, z = np.array(p[0]), np.array(p[1]), float(p[2])
        ok = bool(_lung_mask(case, lung, x, y, z)) and bool(_deep_mask(case, x, y, z))
        ok = ok and all(
            _capsule_ratio(x, y, np.float32(z), np.asarray(t.p0), np.asarray(t.p1) - t.p0, t)
            >= 1.25
            for t in case.airways
        )
        inside.append(ok)
    return np.array(inside)


def _deep_mask(case: ChestCase, x, y, z: float) -> np.ndarray:
    """Inside the chest wall's muscle layer on the slice at z (where lungs and organs live)."""
    half_w, half_d = case.body_half_axes
    taper = 1.0 - 0.12 * (z / 200.0) ** 2
    a = half_w * taper - case.fat_mm - case.muscle_mm
    b = half_d * taper - case.fat_mm - case.muscle_mm
    return (x / a) ** 2 + (y / b) ** 2 < 1.0


# --------------------------------------------------------------------------------------------
# Rendering


def ct_grid(case: ChestCase, size: int = 512) -> AxialGrid:
    """The case's CT: `size` x `size` pixels, its slices and spacing, centred on the chest."""
    spacing = case.pixel_spacing_mm
    extent = case.slice_spacing_mm * (case.slice_count - 1)
    lowest = min(lung.dome_z - lung.dome_depth for lung in case.lungs)  # costophrenic recesses
    centre_z = 0.5 * (max(lung.apex_z for lung in case.lungs) + lowest)
    z0 = centre_z - extent / 2
    half = spacing * (size - 1) / 2
    return AxialGrid(
        rows=size,
        cols=size,
        pixel_spacing=spacing,
        origin_xy=(-half, -half + case.body_half_axes[1] * 0.1),
        z_positions=tuple(z0 + case.slice_spacing_mm * k for k in range(case.slice_count)),
    )


def render_ct(
    case: ChestCase, grid: AxialGrid, *, noise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise `case` on `grid`: (HU as int16, labels as uint8), both shaped ``grid.shape``.

    Structures are drawn at voxel centres; in-plane blur (the scanner's point spread) and
    correlated noise follow, so edges get partial volume like a real CT. Labels are the
    unblurred truth.
    """
    hu = np.empty(grid.shape, dtype=np.float32)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    x = grid.xs()[None, :]
    y = grid.ys()[:, None]
    for k, z in enumerate(grid.z_positions):
        hu[k], labels[k] = _slice(case, x, y, float(z))
    _draw_mediastinal_tubes(hu, labels, grid, case)
    lung = labels > 0
    _draw_tubes(hu, grid, case.vessels, lambda region: lung[region], 35.0)
    _draw_tubes(hu, grid, case.ribs, None, None, bone=True)
    _draw_nodules_into(hu, labels, grid, case)
    if noise:
        hu = _blur_and_noise(hu, grid, case)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16), labels


def _slice(
    case: ChestCase, x: np.ndarray, y: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """The tissue map and labels of one axial slice, before vessels, ribs and nodules."""
    half_w, half_d = case.body_half_axes
    taper = 1.0 - 0.12 * (z / 200.0) ** 2
    body_r2 = (x / (half_w * taper)) ** 2 + (y / (half_d * taper)) ** 2
    inner_a = half_w * taper - case.fat_mm
    inner_b = half_d * taper - case.fat_mm
    hu = np.full(np.broadcast_shapes(x.shape, y.shape), -1000.0, dtype=np.float32)
    _table(hu, x, y, half_d)
    hu[body_r2 < 1.0] = -100.0  # subcutaneous fat
    hu[(x / inner_a) ** 2 + (y / inner_b) ** 2 < 1.0] = 45.0  # muscle and soft tissue
    deep = _deep_mask(case, x, y, z)
    hu[deep] = 30.0
    mediastinal_fat = deep & (
        (x / (half_w * 0.3)) ** 2 + ((y + half_d * 0.2) / (half_d * 0.6)) ** 2 < 1.0
    )
    hu[mediastinal_fat] = -80.0
    hu[_heart_mask(case, x, y, z)] = 40.0
    _spine_slice(hu, x, y, z, case)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    for lung in case.lungs:
        rows, cols = _lung_box(lung, x, y)
        xs, ys = x[:, cols], y[rows, :]
        mask = _lung_mask(case, lung, xs, ys, z) & deep[rows, cols]
        labels[rows, cols][mask] = lung.side
        gradient = case.lung_hu + 45.0 * np.clip(ys / half_d, -1.0, 1.0)  # dependent lung is denser
        hu[rows, cols][mask] = np.broadcast_to(gradient, mask.shape)[mask]
    return hu, labels


def _lung_box(lung: Lung, x: np.ndarray, y: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns that can hold `lung` (its border waves stay within 25 %)."""
    reach_x, reach_y = lung.half_axes[0] * 1.25, lung.half_axes[1] * 1.25
    cols = np.flatnonzero(np.abs(x[0] - lung.centre_xy[0]) <= reach_x)
    rows = np.flatnonzero(np.abs(y[:, 0] - lung.centre_xy[1]) <= reach_y)
    if cols.size == 0 or rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _table(hu: np.ndarray, x: np.ndarray, y: np.ndarray, half_d: float) -> None:
    top = half_d + 12.0
    curve = top + 0.0006 * x * x
    slab = (y > curve) & (y < curve + 10.0) & (np.abs(x) < 230)
    hu[slab] = -300.0
    shell = slab & ((y < curve + 2.0) | (y > curve + 8.0))
    hu[shell] = 250.0


def _spine_slice(hu: np.ndarray, x, y, z: float, case: ChestCase) -> None:
    sx, sy = case.spine_centre_xy
    r = case.spine_radius
    d2 = (x - sx) ** 2 + (y - sy) ** 2
    in_disc = (z % 27.0) < 5.0
    hu[d2 < r * r] = 90.0 if in_disc else 550.0
    if not in_disc:
        hu[d2 < (r - 2.5) ** 2] = 220.0
    canal = (x - sx) ** 2 + (y - sy - r - 9.0) ** 2
    arch = (canal < (r * 0.75) ** 2) & (y > sy + r * 0.6)
    hu[arch] = 500.0
    hu[canal < 64.0] = 15.0
    process = (np.abs(x - sx) < 5.0) & (y > sy + r + 12) & (y < sy + r + 40)
    hu[process] = 450.0


def _capsule_ratio(x, y, z, p0: np.ndarray, d: np.ndarray, tube: Tube) -> np.ndarray:
    length2 = float(d @ d) or 1e-9
    t = ((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    dist2 = (x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2
    radius = tube.r0 + t * (tube.r1 - tube.r0)
    return np.sqrt(dist2) / radius


def _region(grid: AxialGrid, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The index box of `grid` covering LPS box [lo, hi], or None when outside."""
    zs = grid.zs()
    k0, k1 = np.searchsorted(zs, lo[2]), np.searchsorted(zs, hi[2], side="right")
    s = grid.pixel_spacing
    c0 = max(int(np.floor((lo[0] - grid.origin_xy[0]) / s)), 0)
    c1 = min(int(np.ceil((hi[0] - grid.origin_xy[0]) / s)) + 1, grid.cols)
    r0 = max(int(np.floor((lo[1] - grid.origin_xy[1]) / s)), 0)
    r1 = min(int(np.ceil((hi[1] - grid.origin_xy[1]) / s)) + 1, grid.rows)
    if k0 >= k1 or c0 >= c1 or r0 >= r1:
        return None
    return (slice(int(k0), int(k1)), slice(r0, r1), slice(c0, c1))


def _coordinates(grid: AxialGrid, region) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    zs = grid.zs()[region[0]][:, None, None]
    ys = grid.ys()[region[1]][None, :, None]
    xs = grid.xs()[region[2]][None, None, :]
    return xs, ys, zs


def _tube_regions(grid: AxialGrid, tubes: Sequence[Tube]) -> Iterator[tuple[tuple, np.ndarray]]:
    for tube in tubes:
        p0, p1 = np.asarray(tube.p0), np.asarray(tube.p1)
        r = max(tube.r0, tube.r1)
        region = _region(grid, np.minimum(p0, p1) - r, np.maximum(p0, p1) + r)
        if region is None:
            continue
        x, y, z = _coordinates(grid, region)
        yield region, _capsule_ratio(x, y, z, p0, p1 - p0, tube)


def _draw_tubes(hu, grid, tubes, allowed, value: float | None, bone: bool = False) -> None:
    for region, ratio in _tube_regions(grid, tubes):
        block = hu[region]
        if bone:
            block[ratio < 1.0] = 650.0
            block[ratio < 0.6] = 240.0
            continue
        inside = ratio < 1.0
        if allowed is not None:
            inside &= allowed(region)
        block[inside] = np.maximum(block[inside], value)


def _draw_mediastinal_tubes(
    hu: np.ndarray, labels: np.ndarray, grid: AxialGrid, case: ChestCase
) -> None:
    """The aorta (outside the lungs) and the trachea and main bronchi (air, never lung)."""
    for region, ratio in _tube_regions(grid, case.aorta):
        hu[region][(ratio < 1.0) & (labels[region] == 0)] = case.aorta_hu
    for region, ratio in _tube_regions(grid, case.airways):
        block = hu[region]
        block[ratio < 1.25] = 20.0
        block[ratio < 1.0] = -1000.0
        labels[region][ratio < 1.25] = 0


def _draw_nodules_into(
    hu: np.ndarray, labels: np.ndarray, grid: AxialGrid, case: ChestCase
) -> None:
    for nodule in case.nodules:
        centre = np.asarray(nodule.centre_lps)
        reach = nodule.diameter_mm / 2 * 1.3 + 1.0
        region = _region(grid, centre - reach, centre + reach)
        if region is None:
            continue
        x, y, z = _coordinates(grid, region)
        ratio = _nodule_ratio(nodule, x - centre[0], y - centre[1], z - centre[2])
        lung = labels[region] > 0
        inside = (ratio < 1.0) & lung
        block, label_block = hu[region], labels[region]
        if nodule.kind == "part-solid":
            block[inside] = np.maximum(block[inside], -620.0)
            core = inside & (ratio < nodule.core_fraction)
            block[core] = nodule.hu
        else:
            block[inside] = nodule.hu
        label_block[inside] = NODULE


def _nodule_ratio(nodule: Nodule, dx, dy, dz) -> np.ndarray:
    """Distance from the centre over the local radius (lobulated by low-order terms)."""
    r = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-6
    ux, uy, uz = dx / r, dy / r, dz / r
    a = nodule.lobulation
    wave = 1.0 + a[0] * ux * uy + a[1] * uy * uz + a[2] * ux * uz + a[3] * (ux * ux - uz * uz)
    wave = wave + a[4] * ux * uy * uz * 3 + a[5] * (uy * uy - uz * uz)
    return r / (nodule.diameter_mm / 2 * wave)


def _blur_and_noise(hu: np.ndarray, grid: AxialGrid, case: ChestCase) -> np.ndarray:
    import SimpleITK as sitk

    rng = np.random.default_rng([case.seed, 991, len(grid.z_positions), grid.rows])
    sigma_px = max(case.blur_mm / grid.pixel_spacing, 0.5)
    # White noise blurred with the image becomes correlated like CT noise; a 2D Gaussian of
    # sigma s px divides the noise SD by 2 s sqrt(pi), so scale it up by that first.
    scale = np.float32(case.noise_hu * 2.0 * sigma_px * np.sqrt(np.pi))
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= scale
    hu += noise
    return _blur_in_plane(sitk, hu, sigma_px)


def _blur_in_plane(sitk, array: np.ndarray, sigma_px: float) -> np.ndarray:
    image = sitk.GetImageFromArray(array)
    for direction in (0, 1):
        image = sitk.RecursiveGaussian(image, sigma=float(sigma_px), direction=direction)
    return sitk.GetArrayFromImage(image)


# --------------------------------------------------------------------------------------------
# PET

#: FDG uptake of each tissue (SUVbw): physiological values of an adult at 60 minutes.
PET_UPTAKE = {"fat": 0.35, "soft tissue": 0.8, "lung": 0.45, "bone": 1.3, "blood": 1.8,
              "myocardium": 3.0}  # fmt: skip
PET_FWHM_MM = 6.0  # the scanner's resolution


def nodule_suv(nodule: Nodule) -> float:
    """The demo's FDG uptake of a nodule (SUVbw of its tissue, before partial volume): solid
    ones from 3 (6 mm) up to 10, part-solid ones half as avid."""
    uptake = min(1.5 + 0.35 * nodule.diameter_mm, 10.0)
    return uptake / 2 if nodule.kind == "part-solid" else uptake


def pet_grid(case: ChestCase, spacing_mm: float = 4.0) -> AxialGrid:
    """The case's PET grid: `spacing_mm` cubes over the CT's field of view and slab."""
    ct = ct_grid(case)
    fov = ct.pixel_spacing * ct.cols
    size = round(fov / spacing_mm)
    centre_x = ct.origin_xy[0] + ct.pixel_spacing * (ct.cols - 1) / 2
    centre_y = ct.origin_xy[1] + ct.pixel_spacing * (ct.rows - 1) / 2
    half = spacing_mm * (size - 1) / 2
    z0, z1 = ct.z_positions[0], ct.z_positions[-1]
    count = int(np.floor((z1 - z0) / spacing_mm)) + 1
    start = (z0 + z1) / 2 - spacing_mm * (count - 1) / 2
    return AxialGrid(rows=size, cols=size, pixel_spacing=spacing_mm,
                     origin_xy=(centre_x - half, centre_y - half),
                     z_positions=tuple(start + spacing_mm * k for k in range(count)))  # fmt: skip


def render_pet(case: ChestCase, grid: AxialGrid, *, noise: bool = True) -> np.ndarray:
    """FDG PET of `case` on `grid` in SUVbw (float32, ``grid.shape``): tissues at
    :data:`PET_UPTAKE`, nodules at :func:`nodule_suv`, blurred to the scanner's 6 mm FWHM.

    The uptake is drawn on a grid twice as fine in each direction, blurred, and averaged back
    (so small nodules lose contrast as on a real scanner); noise is multiplicative (about
    10 % at SUV 1, less where the uptake is high).
    """
    import SimpleITK as sitk

    fine = _finer(grid)
    hu, labels = render_ct(case, fine, noise=False)
    suv = _uptake(case, fine, hu, labels)
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing((fine.pixel_spacing,) * 3)
    sigma = PET_FWHM_MM / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    blurred = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, float(sigma)))
    k, r, c = grid.shape
    coarse = blurred[: 2 * k, : 2 * r, : 2 * c].reshape(k, 2, r, 2, c, 2).mean(axis=(1, 3, 5))
    if noise:
        rng = np.random.default_rng([case.seed, 4242, k, r])
        coarse = coarse * (1.0 + 0.1 * rng.standard_normal(coarse.shape) / np.sqrt(
            np.maximum(coarse, 0.2)))
    return np.clip(coarse, 0.0, None).astype(np.float32)


def _finer(grid: AxialGrid) -> AxialGrid:
    """A grid of half the spacing whose 2 x 2 x 2 blocks average onto `grid`'s voxels."""
    s = grid.pixel_spacing / 2
    zs = [z + d for z in grid.z_positions for d in (-s / 2, s / 2)]
    return AxialGrid(rows=2 * grid.rows, cols=2 * grid.cols, pixel_spacing=s,
                     origin_xy=(grid.origin_xy[0] - s / 2, grid.origin_xy[1] - s / 2),
                     z_positions=tuple(zs))  # fmt: skip


def _uptake(case: ChestCase, grid: AxialGrid, hu: np.ndarray, labels: np.ndarray) -> np.ndarray:
    up = PET_UPTAKE
    suv = np.zeros(hu.shape, np.float32)
    suv[hu > -300] = up["soft tissue"]
    suv[(hu > -200) & (hu < -50)] = up["fat"]
    suv[hu > 150] = up["bone"]
    suv[labels > 0] = up["lung"]
    suv[(labels > 0) & (hu > -500)] = up["blood"]  # vessels in the lungs
    x, y = grid.xs()[None, :], grid.ys()[:, None]
    for k, z in enumerate(grid.z_positions):
        outer = _heart_mask(case, x, y, float(z))
        suv[k][outer] = up["myocardium"]
        suv[k][_heart_mask(case, x, y, float(z), margin=-12.0)] = up["blood"]  # the chambers
    for region, ratio in _tube_regions(grid, case.aorta):
        suv[region][(ratio < 1.0) & (labels[region] == 0)] = up["blood"]
    for region, ratio in _tube_regions(grid, case.airways):
        suv[region][ratio < 1.0] = 0.0
    suv[hu < -900] = 0.0  # air outside and in the airways
    for nodule in case.nodules:
        centre = np.asarray(nodule.centre_lps)
        reach = nodule.diameter_mm / 2 * 1.3 + 1.0
        region = _region(grid, centre - reach, centre + reach)
        if region is not None:
            suv[region][labels[region] == NODULE] = nodule_suv(nodule)
    return suv


# --------------------------------------------------------------------------------------------
# Radiographs


@dataclass(frozen=True)
class Radiograph:
    """A PA chest radiograph projected from a case (parallel beam), and its geometry.

    Columns run toward the patient's Left (+x), rows toward the Feet (-z): DICOM Patient
    Orientation ``L\\F``. Larger values mean more attenuation (MONOCHROME2).
    """

    pixels: np.ndarray  # uint16, (rows, cols)
    pixel_spacing: float  # mm, rows and columns
    origin_xz: tuple[float, float]  # LPS x and z of the centre of pixel (0, 0)
    label: str

    def project(self, point_lps: Sequence[float]) -> tuple[float, float]:
        """(row, col), fractional, of the projection of an LPS point."""
        col = (point_lps[0] - self.origin_xz[0]) / self.pixel_spacing
        row = (self.origin_xz[1] - point_lps[2]) / self.pixel_spacing
        return (float(row), float(col))


def _processed(sitk, image, pixel_spacing: float) -> np.ndarray:
    """Detector processing as on clinical radiographs: compress the broad shading (25 mm
    Gaussian base x 0.4) and boost the detail on top of it (x 2), so lungs, vessels, ribs and
    nodules are visible in one window."""
    log_image = sitk.GetArrayFromImage(image)
    base = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, 25.0 / pixel_spacing))
    return 0.4 * base + 2.0 * (log_image - base)


def render_radiograph(
    case: ChestCase, pixel_spacing: float = 1.0, voxel_mm: float = 2.0
) -> Radiograph:
    """Project `case` along anterior-posterior: exp attenuation, detector blur and quantum noise.

    The CT is rendered on a `voxel_mm` grid (noise-free) and integrated along y; the line
    integrals are interpolated onto the detector's `pixel_spacing` grid, blurred and noised.
    """
    import SimpleITK as sitk

    _half_w, _half_d = case.body_half_axes
    extent_x = 215.0
    z_top, z_bottom = 150.0, -190.0  # nominal; the detector's top row sits on the last plane
    n_xy = int(np.ceil(2 * extent_x / voxel_mm)) + 1
    zs = np.arange(z_bottom, z_top + voxel_mm / 2, voxel_mm)
    grid = AxialGrid(n_xy, n_xy, voxel_mm, (-extent_x, -extent_x), tuple(float(z) for z in zs))
    hu, _ = render_ct(case, grid, noise=False)
    mu = _MU_WATER * np.clip(1.0 + hu.astype(np.float32) / 1000.0, 0.0, None)
    path = mu.sum(axis=1) * voxel_mm  # (z, x) line integrals
    path = path[::-1]  # rows from head to feet
    coarse = sitk.GetImageFromArray(path.astype(np.float32))
    coarse.SetSpacing((voxel_mm, voxel_mm))
    z_top = float(zs[-1])
    rows = round((z_top - z_bottom) / pixel_spacing) + 1
    cols = round(2 * extent_x / pixel_spacing) + 1
    fine = sitk.Resample(
        coarse, (cols, rows), sitk.Transform(), sitk.sitkLinear, (0.0, 0.0), (pixel_spacing,) * 2
    )
    line = sitk.GetArrayFromImage(fine)
    rng = np.random.default_rng([case.seed, 4242])
    intensity = np.exp(-line)
    quanta = 4000.0
    # Quantum noise, Gaussian approximation of Poisson: one normal field per case, so two
    # variants of a chest (with and without a nodule) differ only where their anatomy does.
    counts = intensity * quanta
    counts = counts + np.sqrt(counts) * rng.standard_normal(counts.shape, dtype=np.float32)
    intensity = counts.astype(np.float32) / quanta
    image = sitk.GetImageFromArray(-np.log(np.maximum(intensity, 0.5 / quanta)))
    image = sitk.SmoothingRecursiveGaussian(image, 0.6 / pixel_spacing)
    values = np.clip(_processed(sitk, image, pixel_spacing) * 500.0 + 300.0, 0, 4095)
    origin_z = z_top
    return Radiograph(
        pixels=np.rint(values).astype(np.uint16),
        pixel_spacing=pixel_spacing,
        origin_xz=(-extent_x, origin_z),
        label=case.radiograph_class,
    )
