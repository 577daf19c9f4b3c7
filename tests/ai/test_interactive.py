"""Click to segment with the classical engine: prompts in LPS land on the right voxels of
oblique and anisotropic series; a click gets the structure; a negative click only removes; each
prompt refines the object; undo and redo; a box; a scribble; cancel."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.classical_engine import ClassicalEngine, shrink_factors
from medviewer.ai.interactive import (
    Box,
    InteractiveSession,
    Point,
    Scribble,
    prompt_voxels,
    to_voxel,
)
from medviewer.core.errors import CancelledError, InferenceError
from medviewer.core.geometry import voxel_to_patient
from medviewer.core.volume import Volume


def oblique_affine(spacing=(0.7, 0.9, 2.5), origin=(-40.0, 25.0, 110.0)) -> np.ndarray:
    """(col, row, slice) -> LPS: rotated 30 degrees about z and 12 about x, anisotropic."""
    a, b = np.radians(30.0), np.radians(12.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def phantom(affine: np.ndarray, shape=(40, 90, 100), balls=(), background=-800.0,
            noise=15.0, seed=0) -> tuple[Volume, list[np.ndarray]]:
    """A volume with balls ((centre LPS, radius mm, value)); truths in patient space."""
    s, r, c = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    lps = voxel_to_patient(affine, np.stack([c, r, s], axis=-1).reshape(-1, 3)).reshape(
        *shape, 3)
    array = np.full(shape, background, dtype=np.float32)
    truths = []
    for centre, radius, value in balls:
        inside = np.linalg.norm(lps - np.asarray(centre), axis=-1) <= radius
        array[inside] = value
        truths.append(inside)
    array += np.random.default_rng(seed).normal(0.0, noise, shape).astype(np.float32)
    return Volume(array, affine), truths


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def centre_of(affine: np.ndarray, shape, fraction=(0.5, 0.5, 0.5)) -> tuple[float, ...]:
    index = [(n - 1) * f for n, f in zip(shape[::-1], fraction[::-1], strict=True)]
    return tuple(float(v) for v in voxel_to_patient(affine, np.asarray(index)))


def test_lps_prompts_land_on_the_voxel_whose_centre_is_there():
    volume = Volume(np.zeros((12, 20, 30), np.float32), oblique_affine())
    rng = np.random.default_rng(1)
    for _ in range(50):
        s, r, c = (int(rng.integers(0, n)) for n in volume.shape)
        lps = voxel_to_patient(volume.affine, np.asarray([c, r, s], float))
        nudge = volume.affine[:3, :3] @ rng.uniform(-0.45, 0.45, 3)  # within the voxel
        assert to_voxel(volume, tuple(lps + nudge)) == (s, r, c)
    corner = voxel_to_patient(volume.affine, np.asarray([-1.0, 0.0, 0.0]))
    with pytest.raises(InferenceError, match="outside the series"):
        to_voxel(volume, tuple(corner))


def test_a_click_gets_the_ball_on_an_oblique_anisotropic_grid():
    affine = oblique_affine()
    centre = centre_of(affine, (40, 90, 100), (0.5, 0.45, 0.55))
    volume, (truth,) = phantom(affine, balls=[(centre, 9.0, 40.0)])
    session = InteractiveSession(volume, ClassicalEngine())
    mask = session.add_prompt("nodule", Point(centre))
    assert dice(mask, truth) > 0.9
    stats = session.summary("nodule")
    assert np.linalg.norm(np.asarray(stats.centroid_lps) - centre) < 1.0
    assert stats.volume_ml == pytest.approx(4 / 3 * np.pi * 9.0**3 / 1000, rel=0.15)
    assert 16.0 < stats.longest_diameter_mm < 20.5


def test_a_negative_click_only_removes_what_it_points_at():
    """Two balls joined by a neck, the same density: a click on one gets both; a negative
    click on the other takes it away and nothing is added."""
    affine = oblique_affine(spacing=(0.8, 0.8, 1.5))
    a = centre_of(affine, (40, 90, 100), (0.5, 0.5, 0.3))
    b = centre_of(affine, (40, 90, 100), (0.5, 0.5, 0.7))
    neck = [tuple(np.asarray(a) + t * (np.asarray(b) - np.asarray(a))) for t in
            np.linspace(0.0, 1.0, 15)]
    volume, truths = phantom(affine, balls=[(a, 8.0, 40.0), (b, 8.0, 40.0),
                                            *((p, 2.0, 40.0) for p in neck)])
    ball_a, ball_b = truths[0], truths[1]
    session = InteractiveSession(volume, ClassicalEngine())
    both = session.add_prompt("ball", Point(a))
    assert both[ball_b].mean() > 0.9  # it leaked along the neck, as expected
    after = session.add_prompt("ball", Point(b, positive=False))
    assert not (after & ~both).any()  # only removes
    assert after[ball_a].mean() > 0.95 and after[ball_b].mean() < 0.05
    assert dice(after, ball_a) > 0.85


def test_each_prompt_refines_the_object_and_undo_redo_walk_its_history():
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    a = centre_of(affine, (30, 80, 90), (0.5, 0.3, 0.3))
    b = centre_of(affine, (30, 80, 90), (0.5, 0.7, 0.7))
    volume, (ball_a, ball_b) = phantom(affine, shape=(30, 80, 90),
                                       balls=[(a, 7.0, 60.0), (b, 6.0, 60.0)])
    session = InteractiveSession(volume, ClassicalEngine())
    first = session.add_prompt("obj", Point(a))
    assert dice(first, ball_a) > 0.9 and not (first & ball_b).any()
    second = session.add_prompt("obj", Point(b))
    assert dice(second, ball_a | ball_b) > 0.9
    obj = session.objects["obj"]
    assert obj.undo() and np.array_equal(obj.mask, first)
    assert obj.redo() and np.array_equal(obj.mask, second)
    assert obj.undo() and obj.undo() and obj.mask is None and not obj.undo()
    assert len(obj.undone) == 2
    crop = obj.undone[0][1].crop  # the history keeps each mask's box, not the whole grid
    assert crop.size < second.size / 10 and crop.sum() == second.sum()


def test_a_box_takes_its_largest_bright_or_dark_component():
    affine = np.diag([0.7, 0.7, 1.5, 1.0])
    shape = (30, 80, 80)
    bright_at = centre_of(affine, shape, (0.5, 0.3, 0.3))
    dark_at = centre_of(affine, shape, (0.5, 0.7, 0.7))
    volume, (bright, dark) = phantom(affine, shape=shape, background=40.0,
                                     balls=[(bright_at, 6.0, 400.0), (dark_at, 7.0, -850.0)])
    for centre, truth in ((bright_at, bright), (dark_at, dark)):
        low = tuple(np.asarray(centre) - 9.0)
        high = tuple(np.asarray(centre) + 9.0)
        session = InteractiveSession(volume, ClassicalEngine())
        assert dice(session.add_prompt("box", Box(low, high)), truth) > 0.9


def test_a_scribble_through_the_object_segments_it():
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    centre = centre_of(affine, (30, 80, 90))
    volume, (truth,) = phantom(affine, shape=(30, 80, 90), balls=[(centre, 8.0, 40.0)])
    line = tuple((centre[0] + dx, centre[1], centre[2]) for dx in (-5.0, 0.0, 5.0))
    assert len(prompt_voxels(volume, [Scribble(line)]).positive) >= 12
    session = InteractiveSession(volume, ClassicalEngine())
    assert dice(session.add_prompt("s", Scribble(line)), truth) > 0.9


def test_a_superseded_prompt_is_cancelled_and_leaves_the_object_as_it_was():
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    centre = centre_of(affine, (30, 80, 90))
    volume, _ = phantom(affine, shape=(30, 80, 90), balls=[(centre, 8.0, 40.0)])
    session = InteractiveSession(volume, ClassicalEngine())
    first = session.add_prompt("s", Point(centre))
    with pytest.raises(CancelledError):
        session.add_prompt("s", Point(centre, positive=False), cancel=lambda: True)
    obj = session.objects["s"]
    assert np.array_equal(obj.mask, first) and len(obj.prompts) == 1


def test_an_object_starts_with_a_click_inside_or_a_box():
    volume = Volume(np.zeros((5, 10, 10), np.float32), np.eye(4))
    session = InteractiveSession(volume, ClassicalEngine())
    with pytest.raises(InferenceError, match="start an object with a click inside it"):
        session.add_prompt("x", Point((2.0, 2.0, 2.0), positive=False))
    colour = Volume(np.zeros((2, 4, 4, 3), np.uint8), np.eye(4))
    with pytest.raises(InferenceError, match="grey-scale"):
        InteractiveSession(colour, ClassicalEngine())


def test_large_boxes_grow_on_a_coarser_grid_towards_cubic_voxels():
    assert shrink_factors((40, 100, 100), np.array([2.0, 0.7, 0.7])) == (1, 1, 1)
    factors = shrink_factors((300, 512, 512), np.array([1.25, 0.7, 0.7]))
    assert np.prod(np.ceil(np.array([300, 512, 512]) / factors)) <= 2_000_000
    assert factors[1] == factors[2] >= factors[0]


def test_a_click_in_a_large_structure_grows_past_its_first_box():
    """A slab 200 mm wide: the region reaches past the 80 mm first box (grown on a coarser
    grid once the box is large) and its edge is placed on the full grid."""
    affine = np.diag([0.7, 0.7, 1.25, 1.0])
    shape = (60, 320, 320)
    array = np.full(shape, 40.0, np.float32)
    array[5:55, 20:300, 30:290] = -850.0
    array += np.random.default_rng(3).normal(0, 15, shape).astype(np.float32)
    truth = np.zeros(shape, bool)
    truth[5:55, 20:300, 30:290] = True
    volume = Volume(array, affine)
    session = InteractiveSession(volume, ClassicalEngine())
    centre = centre_of(affine, shape)
    assert dice(session.add_prompt("lung", Point(centre)), truth) > 0.98


def test_a_negative_click_in_a_round_blob_takes_the_part_nearer_to_it():
    """No neck to cut at: the negative click removes the voxels nearer to it than to the
    positive click (a cap of the ball), and only those."""
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    shape = (30, 70, 70)
    centre = centre_of(affine, shape)
    volume, _ = phantom(affine, shape=shape, balls=[(centre, 10.0, 40.0)])
    session = InteractiveSession(volume, ClassicalEngine())
    whole = session.add_prompt("b", Point(centre))
    edge = (centre[0] + 6.0, centre[1], centre[2])
    cut = session.add_prompt("b", Point(edge, positive=False))
    assert not (cut & ~whole).any()
    removed = whole & ~cut
    assert 0.05 < removed.sum() / whole.sum() < 0.4
    index = np.argwhere(removed)[:, 2]  # columns: the removed cap lies towards +x
    assert index.min() > np.argwhere(whole)[:, 2].mean()


def test_a_negative_click_on_a_leak_keeps_a_large_spongy_object():
    """A lung is spongy (its vessels are holes); a leak into the solid heart beside it is
    cut off by a negative click there, on the averaged grid of a large object, without
    flooding the lung."""
    from medviewer.ai.classical_engine import FINE_MAX_VOXELS, split_off

    shape = (120, 150, 150)
    assert np.prod(shape) > FINE_MAX_VOXELS
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    lung = np.zeros(shape, bool)
    lung[10:110, 10:140, 10:90] = True
    for r in range(14, 140, 6):  # tube holes through it: the vessels
        for c in range(14, 90, 6):
            lung[:, r:r + 2, c:c + 2] = False
    heart = np.zeros(shape, bool)
    heart[30:90, 40:110, 95:145] = True
    leak = lung | heart
    leak[55:65, 70:80, 88:96] = True  # the neck between them
    volume = Volume(np.zeros(shape, np.float32), affine)
    kept = split_off(volume, leak, [(60, 75, 50)], [(60, 75, 120)])
    assert not (kept & ~leak).any()
    assert (kept & lung).sum() >= 0.9 * lung.sum()
    assert (kept & heart).sum() <= 0.1 * heart.sum()
