"""Hanging protocols: rules that choose how a series is laid out when it is read.

A :class:`HangingProtocol` matches a series by modality, body part, a description pattern,
how many earlier studies of the patient there are and (for a fusing protocol) whether a
PET/NM series shares its frame of reference, and says the layout, what the second
slot shows (the same series, the newest prior of the same modality, or nothing), each
view's window, slab and inversion, and whether a PET of the same frame of reference is fused.
The first protocol that matches wins: the user's own (a JSON file beside the settings) before
the built-ins. Everything here is plain data and validation (no Qt); the viewer applies it
(``ui/hanging_controller.py``).

JSON form of one protocol::

    {"name": "Chest CT", "modalities": ["CT"], "body_parts": ["CHEST"],
     "description": "chest|thorax|lung", "min_priors": 0, "layout": "1x2",
     "slot_b": "same", "fuse": false,
     "views": [{"window": "Lung"}, {"window": [50, 350]},
               {"window": "Lung", "slab": {"mode": "mip", "mm": 10}}]}

``window`` is a built-in preset's name (case-insensitive, :data:`CT_PRESETS`) or ``[center,
width]``; views past the list keep the series' own window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medviewer.core.slab import Slab
from medviewer.core.windowing import CT_PRESETS

LAYOUT_VIEWS = {"1x1": 1, "1x2": 2, "1x3": 3, "2x2": 4}
SLOT_B = ("none", "same", "prior")
_PRESETS = {preset.name.lower(): (preset.center, preset.width) for preset in CT_PRESETS}


class ProtocolError(ValueError):
    """A protocol that cannot be used; the message names the protocol and the field."""


@dataclass(frozen=True)
class SeriesFacts:
    """What a protocol is matched on."""

    modality: str = ""
    body_part: str = ""
    series_description: str = ""
    study_description: str = ""
    priors: int = 0
    fusable: bool = False  # a PET/NM series shares its frame of reference


@dataclass(frozen=True)
class ViewSpec:
    """One view of a protocol: window ``(center, width)`` (None: the series' own), slab,
    inversion (None: the series' own)."""

    window: tuple[float, float] | None = None
    slab: Slab | None = None
    invert: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (windows as numbers)."""
        data: dict[str, Any] = {}
        if self.window is not None:
            data["window"] = list(self.window)
        if self.slab is not None:
            data["slab"] = {"mode": self.slab.mode, "mm": self.slab.thickness_mm}
        if self.invert is not None:
            data["invert"] = self.invert
        return data


@dataclass(frozen=True)
class HangingProtocol:
    """A layout rule (see the module)."""

    name: str
    layout: str = "1x1"
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    description: str = ""
    min_priors: int = 0
    slot_b: str = "none"
    fuse: bool = False
    views: tuple[ViewSpec, ...] = field(default_factory=tuple)

    def matches(self, facts: SeriesFacts) -> bool:
        """Whether the series described by `facts` is one this protocol hangs."""
        if self.modalities and facts.modality.upper() not in self.modalities:
            return False
        if self.body_parts and facts.body_part.upper() not in self.body_parts:
            return False
        text = f"{facts.series_description} {facts.study_description}"
        if self.description and not re.search(self.description, text, re.IGNORECASE):
            return False
        if self.fuse and not facts.fusable:
            return False  # a fusing protocol hangs only a series with something to fuse
        return facts.priors >= self.min_priors

    def view(self, index: int) -> ViewSpec:
        """The spec of view `index` of the layout (defaults past the list)."""
        return self.views[index] if index < len(self.views) else ViewSpec()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what :func:`protocol_from_dict` reads)."""
        return {"name": self.name, "modalities": list(self.modalities),
                "body_parts": list(self.body_parts), "description": self.description,
                "min_priors": self.min_priors, "layout": self.layout, "slot_b": self.slot_b,
                "fuse": self.fuse, "views": [v.to_dict() for v in self.views]}  # fmt: skip


def protocol_from_dict(data: Any) -> HangingProtocol:
    """A validated protocol from its JSON form (ProtocolError naming what is wrong)."""
    if not isinstance(data, dict):
        raise ProtocolError(f"a protocol must be a JSON object, got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ProtocolError("a protocol needs a non-empty 'name'")
    known = {"name", "modalities", "body_parts", "description", "min_priors", "layout",
             "slot_b", "fuse", "views"}  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProtocolError(f"{name}: unknown field(s) {', '.join(unknown)}")
    layout = data.get("layout", "1x1")
    if layout not in LAYOUT_VIEWS:
        raise ProtocolError(f"{name}: layout must be one of {', '.join(LAYOUT_VIEWS)}, "
                            f"got {layout!r}")  # fmt: skip
    slot_b = data.get("slot_b", "none")
    if slot_b not in SLOT_B:
        raise ProtocolError(f"{name}: slot_b must be one of {', '.join(SLOT_B)}, got {slot_b!r}")
    description = data.get("description", "")
    try:
        re.compile(description)
    except (re.error, TypeError) as error:
        raise ProtocolError(f"{name}: description is not a valid pattern: {error}") from None
    views = data.get("views", [])
    if not isinstance(views, list) or len(views) > LAYOUT_VIEWS[layout]:
        raise ProtocolError(f"{name}: views must be a list of at most {LAYOUT_VIEWS[layout]} "
                            f"(the views of layout {layout})")  # fmt: skip
    priors = data.get("min_priors", 0)
    if isinstance(priors, bool) or not isinstance(priors, int) or priors < 0:
        raise ProtocolError(f"{name}: min_priors must be an integer >= 0")
    return HangingProtocol(
        name=name.strip(), layout=layout, modalities=_upper_list(data, "modalities", name),
        body_parts=_upper_list(data, "body_parts", name), description=description,
        min_priors=priors, slot_b=slot_b, fuse=bool(data.get("fuse", False)),
        views=tuple(_view(v, f"{name}: views[{k}]") for k, v in enumerate(views)),
    )  # fmt: skip


def _upper_list(data: dict[str, Any], key: str, name: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{name}: {key} must be a list of strings")
    return tuple(v.strip().upper() for v in value)


def _view(data: Any, where: str) -> ViewSpec:
    if not isinstance(data, dict) or set(data) - {"window", "slab", "invert"}:
        raise ProtocolError(f"{where}: a view is an object of window, slab and invert")
    return ViewSpec(window=_window(data.get("window"), where), slab=_slab(data.get("slab"), where),
                    invert=None if data.get("invert") is None else bool(data["invert"]))


def _window(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value.lower() not in _PRESETS:
            raise ProtocolError(f"{where}: unknown window preset {value!r}; expected one of "
                                f"{', '.join(p.name for p in CT_PRESETS)} or [center, width]")
        return _PRESETS[value.lower()]
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and value[1] >= 1):  # fmt: skip
        return float(value[0]), float(value[1])
    raise ProtocolError(f"{where}: window must be a preset name or [center, width >= 1]")


def _slab(value: Any, where: str) -> Slab | None:
    if value is None:
        return None
    try:
        return Slab(value["mode"], float(value["mm"]))
    except (TypeError, KeyError, ValueError) as error:
        raise ProtocolError(f"{where}: slab must be {{\"mode\": mip|minip|avg, \"mm\": N}}: "
                            f"{error}") from None


def load_protocols(text: str) -> list[HangingProtocol]:
    """The protocols of a JSON file's text (a list of objects; ProtocolError when invalid)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise ProtocolError("the protocols file must hold a JSON list of protocols")
    return [protocol_from_dict(item) for item in data]


def dump_protocols(protocols: Iterable[HangingProtocol]) -> str:
    """The JSON text of `protocols` (what :func:`load_protocols` reads)."""
    return json.dumps([p.to_dict() for p in protocols], indent=2) + "\n"


def choose(protocols: Sequence[HangingProtocol], facts: SeriesFacts) -> HangingProtocol | None:
    """The first protocol that matches `facts`, or None."""
    return next((p for p in protocols if p.matches(facts)), None)


_LUNG, _MEDIASTINUM = _PRESETS["lung"], _PRESETS["mediastinum"]
BUILT_INS: tuple[HangingProtocol, ...] = (
    HangingProtocol("Chest CT with prior", "1x2", ("CT",), ("CHEST", "THORAX", "LUNG"),
                    min_priors=1, slot_b="prior",
                    views=(ViewSpec(_LUNG), ViewSpec(_LUNG))),
    HangingProtocol("PET/CT", "1x3", ("CT",), fuse=True,
                    views=(ViewSpec(_MEDIASTINUM), ViewSpec(_MEDIASTINUM),
                           ViewSpec(_MEDIASTINUM))),
    HangingProtocol("Chest CT", "1x2", ("CT",), ("CHEST", "THORAX", "LUNG"), slot_b="same",
                    views=(ViewSpec(_LUNG), ViewSpec(_MEDIASTINUM))),
    HangingProtocol("Head CT", "1x2", ("CT",), ("HEAD", "BRAIN", "SKULL"), slot_b="same",
                    views=(ViewSpec(_PRESETS["brain"]), ViewSpec(_PRESETS["bone"]))),
    HangingProtocol("Radiograph", "1x1", ("CR", "DX", "MG", "RG")),
)  # fmt: skip
"""Built-in protocols, tried after the user's."""
