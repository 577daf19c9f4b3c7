"""VolumeCache: least-recently-used eviction under a byte bound (sizes written by hand)."""

from __future__ import annotations

import numpy as np

from medviewer.core.cache import VolumeCache
from medviewer.core.volume import Volume


def _volume(nbytes: int, fill: int = 0) -> Volume:
    """A uint8 volume of exactly `nbytes` bytes."""
    return Volume(np.full((1, 1, nbytes), fill, dtype=np.uint8), np.eye(4))


def _keys(cache: VolumeCache, candidates: str = "abcdefgh") -> list[str]:
    return [key for key in candidates if key in cache]


def test_empty_cache() -> None:
    cache = VolumeCache(1000)
    assert len(cache) == 0
    assert cache.nbytes == 0
    assert "a" not in cache
    assert cache.get("a") is None


def test_put_get_contains_len_and_nbytes() -> None:
    cache = VolumeCache(1000)
    a, b = _volume(100), Volume(np.zeros((2, 3, 5), dtype=np.int16), np.eye(4))  # 60 bytes
    cache.put("a", a)
    cache.put(("series", 2), b)
    assert len(cache) == 2
    assert "a" in cache and ("series", 2) in cache and "b" not in cache
    assert cache.get("a") is a
    assert cache.get(("series", 2)) is b
    assert cache.nbytes == 160


def test_least_recently_put_is_evicted_first() -> None:
    cache = VolumeCache(300)
    for key in "abc":
        cache.put(key, _volume(100))
    assert cache.nbytes == 300 and len(cache) == 3  # exactly at the bound: nothing evicted
    cache.put("d", _volume(100))
    assert _keys(cache) == ["b", "c", "d"]
    assert cache.nbytes == 300


def test_get_refreshes_the_entry() -> None:
    cache = VolumeCache(300)
    for key in "abc":
        cache.put(key, _volume(100))
    assert cache.get("a") is not None  # "a" is now the most recently used; "b" the least
    cache.put("d", _volume(100))
    assert _keys(cache) == ["a", "c", "d"]
    cache.put("e", _volume(100))
    assert _keys(cache) == ["a", "d", "e"]


def test_missing_get_does_not_change_the_order() -> None:
    cache = VolumeCache(200)
    cache.put("a", _volume(100))
    cache.put("b", _volume(100))
    assert cache.get("zzz") is None
    cache.put("c", _volume(100))
    assert _keys(cache) == ["b", "c"]


def test_a_big_volume_evicts_as_many_as_needed() -> None:
    cache = VolumeCache(400)
    for key in "abcd":
        cache.put(key, _volume(100))
    cache.put("e", _volume(250))  # needs 4 * 100 + 250 - 400 = 250 bytes freed: a, b, c go
    assert _keys(cache) == ["d", "e"]
    assert cache.nbytes == 350


def test_volume_larger_than_the_bound_is_never_stored() -> None:
    cache = VolumeCache(300)
    cache.put("a", _volume(100))
    cache.put("big", _volume(301))
    assert "big" not in cache
    assert cache.get("big") is None
    assert _keys(cache) == ["a"]  # and nothing was evicted for it
    assert cache.nbytes == 100


def test_volume_exactly_at_the_bound_is_stored_alone() -> None:
    cache = VolumeCache(300)
    cache.put("a", _volume(100))
    cache.put("b", _volume(300))
    assert _keys(cache) == ["b"]
    assert cache.nbytes == 300


def test_put_same_key_replaces_and_refreshes() -> None:
    cache = VolumeCache(300)
    old, new = _volume(100, fill=1), _volume(150, fill=2)
    cache.put("a", old)
    cache.put("b", _volume(100))
    cache.put("a", new)
    assert len(cache) == 2
    assert cache.get("a") is new
    assert cache.nbytes == 250  # the old 100 bytes are not counted any more
    cache.put("c", _volume(100))  # 350 > 300: "b" is now the least recently used
    assert _keys(cache) == ["a", "c"]


def test_replacing_with_a_too_big_volume_drops_the_old_one() -> None:
    cache = VolumeCache(300)
    cache.put("a", _volume(100))
    cache.put("a", _volume(400))
    assert "a" not in cache
    assert len(cache) == 0 and cache.nbytes == 0


def test_resize_evicts_least_recently_used() -> None:
    cache = VolumeCache(1000)
    for key in "abcd":
        cache.put(key, _volume(100))
    cache.get("a")  # order now b, c, d, a
    cache.resize(250)
    assert cache.max_bytes == 250
    assert _keys(cache) == ["a", "d"]
    assert cache.nbytes == 200


def test_resize_larger_keeps_everything() -> None:
    cache = VolumeCache(300)
    for key in "abc":
        cache.put(key, _volume(100))
    cache.resize(10_000)
    assert _keys(cache) == ["a", "b", "c"]
    cache.put("d", _volume(5000))
    assert _keys(cache) == ["a", "b", "c", "d"]


def test_resize_to_zero_empties_the_cache() -> None:
    cache = VolumeCache(300)
    cache.put("a", _volume(100))
    cache.resize(0)
    assert len(cache) == 0 and cache.nbytes == 0
    cache.put("b", _volume(1))
    assert "b" not in cache
