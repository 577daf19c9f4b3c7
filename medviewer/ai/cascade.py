"""Cascades: a card whose model runs only inside another model's labels (``input.roi``).

:func:`upstream_card` finds the model a card's ``input.roi`` names and checks the pair (and
every further link of the chain) before anything runs: the model exists, segments, has the
labels named, the ids kept by ``keep_labels`` do not collide, and no model names itself
through others. :data:`UPSTREAM_RESULTS` keeps the last upstream predictions, by the series'
content and the upstream card (its weights' sha256 included), so a second run of a cascade
on the same series does not run the upstream model again. The runner does the rest
(:mod:`medviewer.ai.runner`). No torch, no Qt.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from medviewer.ai.model_card import ModelCard
from medviewer.core.errors import ModelCardError
from medviewer.core.findings import Prediction
from medviewer.core.volume import Volume

#: Finds a card by its id (a registry's ``find(id).card``); raises ModelCardError if unknown.
ModelLookup = Callable[[str], ModelCard]
#: Models in one chain at most (a cascade of cascades).
MAX_CHAIN = 8
#: The fraction of a cascade's progress bar the upstream model takes.
UPSTREAM_SHARE = 0.4


def _source(card: ModelCard) -> str:
    return str(card.path) if card.path is not None else f"model {card.id!r}"


def stages_kept_by(cards: list[ModelCard]) -> set[str]:
    """Ids of the models in `cards` whose whole result another card in `cards` includes.

    A cascade with ``input.roi.keep_labels`` adds its upstream model's labels to its own
    result; when those are all the upstream model's labels, running that model on its own as
    well only repeats them. "Segment" runs every applicable model but these.

    Parameters
    ----------
    cards : list of ModelCard

    Returns
    -------
    set of str
    """
    by_id = {card.id: card for card in cards}
    kept = set()
    for card in cards:
        roi = card.input.roi
        if roi is None or not roi.keep_labels:
            continue
        upstream = by_id.get(roi.model)
        if upstream is not None and set(upstream.output.labels) <= set(roi.labels):
            kept.add(upstream.id)
    return kept


def upstream_card(card: ModelCard, lookup: ModelLookup) -> ModelCard | None:
    """The model `card`'s ``input.roi`` names, the whole chain behind it checked.

    Parameters
    ----------
    card : ModelCard
    lookup : callable
        Model id -> card.

    Returns
    -------
    ModelCard or None
        None when the card has no ``input.roi``.

    Raises
    ------
    ModelCardError
        ``"<card>: input.roi.model: unknown model 'x'; ..."``, a model that does not segment,
        labels it does not have, a cycle (``a -> b -> a``) or a chain over :data:`MAX_CHAIN`.
    """
    chain = [card.id]
    current, first = card, None
    while current.input.roi is not None:
        roi = current.input.roi
        try:
            upstream = lookup(roi.model)
        except ModelCardError as exc:
            raise ModelCardError(f"{_source(current)}: input.roi.model: {exc}") from None
        if upstream.id in chain:
            path = " -> ".join([*chain, upstream.id])
            raise ModelCardError(f"{_source(current)}: input.roi.model: the models name each "
                                 f"other in a cycle ({path}); none of them can run")
        check_pair(current, upstream)
        chain.append(upstream.id)
        if len(chain) > MAX_CHAIN:
            raise ModelCardError(f"{_source(card)}: input.roi.model: a chain of more than "
                                 f"{MAX_CHAIN} models ({' -> '.join(chain)})")
        first = first or upstream
        current = upstream
    return first


def check_pair(card: ModelCard, upstream: ModelCard) -> None:
    """Check that `upstream` can give `card`'s region of interest.

    The labels ``keep_labels`` adds are ``input.roi.labels``, so their collision with the
    card's own labels is refused when the card is read (:mod:`medviewer.ai.model_card`).

    Raises
    ------
    ModelCardError
        Naming `card`'s file and the field: the upstream model does not segment or lacks a
        label.
    """
    roi = card.input.roi
    assert roi is not None
    where = _source(card)
    if upstream.task != "segmentation":
        raise ModelCardError(
            f"{where}: input.roi.model: {upstream.id!r} is a {upstream.task} model; a region "
            "of interest needs a segmentation model's labels"
        )
    missing = [label for label in roi.labels if label not in upstream.output.labels]
    if missing:
        have = ", ".join(f"{k} {seg.name}" for k, seg in upstream.output.labels.items())
        raise ModelCardError(
            f"{where}: input.roi.labels: model {upstream.id!r} has no label "
            f"{', '.join(map(str, missing))} (its labels: {have})"
        )


def series_key(volume: Volume) -> str:
    """A digest of a series' voxels and geometry (sha256; about 0.1 s per 150 MB)."""
    digest = hashlib.sha256()
    array = np.ascontiguousarray(volume.array)
    digest.update(repr((array.shape, array.dtype.str)).encode())
    digest.update(np.asarray(volume.affine, dtype=np.float64).tobytes())
    digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def card_key(card: ModelCard) -> str:
    """A digest of a card's JSON form: its weights' sha256 and every field that changes a run."""
    text = json.dumps(card.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class UpstreamResults:
    """The last `size` upstream predictions, by ``(series_key, card_key)``; thread-safe.

    Parameters
    ----------
    size : int
        Predictions kept (each holds a label map of the series' size).
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], Prediction] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Prediction | None:
        """The prediction stored under `key`, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str], prediction: Prediction) -> None:
        """Keep `prediction` under `key`, forgetting the oldest beyond :attr:`size`."""
        with self._lock:
            self._items[key] = prediction
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every prediction."""
        with self._lock:
            self._items.clear()


#: The upstream predictions every runner of this process shares.
UPSTREAM_RESULTS = UpstreamResults()
