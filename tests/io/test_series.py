"""load_series against known truth, SimpleITK and pydicom."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.pixels import apply_color_lut, apply_modality_lut

from medviewer.core.errors import CancelledError, LoadError
from medviewer.core.geometry import voxel_to_patient
from medviewer.core.volume import Volume
from medviewer.io import decoder_pool
from medviewer.io.decoder_pool import DecoderPool
from medviewer.io.series import StackLoader, find_stacks, load_series
from medviewer.synthetic.dicom_writer import SeriesSpec, write_radiograph, write_series
from tests.conftest import hash_tree
from tests.corpus import corpus_files, corpus_id

OBLIQUE = (0.8660254, 0.5, 0.0, 0.0, 0.0, -1.0)  # rotated sagittal-ish
ROTATED = tuple(
    np.round(
        [
            0.9,
            0.3,
            -0.3162277660168379,
            -0.2608202654496399,
            0.9526259277723355,
            0.1563183018130394,
        ],
        12,
    )
)

SPECS = {
    "axial": SeriesSpec(),
    "oblique": SeriesSpec(orientation=OBLIQUE, seed=2),
    "non_square_pixels": SeriesSpec(pixel_spacing=(0.5, 1.7), shape=(5, 20, 9), seed=3),
    "feet_first_flipped": SeriesSpec(orientation=(-1, 0, 0, 0, 1, 0), seed=4),
    "coronal": SeriesSpec(orientation=(1, 0, 0, 0, 0, -1), seed=5),
    "signed_storage": SeriesSpec(signed=True, rescale_intercept=0.0, seed=6),
    "float_rescale": SeriesSpec(rescale_slope=0.25, rescale_intercept=-7.5, seed=7),
    "implicit_vr": SeriesSpec(transfer_syntax="1.2.840.10008.1.2", seed=8),
    "rle": SeriesSpec(transfer_syntax="1.2.840.10008.1.2.5", seed=9),
    "j2k": SeriesSpec(shape=(4, 64, 64), transfer_syntax="1.2.840.10008.1.2.4.90", seed=10),
}


def _check_against_truth(volume: Volume, written) -> None:
    assert volume.shape == written.values.shape
    np.testing.assert_array_equal(volume.array, written.values)
    np.testing.assert_allclose(volume.affine, written.affine, atol=1e-6)


@pytest.mark.parametrize("name", list(SPECS))
def test_generated_series_equal_truth_and_simpleitk(tmp_path: Path, name: str) -> None:
    written = write_series(tmp_path, SPECS[name])
    volume = load_series(tmp_path)
    _check_against_truth(volume, written)
    assert volume.metadata.warnings == ()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), volume.array, rtol=1e-6)
    np.testing.assert_allclose(Volume.from_sitk(image).affine, volume.affine, atol=1e-5)


def test_int_rescale_keeps_int16_and_float_rescale_gives_float32(tmp_path: Path) -> None:
    write_series(tmp_path / "a", SPECS["axial"])
    write_series(tmp_path / "b", SPECS["float_rescale"])
    assert load_series(tmp_path / "a").array.dtype == np.int16
    assert load_series(tmp_path / "b").array.dtype == np.float32


def test_voxel_positions_match_dicom_image_position(tmp_path: Path) -> None:
    """Each slice's (0,0) voxel maps to that file's Image Position (Patient)."""
    write_series(tmp_path, SeriesSpec(orientation=OBLIQUE, seed=11))
    volume = load_series(tmp_path)
    for k, (location, _) in enumerate(volume.metadata.source_frames):
        ds = pydicom.dcmread(location, stop_before_pixels=True)
        mapped = voxel_to_patient(volume.affine, [0, 0, k])
        np.testing.assert_allclose(mapped, [float(v) for v in ds.ImagePositionPatient], atol=1e-4)
        pixels = apply_modality_lut(pydicom.dcmread(location).pixel_array, ds)
        np.testing.assert_array_equal(volume.array[k], pixels)


def test_uneven_spacing_is_warned_and_positions_kept(tmp_path: Path) -> None:
    spec = SeriesSpec(slice_offsets=(0.0, 2.0, 4.0, 6.5, 8.5, 10.5), shape=(6, 8, 8), seed=12)
    write_series(tmp_path, spec)
    volume = load_series(tmp_path)
    assert any("uneven" in w for w in volume.metadata.warnings)
    assert volume.spacing[2] == pytest.approx(2.1)  # mean step first->last


def test_missing_slice_gap_is_warned(tmp_path: Path) -> None:
    spec = SeriesSpec(slice_offsets=(0.0, 2.0, 4.0, 8.0, 10.0), shape=(5, 8, 8), seed=13)
    write_series(tmp_path, spec)
    assert any("gap" in w for w in load_series(tmp_path).metadata.warnings)


def test_gantry_tilt_is_warned(tmp_path: Path) -> None:
    step = (0.0, 0.3, 2.5)  # slices move along y too: a tilted gantry
    write_series(tmp_path, SeriesSpec(slice_step=step, shape=(5, 8, 8), seed=14))
    volume = load_series(tmp_path)
    assert any("tilt" in w for w in volume.metadata.warnings)
    assert volume.spacing[2] == pytest.approx(2.5)


def test_two_stacks_in_one_series_are_split(tmp_path: Path) -> None:
    first = write_series(tmp_path, SeriesSpec(series_uid="1.2.3.4", acquisition_number=1, seed=20))
    second = write_series(
        tmp_path / "b",
        SeriesSpec(
            series_uid="1.2.3.4",
            acquisition_number=2,
            orientation=(1, 0, 0, 0, 0, -1),
            seed=21,
            shape=(6, 10, 12),
        ),
    )
    stacks, _ = find_stacks(tmp_path)
    assert [s.shape for s in stacks] == [(8, 16, 12), (6, 10, 12)]
    _check_against_truth(load_series(tmp_path, stack=0), first)
    _check_against_truth(load_series(tmp_path, stack=1), second)
    assert "2 stacks" in load_series(tmp_path).metadata.warnings[-1]


def test_repeated_positions_split_by_acquisition(tmp_path: Path) -> None:
    a = write_series(tmp_path / "a", SeriesSpec(series_uid="1.2.3.5", acquisition_number=1))
    b = write_series(
        tmp_path / "b",
        SeriesSpec(series_uid="1.2.3.5", acquisition_number=2, seed=1, rescale_intercept=-1000.0),
    )
    stacks, _ = find_stacks(tmp_path)
    assert len(stacks) == 2
    loaded = sorted(
        (load_series(tmp_path, stack=k) for k in (0, 1)), key=lambda v: float(v.array.min())
    )
    _check_against_truth(loaded[0], a)
    _check_against_truth(loaded[1], b)


def test_enhanced_multiframe_with_shuffled_frames(tmp_path: Path) -> None:
    written = write_series(tmp_path, SeriesSpec(multiframe=True, orientation=OBLIQUE, seed=30))
    volume = load_series(written.paths[0])
    _check_against_truth(volume, written)
    frames = [f for _, f in volume.metadata.source_frames]
    assert sorted(frames) == list(range(8)) and frames != list(range(8))


def test_radiograph_loads_as_one_slice(tmp_path: Path) -> None:
    path, values = write_radiograph(tmp_path)
    volume = load_series(path)
    assert volume.shape == (1, 64, 48)
    np.testing.assert_array_equal(volume.array[0], values)
    assert volume.spacing[:2] == pytest.approx([0.2, 0.2])
    assert volume.metadata.photometric == "MONOCHROME1"
    assert any("Imager Pixel Spacing" in w for w in volume.metadata.warnings)


def test_zip_archive_loads_like_the_folder(tmp_path: Path) -> None:
    written = write_series(tmp_path / "s", SeriesSpec(orientation=OBLIQUE, seed=31))
    archive = shutil.make_archive(str(tmp_path / "study"), "zip", tmp_path / "s")
    _check_against_truth(load_series(archive), written)


def test_progressive_loading_hands_out_every_slice_once(series_dir) -> None:
    folder, written = series_dir
    stacks, _ = find_stacks(folder)
    loader = StackLoader(stacks[0])
    seen = []
    for index in loader.slices():
        np.testing.assert_array_equal(loader.array[index], written.values[index])
        seen.append(index)
    assert sorted(seen) == list(range(written.values.shape[0]))
    _check_against_truth(loader.volume(), written)


def test_cancel_stops_loading(series_dir) -> None:
    folder, _ = series_dir
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(CancelledError):
        load_series(folder, cancel=cancel)


def test_progress_reports_every_slice(series_dir) -> None:
    folder, written = series_dir
    reports: list[tuple[int, int]] = []
    load_series(folder, progress=lambda done, total: reports.append((done, total)))
    n = written.values.shape[0]
    assert reports == [(k, n) for k in range(1, n + 1)]


def test_junk_beside_a_series_is_reported_and_inputs_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    written = write_series(folder, SeriesSpec(seed=40))
    good = written.paths[0].read_bytes()
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "truncated.dcm").write_bytes(good[: len(good) - 50])
    (folder / "header_only.dcm").write_bytes(good[: len(good) - 16 * 12 * 2 - 12])
    (folder / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    before = hash_tree(folder)
    _stacks, result = find_stacks(folder)
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert set(reasons) == {
        "empty.dcm",
        "notes.txt",
        "truncated.dcm",
        "header_only.dcm",
        "random.bin",
    }
    assert reasons["truncated.dcm"].startswith("truncated")
    assert reasons["empty.dcm"] == "not a DICOM file"
    assert "pixel data" in reasons["header_only.dcm"]
    _check_against_truth(load_series(folder), written)
    assert hash_tree(folder) == before


def test_no_image_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(LoadError, match="no loadable DICOM image"):
        load_series(tmp_path)


def test_decoder_process_pool_matches_in_process(tmp_path: Path) -> None:
    written = write_series(
        tmp_path, SeriesSpec(shape=(3, 64, 64), seed=50, transfer_syntax="1.2.840.10008.1.2.4.90")
    )
    pool = DecoderPool(2)
    try:
        results = [pool.decode(str(p), "", [0]) for p in written.paths]
        with pytest.raises(LoadError, match="cannot decode"):
            pool.decode(str(tmp_path / "missing.dcm"), "", [0])
        assert pool.decode(str(written.paths[0]), "", [0]).shape == (1, 64, 64)
    finally:
        pool.close()
    for path, result in zip(written.paths, results, strict=True):
        np.testing.assert_array_equal(result[0], pydicom.dcmread(path).pixel_array)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_many_compressed_files_decode_in_worker_processes(tmp_path: Path) -> None:
    """With >= 8 compressed files the decoder processes do the work; results equal the truth."""
    written = write_series(
        tmp_path, SeriesSpec(shape=(9, 64, 64), seed=51, transfer_syntax="1.2.840.10008.1.2.4.90")
    )
    _check_against_truth(load_series(tmp_path), written)
    assert len(decoder_pool.pool().workers) >= 2


# -- the corpus: every file pydicom decodes loads identically -------------------------------

CORPUS = corpus_files()


def _reference(path: Path) -> np.ndarray | None:
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception:  # noqa: BLE001 - not decodable by pydicom: not part of this check
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixels[np.newaxis] if frames == 1 else pixels
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        return apply_color_lut(pixels, ds)
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced_rescale(ds, pixels)
    if "DoseGridScaling" in ds:  # RT Dose: dose = stored value x DoseGridScaling (PS3.3 C.8.8.3)
        return pixels * float(ds.DoseGridScaling)
    return apply_modality_lut(pixels, ds)


def _enhanced_rescale(ds, pixels: np.ndarray) -> np.ndarray:
    out = pixels.astype(np.float64)
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else {}
    for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        group = next((g for g in (item, shared) if "PixelValueTransformationSequence" in g), None)
        if group is not None:
            pvt = group.PixelValueTransformationSequence[0]
            out[k] = out[k] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
    return out


@pytest.mark.parametrize("path", CORPUS, ids=[corpus_id(p) for p in CORPUS])
def test_corpus_file_loads_exactly_as_pydicom_decodes(path: Path) -> None:
    reference = _reference(path)
    if reference is None:
        pytest.skip("pydicom cannot decode this file either")
    volume = load_series(path)
    order = [frame for _, frame in volume.metadata.source_frames]
    reference = reference[order]
    assert volume.array.shape == reference.shape
    assert volume.is_color == (reference.ndim == 4)
    if volume.array.dtype.kind == "f":
        np.testing.assert_allclose(
            volume.array, reference, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(reference).max()))
        )
    else:
        np.testing.assert_array_equal(volume.array, reference)


def test_each_compressed_file_is_decoded_once(tmp_path: Path, monkeypatch) -> None:
    """Choosing the output dtype must not decode a file that is decoded again afterwards."""
    from medviewer.io import pydicom_pixels

    written = write_series(
        tmp_path,
        SeriesSpec(
            shape=(3, 64, 64), multiframe=True, seed=60, transfer_syntax="1.2.840.10008.1.2.5"
        ),
    )
    calls: list[str] = []
    original = pydicom_pixels.decode_frames

    def counting(path: str, member: str, frames: list[int]) -> np.ndarray:
        calls.append(path)
        return original(path, member, frames)

    monkeypatch.setattr(pydicom_pixels, "decode_frames", counting)
    _check_against_truth(load_series(written.paths[0]), written)
    assert calls == [str(written.paths[0])]
