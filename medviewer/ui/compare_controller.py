"""View > Compare: link the two slots at the crosshairs, or register slot B onto slot A (rigid,
in a worker); the grid's :class:`~medviewer.ui.comparison.SlotLink` follows the result."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from medviewer.core.registration import Registration, RigidMap, register_rigid
from medviewer.ui import workers
from medviewer.ui.viewer_grid import ViewerGrid


class CompareController(QObject):
    """View > Compare: link at the crosshairs, register slot B onto slot A in a worker.

    Signals
    -------
    statusMessage(str, int)
        What was linked or registered, with its quality (text, timeout ms).
    """

    statusMessage = Signal(str, int)

    def __init__(self, grid: ViewerGrid, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.grid = grid
        self.job: workers.Job | None = None
        self.last: Registration | None = None

    def link_at_crosshairs(self) -> RigidMap | None:
        """Link the slots so slot B's crosshair point corresponds to slot A's."""
        link = self.grid.link_at_crosshairs()
        if link is None:
            self.statusMessage.emit("Put the crosshair on the same anatomy in both series "
                                    "first (a click in each)", 10000)  # fmt: skip
        else:
            x, y, z = link.translation
            self.statusMessage.emit(f"Linked: offset ({x:.1f}, {y:.1f}, {z:.1f}) mm", 10000)
        return link

    def register(self) -> workers.Job | None:
        """Register slot B's series onto slot A's (rigid, mutual information) in a worker;
        linking follows the result."""
        a, b = self.grid.slots.get("A"), self.grid.slots.get("B")
        if a is None or b is None or a is b or not (a.complete and b.complete):
            self.statusMessage.emit("Registration needs two different series, loaded, in the "
                                    "two slots (a 1x2 or 2x2 layout)", 10000)  # fmt: skip
            return None
        current, prior = a.volume, b.volume
        if current.is_color or prior.is_color:
            self.statusMessage.emit("Registration needs grey images", 10000)
            return None
        self.statusMessage.emit("Registering the series in slot B onto slot A…", 0)
        self.job = workers.start(
            lambda cancel: register_rigid(current, prior, cancel), name="registration",
            returned=self._registered,
            errored=lambda exc: self.statusMessage.emit(f"Registration failed: {exc}", 15000),
        )  # fmt: skip
        return self.job

    def _registered(self, found: Registration) -> None:
        self.last = found
        self.grid.set_link(found.map)
        x, y, z = found.map.translation
        self.statusMessage.emit(
            f"Registered (rigid): rotation {found.map.rotation_degrees():.1f}°, shift "
            f"({x:.1f}, {y:.1f}, {z:.1f}) mm; Mattes MI {found.metric:.3f}, "
            f"{found.iterations} iterations, {found.seconds:.1f} s", 0)  # fmt: skip
