"""Persistent user settings (an INI file in the user's config folder)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

DEFAULT_CACHE_GB = 4.0
MAX_RECENT = 8


def default_path() -> Path:
    """``<user config dir>/medviewer/settings.ini``."""
    import platformdirs

    return Path(platformdirs.user_config_dir("medviewer", appauthor=False)) / "settings.ini"


class Settings:
    """Typed access to the settings the viewer keeps between sessions.

    Parameters
    ----------
    path : path, optional
        The INI file (default :func:`default_path`; tests pass a temporary file).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._q = QSettings(str(self.path), QSettings.Format.IniFormat)

    def sync(self) -> None:
        """Write pending changes to disk."""
        self._q.sync()

    # -- window --------------------------------------------------------------------------

    def window_geometry(self) -> QByteArray | None:
        """Saved main-window geometry."""
        value = self._q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        """Saved dock and toolbar layout."""
        value = self._q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        """Remember geometry and dock layout."""
        self._q.setValue("window/geometry", geometry)
        self._q.setValue("window/state", state)

    # -- viewer --------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        """The last viewport layout."""
        return str(self._q.value("viewer/layout", "1x1"))

    @layout.setter
    def layout(self, name: str) -> None:
        self._q.setValue("viewer/layout", name)

    @property
    def hanging_on_open(self) -> bool:
        """Apply the matching hanging protocol whenever a series opens (default off)."""
        return str(self._q.value("viewer/hanging_on_open", "false")).lower() == "true"

    @hanging_on_open.setter
    def hanging_on_open(self, value: bool) -> None:
        self._q.setValue("viewer/hanging_on_open", "true" if value else "false")

    @property
    def protocols_path(self) -> Path:
        """The user's hanging protocols (JSON), beside the settings file."""
        return self.path.parent / "hanging-protocols.json"

    @property
    def cache_gb(self) -> float:
        """Memory for recently opened volumes, in GB."""
        try:
            return max(float(self._q.value("viewer/cache_gb", DEFAULT_CACHE_GB)), 0.0)
        except (TypeError, ValueError):
            return DEFAULT_CACHE_GB

    @cache_gb.setter
    def cache_gb(self, value: float) -> None:
        self._q.setValue("viewer/cache_gb", float(value))

    @property
    def cine_fps(self) -> int:
        """Cine frame rate."""
        try:
            return int(self._q.value("viewer/cine_fps", 10))
        except (TypeError, ValueError):
            return 10

    @cine_fps.setter
    def cine_fps(self, value: int) -> None:
        self._q.setValue("viewer/cine_fps", int(value))

    # -- PACS listener -------------------------------------------------------------------

    def listener(self) -> tuple[str, int]:
        """medviewer's storage SCP: (AE title, port) last used (``MEDVIEWER``, 11112)."""
        try:
            port = int(self._q.value("pacs/listen_port", 11112))
        except (TypeError, ValueError):
            port = 11112
        return str(self._q.value("pacs/listen_aet", "MEDVIEWER")), port

    def set_listener(self, ae_title: str, port: int) -> None:
        """Remember the storage SCP's AE title and port."""
        self._q.setValue("pacs/listen_aet", ae_title)
        self._q.setValue("pacs/listen_port", int(port))

    # -- recent folders and user presets -------------------------------------------------

    def recent_folders(self) -> list[str]:
        """Folders imported recently, newest first."""
        value = self._q.value("import/recent", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [str(v) for v in items if v]

    def add_recent_folder(self, folder: str) -> None:
        """Put `folder` first in the recent list."""
        items = [folder, *[f for f in self.recent_folders() if f != folder]][:MAX_RECENT]
        self._q.setValue("import/recent", items)

    def user_presets(self) -> list[tuple[str, float, float]]:
        """Window presets the user saved: (name, center, width)."""
        size = self._q.beginReadArray("presets")
        out = []
        for i in range(size):
            self._q.setArrayIndex(i)
            try:
                out.append(
                    (
                        str(self._q.value("name")),
                        float(self._q.value("center")),
                        float(self._q.value("width")),
                    )
                )
            except (TypeError, ValueError):
                continue
        self._q.endArray()
        return out

    def set_user_presets(self, presets: list[tuple[str, float, float]]) -> None:
        """Replace the saved window presets."""
        self._q.beginWriteArray("presets", len(presets))
        for i, (name, center, width) in enumerate(presets):
            self._q.setArrayIndex(i)
            self._q.setValue("name", name)
            self._q.setValue("center", center)
            self._q.setValue("width", width)
        self._q.endArray()
