"""A stack's plan: shape, types and sources decided once, before anything decodes (issue 19).

The values the plans lead to are checked against pydicom elsewhere (test_narrow_dtype,
test_mosaic, test_series); here, what each kind of stack plans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.core.errors import LoadError
from medviewer.io.series import StackLoader, find_stacks
from medviewer.io.stack_plan import FrameSource, plan_stack
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.corpus import nibabel_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_a_signed_ct_starts_in_int16_and_widens_to_int32(tmp_path: Path) -> None:
    spec = SeriesSpec(shape=(3, 8, 6), signed=True, bits_stored=16, pattern_bits=12)
    write_series(tmp_path, spec)
    stacks, _ = find_stacks(tmp_path)
    plan = plan_stack(stacks[0].frames)
    assert plan.frames == stacks[0].frames and plan.mosaic is None
    assert (plan.shape, plan.dtype, plan.wide_dtype) == ((3, 8, 6), np.int16, np.int32)
    wide = plan.widened()
    assert (wide.dtype, wide.wide_dtype, wide.can_widen) == (np.int32, np.int32, False)
    assert wide.frames == plan.frames and wide.shape == plan.shape
    assert plan.nbytes == 3 * 8 * 6 * 2 + 3 * 256  # pixels and each frame's bookkeeping


def test_a_mosaic_plans_its_tiles_in_the_wide_type(tmp_path: Path) -> None:
    stacks, _ = find_stacks(nibabel_file("siemens_dwi_0.dcm.gz", tmp_path))
    stack = stacks[0]
    plan = plan_stack(stack.frames, stack.mosaic)
    assert plan.shape == stack.shape == (48, 128, 128)
    assert plan.mosaic is stack.mosaic and not plan.can_widen  # one decode, never redone
    assert sorted(f.tile for f in plan.frames) == list(range(48))


def test_colour_plans_samples_last_in_the_decoded_type() -> None:
    from pydicom.data import get_testdata_file

    stacks, _ = find_stacks(get_testdata_file("SC_rgb.dcm"))
    plan = plan_stack(stacks[0].frames)
    assert (plan.shape, plan.dtype, plan.can_widen) == ((1, 100, 100, 3), np.uint8, False)


def test_the_loader_allocates_the_plan(tmp_path: Path) -> None:
    write_series(tmp_path, SeriesSpec(shape=(2, 4, 5), rescale_slope=0.5))
    stacks, _ = find_stacks(tmp_path)
    loader = StackLoader(stacks[0])
    assert loader.array.shape == loader.plan.shape == (2, 4, 5)
    assert loader.array.dtype == loader.plan.dtype == np.float32


def test_a_file_whose_claims_its_data_cannot_back_is_refused_before_planning(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    written = write_series(tmp_path, SeriesSpec(shape=(1, 4, 4)))
    stacks, _ = find_stacks(written.paths[0])
    record = replace(stacks[0].first, rows=4096)  # the pixel data holds 4x4
    with pytest.raises(LoadError, match=r"truncated"):
        plan_stack([FrameSource(record, 0, 1.0, 0.0)])
