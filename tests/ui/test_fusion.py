"""PET over CT in the main window, on the demo study: the hot nodule is coloured where the CT
has it on every plane, the readout and corner say what is fused, the style controls change
the pixels, and a series of another frame of reference is not fused."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.fusion import FusionStyle
from medviewer.core.volume import Volume
from medviewer.ui.fusion_layer import Fusion
from medviewer.ui.slice_annotations import readout_text
from tests.ui.helpers import grab_rgb, widget_pos
from tests.ui.test_ai_workflow import _truth
from tests.waits import WAIT_MS


@pytest.fixture
def fused_window(qtbot, ct_window, demo_study):
    window = ct_window
    window.set_layout("1x3")
    pet_folder = demo_study.dicom / "DEMO0001" / "PT"
    window.import_paths([str(pet_folder)])
    qtbot.waitUntil(lambda: window.imports.job is not None and window.imports.job.done,
                    timeout=WAIT_MS)  # fmt: skip
    assert [name.split()[0] for _, name in window.fusion.candidates()] == ["PT"]
    job = window.fusion.fuse_active()
    qtbot.waitUntil(lambda: job.done, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: all(v.fusion is not None for v in window.grid.views),
                    timeout=WAIT_MS)  # fmt: skip
    assert "+ PT SUV 0-6, 50 %" in window.grid.views[0].annotations.corners["bottom_right"]
    return window


def _pixel(view, lps) -> np.ndarray:
    x, y, _ = view.patient_to_view(np.asarray(lps, float))
    pos = widget_pos(view, x, y)
    return grab_rgb(view.graphics.viewport())[pos.y(), pos.x()].astype(int)


def test_the_hot_nodule_is_coloured_where_the_ct_has_it(qtbot, fused_window, demo_study):
    window = fused_window
    window.grid.set_crosshair(False)  # its lines cross at the point looked at
    nodule = max(_truth(demo_study, "CT")["nodules"], key=lambda n: n["diameter_mm"])
    pet_nodule = max(_truth(demo_study, "PT")["nodules"], key=lambda n: n["diameter_mm"])
    centre = np.asarray(nodule["centroid_lps"])
    # SUV 0-15: the nodule (about SUV 9) is orange; at the default 0-6 it is the top, white
    window.fusion.set_style(FusionStyle(0.0, 15.0, 0.6))
    for view in window.grid.views:
        view.set_crosshair(centre, move=True)
        view.set_window(-600, 1500)
        pet = view.fusion.volume
        # the samples on the shown plane: hot at the nodule, in SUV
        x, y, _ = view.patient_to_view(centre)
        sy, sx = view.plane_slice.pixel_spacing
        hot = view.fusion_layer.value_at(round(y / sy), round(x / sx))
        assert hot is not None and 0.5 * pet_nodule["suv"] < hot < 1.2 * pet_nodule["suv"]
        r, g, b = _pixel(view, centre)
        assert r > b + 60 and r >= g, (view.state.plane, (r, g, b))  # hot iron: red to yellow
    axial = window.grid.views[0]
    text = readout_text(axial, centre)
    assert " PT " in text and text.split(" PT ")[1].split()[1] == "SUV"
    assert float(text.split(" PT ")[1].split()[0]) > 0.5 * pet_nodule["suv"]
    assert "+ PT SUV 0-15, 60 %" in axial.annotations.corners["bottom_right"]
    assert pet.metadata.suv.factor == pytest.approx(_truth(demo_study, "PT")["suv_bw_factor"])


def test_the_style_controls_recolour_without_resampling(qtbot, fused_window, demo_study):
    window = fused_window
    window.grid.set_crosshair(False)
    axial = window.grid.views[0]
    nodule = max(_truth(demo_study, "CT")["nodules"], key=lambda n: n["diameter_mm"])
    centre = np.asarray(nodule["centroid_lps"])
    axial.set_crosshair(centre, move=True)
    axial.set_window(-600, 1500)
    samplings = axial.fusion_layer.samplings
    controls = window.window_actions.fusion_controls
    assert window.window_actions.fusion_action.isVisible()
    controls.opacity.setValue(0)  # only the CT: grey
    r, g, b = _pixel(axial, centre)
    assert abs(r - g) <= 2 and abs(g - b) <= 2
    controls.opacity.setValue(100)
    controls.color_map.setCurrentText("rainbow")
    controls.high.setValue(20.0)  # SUV 9 is now mid-window: green-ish, not red
    r, g, b = _pixel(axial, centre)
    assert g > r and g > b, (r, g, b)
    assert axial.fusion.style == FusionStyle(0.0, 20.0, 1.0, "rainbow")
    assert axial.fusion_layer.samplings == samplings  # recoloured, not resampled
    assert "+ PT SUV 0-20, 100 %" in axial.annotations.corners["bottom_right"]
    window.fusion.remove()
    assert all(v.fusion is None for v in window.grid.views)
    assert not window.window_actions.fusion_action.isVisible()
    assert not any(line.startswith("+ PT") for line in axial.annotations.corners["bottom_right"])


def test_another_frame_of_reference_is_not_fused(qtbot, ct_window):
    view = ct_window.grid.active
    other = view.volume
    meta = other.metadata.__class__(**{**other.metadata.__dict__,
                                       "frame_of_reference_uid": "1.2.3.4",
                                       "series_uid": "1.2.3.5"})  # fmt: skip
    stranger = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4), meta)
    assert not view.set_fusion(Fusion(stranger, FusionStyle()))
    assert view.fusion is None


def test_screenshot_fuses_the_pet(tmp_path, qapp, demo_study, capsys):
    """--fuse: the PET's colours where the screenshot of the CT alone is grey; another frame
    of reference (the radiograph) is refused, and nothing is written."""
    from PySide6.QtGui import QImage

    from medviewer.cli import main

    ct, pt = (str(demo_study.dicom / "DEMO0001" / m) for m in ("CT", "PT"))
    plain, fused = tmp_path / "ct.png", tmp_path / "fused.png"
    common = ["--window", "1500/-600", "--size", "400x400"]
    assert main(["screenshot", ct, "--out", str(plain), *common]) == 0
    assert main(["screenshot", ct, "--out", str(fused), "--fuse", pt, *common]) == 0
    a, b = QImage(str(plain)), QImage(str(fused))
    tinted = 0
    for y in range(60, 340, 4):
        for x in range(60, 340, 4):
            p, f = a.pixelColor(x, y), b.pixelColor(x, y)
            assert p.saturation() < 60  # the CT alone: grey (and the blue-grey annotations)
            tinted += f.red() - f.blue() > 40
    assert tinted > 50  # the myocardium, the aorta, the spine's marrow and the nodules
    refused = tmp_path / "refused.png"
    dx = str(demo_study.dicom / "DEMO0001" / "DX")
    assert main(["screenshot", ct, "--out", str(refused), "--fuse", dx]) == 2
    assert "is not on the frame of reference" in capsys.readouterr().err
    assert not refused.exists()


def test_a_coarser_sampling_grid_centres_each_sample_on_its_block_of_pixels():
    from medviewer.core.geometry import reslice
    from medviewer.ui.fusion_layer import coarser_plane, sampling_step

    ct_affine = np.diag([0.7, 0.7, 1.25, 1.0])
    ct_affine[:3, 3] = (-100.0, -80.0, 30.0)
    plane = reslice(np.zeros((5, 9, 11), np.int16), ct_affine, "coronal", 4)
    coarse = coarser_plane(plane, 2)
    assert coarse.image.shape == (3, 6)  # 5 rows x 11 cols -> ceil halves
    for r, c in ((0, 0), (1, 4), (2, 5)):
        fine = [plane.affine @ np.array([c * 2 + dc, r * 2 + dr, 0, 1.0])
                for dr in (0, 1) for dc in (0, 1)]
        centre = coarse.affine @ np.array([c, r, 0, 1.0])
        np.testing.assert_allclose(centre, np.mean(fine, axis=0), atol=1e-9)
    assert coarse.pixel_spacing == (2 * plane.pixel_spacing[0], 2 * plane.pixel_spacing[1])
    pet_volume = Volume(np.zeros((3, 3, 3), np.float32), np.diag([4.0, 4.0, 4.0, 1.0]))
    assert sampling_step(pet_volume, plane) == 1  # 4 mm voxels, 1.25 mm rows: every pixel
    axial = reslice(np.zeros((5, 9, 11), np.int16), ct_affine, "axial", 2)
    assert sampling_step(pet_volume, axial) == 2  # 0.7 mm pixels: every 2nd
