"""Applying hanging protocols (:mod:`medviewer.core.hanging`) to the active series.

The active view's series is the current one: the protocol sets the layout, puts the same
series or its newest prior (loaded in the background) in the second slot, fuses a PET of
its frame of reference, and sets each view's window, slab and inversion once that view
shows the series meant for it. The user's protocols are a JSON file beside the settings
(``hanging-protocols.json``), tried before the built-ins; View > Hanging protocol saves the
current arrangement there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal

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
from medviewer.core.staging import staged_file
from medviewer.io.database import StudyDatabase
from medviewer.ui.fusion_controller import FusionController
from medviewer.ui.slice_view import SliceView
from medviewer.ui.viewer_grid import ViewerGrid

#: A protocols file larger than this is refused (it is a few KB; nothing is read beyond it).
MAX_PROTOCOLS_BYTES = 1 << 20


class HangingHost(Protocol):
    """What applying a protocol needs from the main window."""

    grid: ViewerGrid
    db: StudyDatabase
    fusion: FusionController

    def set_layout(self, name: str) -> None: ...
    def open_series(self, series_id: int, view: SliceView | None = None) -> None: ...


class HangingController(QObject):
    """Chooses and applies hanging protocols (see the module).

    Signals
    -------
    statusMessage(str, int)
        What was applied, or why nothing was (text, timeout ms).
    """

    statusMessage = Signal(str, int)

    def __init__(self, host: HangingHost, protocols_path: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.host = host
        self.protocols_path = protocols_path
        self.apply_next_open = False  # the next series shown in slot A gets its protocol
        self.apply_on_open = False  # every series shown in slot A gets its protocol
        self._pending: dict[SliceView, Callable[[], None]] = {}

    # -- which protocols ------------------------------------------------------------------

    def user_protocols(self) -> list[HangingProtocol]:
        """The user's protocols (none when the file is missing; a bad file is reported)."""
        if not self.protocols_path.is_file():
            return []
        try:
            if self.protocols_path.stat().st_size > MAX_PROTOCOLS_BYTES:
                raise ProtocolError(f"larger than {MAX_PROTOCOLS_BYTES // 1024} KB")
            return load_protocols(self.protocols_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ProtocolError) as error:
            self.statusMessage.emit(f"{self.protocols_path}: ignored: {error}", 15000)
            return []

    def protocols(self) -> list[HangingProtocol]:
        """The user's protocols, then the built-ins."""
        return [*self.user_protocols(), *BUILT_INS]

    def facts(self, view: SliceView) -> SeriesFacts | None:
        """What the active view's series is matched on (None without a series)."""
        volume = view.volume
        if volume is None:
            return None
        meta = volume.metadata
        priors = len(self.host.db.prior_series(meta.series_uid)) if meta.series_uid else 0
        fusable = bool(self.host.fusion.candidates())
        return SeriesFacts(meta.modality, meta.body_part, meta.series_description,
                           meta.study_description, priors, fusable)  # fmt: skip

    def matching(self) -> HangingProtocol | None:
        """The protocol the active series would be hung with."""
        view = self.host.grid.active
        facts = self.facts(view) if view is not None else None
        return None if facts is None else choose(self.protocols(), facts)

    # -- applying -------------------------------------------------------------------------

    def series_shown(self, view: SliceView | None) -> None:
        """A series was shown (the main window calls this): apply its protocol when asked."""
        if view is None or self.host.grid.slot_of(view) != "A":
            return
        if self.apply_next_open or self.apply_on_open:
            self.apply_next_open = False
            self.apply()
            return
        volume = view.volume
        priors = self.host.db.prior_series(volume.metadata.series_uid) if volume else []
        if priors:  # offer them
            dates = sorted({str(row["date"] or "?") for row in priors}, reverse=True)
            self.statusMessage.emit(
                f"{len(dates)} earlier {'study' if len(dates) == 1 else 'studies'} of this "
                f"patient ({', '.join(dates[:3])}): Ctrl+H hangs the newest beside this one, "
                "or drop one from the browser onto a viewport", 15000)  # fmt: skip

    def apply(self, protocol: HangingProtocol | None = None) -> HangingProtocol | None:
        """Hang the active series with `protocol` (default: the first that matches)."""
        grid = self.host.grid
        view = grid.active
        series = view.series if view is not None else None
        if series is None:
            self.statusMessage.emit("No series to hang: open one first", 8000)
            return None
        protocol = protocol if protocol is not None else self.matching()
        if protocol is None:
            self.statusMessage.emit("No hanging protocol matches this series", 8000)
            return None
        grid.slots["A"], current = series, series.volume.metadata.series_uid
        self.host.set_layout(protocol.layout)
        expected = {"A": current, "B": self._fill_slot_b(protocol, current)}
        for index, shown in enumerate(grid.views):
            self._when_showing(shown, expected[grid.slot_of(shown)], protocol.view(index))
        if protocol.fuse:
            grid._set_active(grid.views_of("A")[0])
            candidates = self.host.fusion.candidates()
            if candidates:
                self.host.fusion.fuse_active(candidates[0][0])
            else:
                self.statusMessage.emit(f"Hanging protocol: {protocol.name} (nothing to fuse: no "
                                        "PET/NM series on this frame of reference)", 10000)
                return protocol
        self.statusMessage.emit(f"Hanging protocol: {protocol.name}", 8000)
        return protocol

    def _fill_slot_b(self, protocol: HangingProtocol, current: str) -> str | None:
        grid = self.host.grid
        views_b = grid.views_of("B")
        if not views_b or protocol.slot_b == "none":
            return None
        if protocol.slot_b == "same":
            grid.show_series(grid.slots["A"], views_b[0])
            return current
        priors = self.host.db.prior_series(current)
        if not priors:
            return None
        self.host.open_series(int(priors[0]["id"]), views_b[0])
        return str(priors[0]["series_uid"])

    def _when_showing(self, view: SliceView, series_uid: str | None, spec: ViewSpec) -> None:
        """Apply `spec` to `view` now or once it shows the series `series_uid`."""
        if series_uid is None or spec == ViewSpec():
            return

        def showing() -> bool:
            volume = view.volume
            return volume is not None and volume.metadata.series_uid == series_uid

        def apply() -> None:
            if spec.window is not None:
                view.set_window(*spec.window)
            if spec.slab is not None:
                view.set_slab(spec.slab)
            if spec.invert is not None:
                view.set_invert(spec.invert)

        previous = self._pending.pop(view, None)
        if previous is not None:  # a newer protocol replaces the one still waiting
            view.stateChanged.disconnect(previous)
        if showing():
            apply()
            return

        def on_state() -> None:
            if showing():  # disconnected first: applying changes the state again
                view.stateChanged.disconnect(on_state)
                self._pending.pop(view, None)
                apply()

        self._pending[view] = on_state
        view.stateChanged.connect(on_state)

    # -- saving ---------------------------------------------------------------------------

    def current_as_protocol(self, name: str) -> HangingProtocol | None:
        """The arrangement on screen as a protocol for series like the active one."""
        grid = self.host.grid
        a, b = grid.slots.get("A"), grid.slots.get("B")
        if a is None:
            return None
        meta = a.volume.metadata
        slot_b = "none"
        if b is not None and grid.views_of("B"):
            slot_b = "same" if b is a else "prior"
        views = tuple(ViewSpec((v.state.center, v.state.width), v.state.slab, v.state.invert)
                      if v.state is not None else ViewSpec() for v in grid.views)  # fmt: skip
        return HangingProtocol(
            name=name, layout=grid.layout_name, modalities=(meta.modality.upper(),),
            body_parts=(meta.body_part.upper(),) if meta.body_part else (),
            min_priors=1 if slot_b == "prior" else 0, slot_b=slot_b,
            fuse=any(v.fusion is not None for v in grid.views), views=views,
        )  # fmt: skip

    def save_current(self, name: str) -> HangingProtocol | None:
        """Add the arrangement on screen to the user's protocols (first, replacing one of
        the same name); written all or nothing."""
        protocol = self.current_as_protocol(name)
        if protocol is None:
            self.statusMessage.emit("Nothing to save: open a series first", 8000)
            return None
        others = [p for p in self.user_protocols() if p.name != protocol.name]
        self.protocols_path.parent.mkdir(parents=True, exist_ok=True)
        with staged_file(self.protocols_path) as staging:
            staging.write_text(dump_protocols([protocol, *others]), encoding="utf-8")
        self.statusMessage.emit(f"Saved hanging protocol {protocol.name!r} in "
                                f"{self.protocols_path}", 10000)  # fmt: skip
        return protocol
