"""Signed 16-bit CTs load as int16, and widen exactly when a slice does not fit (issue 18).

Every volume is compared with pydicom's own decoding: ``apply_modality_lut(pixel_array)``
of the file and frame each slice came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from medviewer.core.volume import Volume
from medviewer.io import decode, series
from medviewer.io.series import (
    LoadStarted,
    SlicesLoaded,
    StackLoader,
    find_stacks,
    iter_load,
    load_series,
)
from medviewer.io.stack_plan import plan_stack
from medviewer.io.thumbnails import decode_middle_frame
from medviewer.synthetic.dicom_writer import SeriesSpec, pattern, write_series
from tests.io.test_series import _enhanced_rescale

SHAPE = (9, 16, 12)  # 9 compressed files: the decoder processes take them on two cores
RLE = "1.2.840.10008.1.2.5"
PADDING = -32768  # stored; with intercept -1024 it is -33792 HU: outside int16


def ct_spec(values: np.ndarray | None = None, **changes) -> SeriesSpec:
    """A signed CT as scanners export it: Bits Stored 16, intercept -1024, 12-bit values."""
    fields = dict(shape=SHAPE, signed=True, bits_stored=16, pattern_bits=12, seed=60)
    return SeriesSpec(**{**fields, **changes}, values=values)


def with_padding(slice_index: int, value: int = PADDING) -> np.ndarray:
    """The spec's stored values with one voxel of `slice_index` (sorted order) set to `value`."""
    stored = pattern(SHAPE, -1024.0) - 2048
    stored[slice_index, 3, 4] = value
    return stored


def pydicom_volume(volume: Volume) -> np.ndarray:
    """Each slice as pydicom decodes its file, rescaled (float64; an enhanced file by its
    functional groups' Pixel Value Transformation, as the corpus test does)."""
    slices = []
    for path, frame in volume.metadata.source_frames:
        ds = pydicom.dcmread(path)
        if "PerFrameFunctionalGroupsSequence" in ds:
            pixels = _enhanced_rescale(ds, ds.pixel_array)
        else:
            pixels = apply_modality_lut(ds.pixel_array, ds)[np.newaxis]
        slices.append(pixels[frame])
    return np.stack(slices)


def assert_equal_to_pydicom(volume: Volume, written) -> None:
    reference = pydicom_volume(volume)
    np.testing.assert_array_equal(volume.array, reference)
    np.testing.assert_array_equal(volume.array, written.values)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", RLE], ids=["native", "rle"])
def test_signed_16bit_ct_loads_as_int16_equal_to_pydicom(tmp_path: Path, syntax: str) -> None:
    written = write_series(tmp_path, ct_spec(transfer_syntax=syntax))
    volume = load_series(tmp_path)
    assert volume.array.dtype == np.int16
    assert_equal_to_pydicom(volume, written)
    assert volume.array.min() == -3072  # stored -2048 with intercept -1024


@pytest.mark.parametrize(
    "kind",
    [{}, {"transfer_syntax": RLE}, {"multiframe": True}],
    ids=["native", "rle", "multiframe"],
)
@pytest.mark.parametrize("where", [0, 4, 8], ids=["first", "middle", "last"])
def test_a_slice_outside_int16_widens_the_volume_exactly(
    tmp_path: Path, kind: dict, where: int
) -> None:
    written = write_series(tmp_path, ct_spec(with_padding(where), **kind))
    volume = load_series(tmp_path)
    assert volume.array.dtype == np.int32
    assert_equal_to_pydicom(volume, written)
    assert volume.array[where, 3, 4] == -33792


def test_unsigned_16bit_above_int16_after_rescale_widens_exactly(tmp_path: Path) -> None:
    stored = pattern(SHAPE, -1024.0)
    stored[2, 0, 0] = 65535  # 64511 after the intercept
    written = write_series(tmp_path, SeriesSpec(shape=SHAPE, bits_stored=16, values=stored))
    volume = load_series(tmp_path)
    assert volume.array.dtype == np.int32
    assert_equal_to_pydicom(volume, written)


def test_the_common_case_allocates_and_decodes_once(tmp_path: Path, monkeypatch) -> None:
    write_series(tmp_path, ct_spec())
    calls: list[list[int]] = []
    real = series.iter_decode

    def spy(plan, out, cancel=None, only=None):
        calls.append(list(only))
        return real(plan, out, cancel, only)

    monkeypatch.setattr(series, "iter_decode", spy)
    stacks, _ = find_stacks(tmp_path)
    loader = StackLoader(stacks[0])
    array = loader.array
    assert sorted(loader.slices()) == list(range(SHAPE[0]))
    assert loader.array is array and array.dtype == np.int16
    assert calls == [list(range(SHAPE[0]))]


def test_widening_hands_out_every_slice_once(tmp_path: Path) -> None:
    written = write_series(tmp_path, ct_spec(with_padding(6)))
    stacks, _ = find_stacks(tmp_path)
    loader = StackLoader(stacks[0])
    seen = list(loader.slices())
    assert sorted(seen) == list(range(SHAPE[0]))
    assert loader.array.dtype == np.int32
    np.testing.assert_array_equal(loader.volume().array, written.values)


def test_progressive_load_widens_with_a_second_load_started(tmp_path: Path) -> None:
    written = write_series(tmp_path, ct_spec(with_padding(1)))
    events = iter_load(tmp_path, interval_s=0.0)
    collected: list[LoadStarted | SlicesLoaded] = []
    shown: dict[int, np.ndarray] = {}  # what a viewer would show of each slice when told
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            volume = stop.value
            break
        collected.append(event)
        if isinstance(event, LoadStarted):
            shown = {k: event.volume.array[k].copy() for k in event.loaded}
    starts = [e for e in collected if isinstance(e, LoadStarted)]
    assert [s.volume.array.dtype for s in starts] == [np.int16, np.int32]
    assert starts[0].loaded == (SHAPE[0] // 2,)  # the middle slice, which fits int16
    # the second start carries the slices decoded so far (the middle one, and whichever the
    # threads finished first: the order depends on the machine), with their exact values
    assert SHAPE[0] // 2 in starts[1].loaded
    for k, pixels in shown.items():
        np.testing.assert_array_equal(pixels, written.values[k])
    after = collected[collected.index(starts[1]) + 1 :]
    reported = list(starts[1].loaded) + [k for e in after for k in e.indices]
    assert sorted(reported) == list(range(SHAPE[0]))  # each slice reported once, none lost
    assert volume is starts[1].volume
    assert volume.metadata == starts[0].volume.metadata
    assert_equal_to_pydicom(volume, written)


def test_progressive_load_whose_middle_slice_overflows_starts_wide(tmp_path: Path) -> None:
    written = write_series(tmp_path, ct_spec(with_padding(SHAPE[0] // 2)))
    events = list(iter_load(tmp_path, interval_s=0.0))
    starts = [e for e in events if isinstance(e, LoadStarted)]
    assert len(starts) == 1 and starts[0].volume.array.dtype == np.int32
    np.testing.assert_array_equal(starts[0].volume.array, written.values)


def test_progress_after_widening_counts_every_slice_once(tmp_path: Path) -> None:
    write_series(tmp_path, ct_spec(with_padding(8)))
    reports: list[tuple[int, int]] = []
    load_series(tmp_path, progress=lambda done, total: reports.append((done, total)))
    assert reports[-1] == (SHAPE[0], SHAPE[0])
    assert [done for done, _ in reports] == sorted({done for done, _ in reports})


def test_thumbnail_of_an_overflowing_middle_slice_is_exact(tmp_path: Path) -> None:
    written = write_series(tmp_path, ct_spec(with_padding(SHAPE[0] // 2)))
    stacks, _ = find_stacks(tmp_path)
    np.testing.assert_array_equal(decode_middle_frame(stacks[0]), written.values[SHAPE[0] // 2])


@pytest.mark.parametrize(
    ("changes", "start", "wide"),
    [
        ({}, np.int16, np.int32),  # signed, Bits Stored 16, intercept -1024
        ({"rescale_intercept": 0.0}, np.int16, np.int16),  # no rescale: as stored
        ({"signed": False, "bits_stored": 12}, np.int16, np.int16),  # the usual unsigned CT
        ({"rescale_slope": 0.5}, np.float32, np.float32),  # a float rescale
        ({"rescale_slope": 40000.0}, np.int32, np.int32),  # slope beyond int16
        ({"rescale_slope": 100000.0}, np.float32, np.float32),  # beyond int32
        ({"rescale_intercept": -40000.0}, np.int32, np.int32),  # intercept beyond int16
    ],
)
def test_start_and_wide_types(tmp_path: Path, changes: dict, start, wide) -> None:
    write_series(tmp_path, ct_spec(shape=(2, 4, 4), **changes))
    stacks, _ = find_stacks(tmp_path)
    plan = plan_stack(stacks[0].frames)
    assert (plan.dtype, plan.wide_dtype) == (np.dtype(start), np.dtype(wide))
    assert plan.can_widen == (start != wide)


def test_overflow_error_names_the_file_and_frame(tmp_path: Path) -> None:
    write_series(tmp_path, ct_spec(with_padding(0)))
    stacks, _ = find_stacks(tmp_path)
    plan = plan_stack(stacks[0].frames)
    out = np.zeros(plan.shape, plan.dtype)
    with pytest.raises(decode.SliceOverflow, match=r"frame 0 does not fit int16"):
        list(decode.iter_decode(plan, out))
