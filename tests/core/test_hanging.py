"""Hanging protocols: matching rules, the built-ins' choices, the JSON form and its errors."""

from __future__ import annotations

import pytest

from medviewer.core.hanging import (
    BUILT_INS,
    HangingProtocol,
    ProtocolError,
    SeriesFacts,
    ViewSpec,
    choose,
    dump_protocols,
    load_protocols,
)
from medviewer.core.slab import Slab

CHEST = SeriesFacts("CT", "CHEST", "CT chest 1.25 mm", "CT CHEST")


@pytest.mark.parametrize(
    ("facts", "name"),
    [
        (CHEST, "Chest CT"),
        (SeriesFacts("CT", "CHEST", priors=2), "Chest CT with prior"),
        (SeriesFacts("CT", "CHEST", fusable=True), "PET/CT"),
        (SeriesFacts("CT", "HEAD"), "Head CT"),
        (SeriesFacts("DX", "CHEST"), "Radiograph"),
        (SeriesFacts("MR", "KNEE"), None),
        (SeriesFacts("CT", "ABDOMEN"), None),
    ],
)
def test_the_built_ins_choose(facts, name):
    chosen = choose(BUILT_INS, facts)
    assert (chosen.name if chosen else None) == name


def test_the_chest_ct_protocol_shows_lung_and_mediastinum_side_by_side():
    chest = choose(BUILT_INS, CHEST)
    assert chest.layout == "1x2" and chest.slot_b == "same"
    assert chest.view(0).window == (-600.0, 1500.0) and chest.view(1).window == (50.0, 350.0)
    assert chest.view(5) == ViewSpec()


def test_user_protocols_come_first_and_round_trip():
    text = """[{"name": "Chest slab MIP", "modalities": ["ct"], "description": "chest",
                "layout": "1x3", "views": [{"window": "lung", "slab": {"mode": "mip", "mm": 10}},
                {"window": [40, 400], "invert": true}]}]"""
    mine = load_protocols(text)
    assert choose([*mine, *BUILT_INS], CHEST).name == "Chest slab MIP"
    protocol = mine[0]
    assert protocol.modalities == ("CT",)
    assert protocol.view(0) == ViewSpec((-600.0, 1500.0), Slab("mip", 10.0))
    assert protocol.view(1) == ViewSpec((40.0, 400.0), None, True)
    assert load_protocols(dump_protocols(mine)) == mine
    assert load_protocols(dump_protocols(BUILT_INS)) == list(BUILT_INS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"name": "x"}', "a JSON list"),
        ('[{"layout": "1x1"}]', "non-empty 'name'"),
        ('[{"name": "a", "layout": "3x3"}]', "a: layout must be one of 1x1, 1x2, 1x3, 2x2"),
        ('[{"name": "a", "slot_b": "left"}]', "slot_b must be one of none, same, prior"),
        ('[{"name": "a", "colour": 1}]', "unknown field(s) colour"),
        ('[{"name": "a", "description": "("}]', "description is not a valid pattern"),
        ('[{"name": "a", "views": [{}, {}]}]', "at most 1 (the views of layout 1x1)"),
        ('[{"name": "a", "views": [{"window": "disco"}]}]', "unknown window preset 'disco'"),
        ('[{"name": "a", "views": [{"window": [40, 0]}]}]', "[center, width >= 1]"),
        ('[{"name": "a", "views": [{"slab": {"mode": "max", "mm": 5}}]}]', "unknown slab mode"),
        ('[{"name": "a", "min_priors": -1}]', "min_priors must be an integer >= 0"),
        ('[{"name": "a", "modalities": "CT"}]', "modalities must be a list of strings"),
    ],
)
def test_bad_protocols_say_what_is_wrong(text, message):
    with pytest.raises(ProtocolError, match=None) as raised:
        load_protocols(text)
    assert message in str(raised.value)


def test_a_fusing_protocol_needs_something_to_fuse():
    fusing = HangingProtocol("fused", fuse=True)
    assert not fusing.matches(SeriesFacts("CT")) and fusing.matches(SeriesFacts("CT", fusable=True))
