"""A memory-bounded cache of recently opened volumes (least recently used goes first)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from medviewer.core.volume import Volume

GIGABYTE = 1 << 30


class VolumeCache:
    """Keep recently used volumes while their arrays fit in `max_bytes`.

    Parameters
    ----------
    max_bytes : int
        Upper bound of the summed array sizes (default 4 GB). A volume larger than the
        bound is never kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[Hashable, Volume] = OrderedDict()
        self.max_bytes = int(max_bytes)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached arrays."""
        return sum(v.array.nbytes for v in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> Volume | None:
        """The cached volume of `key` (now the most recently used), or None."""
        volume = self._items.get(key)
        if volume is not None:
            self._items.move_to_end(key)
        return volume

    def put(self, key: Hashable, volume: Volume) -> None:
        """Keep `volume`, evicting the least recently used ones to stay within the bound."""
        self._items.pop(key, None)
        if volume.array.nbytes > self.max_bytes:
            return
        self._items[key] = volume
        self._evict()

    def discard(self, key: Hashable) -> None:
        """Forget `key`'s volume (its files changed: the next open reads them again)."""
        self._items.pop(key, None)

    def resize(self, max_bytes: int) -> None:
        """Change the bound, evicting as needed."""
        self.max_bytes = int(max_bytes)
        self._evict()

    def _evict(self) -> None:
        while self._items and self.nbytes > self.max_bytes:
            self._items.popitem(last=False)
