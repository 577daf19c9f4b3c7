"""The model registry: bundled models (package data in ``medviewer/resources/models``) and users'.

Each model is a folder holding ``model.json`` and its weights. The user's models live in
``<user data dir>/medviewer/models/<id>``; a user model shadows a bundled one with the same id.
Adding a model validates its card and runs every check a load runs
(:func:`medviewer.ai.weights.validate_model`: weights inside the folder, sha256, static checks
of the file, the network's size) before anything is copied, then runs them again on the staged
copy (a source on a network or FUSE folder may serve other bytes the second time it is read),
and the copy is renamed into place at the end, so a failed add leaves nothing behind.

Reading the registry reads JSON only; torch and MONAI are never imported here.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from medviewer.ai.model_card import CARD_FILE, ModelCard, load_card
from medviewer.ai.monai_bundle import import_monai_bundle, is_monai_bundle
from medviewer.ai.weights import validate_model
from medviewer.core.errors import ModelCardError
from medviewer.core.staging import StagingFolder
from medviewer.resources import models_dir


def bundled_models_dir() -> Path:
    """The models shipped with medviewer: the package data folder ``resources/models``.

    Found through :mod:`importlib.resources`, so it is right in a checkout, an installed wheel
    and the desktop bundle.

    Returns
    -------
    Path
        The folder; it may not exist (then there are no bundled models).
    """
    return models_dir()


def user_models_dir() -> Path:
    """The user's models: ``<user data dir>/medviewer/models``.

    Returns
    -------
    Path
        The folder; it is created by :meth:`ModelRegistry.add` when needed.
    """
    return Path(platformdirs.user_data_dir("medviewer", appauthor=False)) / "models"


@dataclass(frozen=True)
class ModelEntry:
    """A model found by the registry: its card, its folder and where it came from.

    ``source`` is ``"bundled"``, ``"user"`` or ``"path"`` (a folder named directly).
    """

    card: ModelCard
    folder: Path
    source: str


class ModelRegistry:
    """The bundled and user models.

    Parameters
    ----------
    bundled : Path, optional
        The bundled models folder; default :func:`bundled_models_dir`.
    user : Path, optional
        The user models folder; default :func:`user_models_dir`.
    """

    def __init__(self, bundled: Path | None = None, user: Path | None = None) -> None:
        self.bundled = Path(bundled) if bundled is not None else bundled_models_dir()
        self.user = Path(user) if user is not None else user_models_dir()

    # -- reading ------------------------------------------------------------------------

    def entries(self) -> list[ModelEntry]:
        """Every valid model, sorted by id; a user model shadows a bundled one of the same id.

        Returns
        -------
        list of ModelEntry
            Invalid cards are left out; :meth:`problems` says why.
        """
        return self._scan()[0]

    def problems(self) -> list[tuple[Path, str]]:
        """The model folders whose card could not be read, with the reason.

        Returns
        -------
        list of (Path, str)
            (folder, error message), bundled folders first.
        """
        return self._scan()[1]

    def get(self, id_or_path: str) -> ModelEntry:
        """A model by id, or by its folder or ``model.json`` path.

        Parameters
        ----------
        id_or_path : str
            A model id, or an existing card folder or card file (read directly, source
            ``"path"``).

        Returns
        -------
        ModelEntry

        Raises
        ------
        ModelCardError
            When the card at the path is invalid, or no model has that id (the message lists
            the known ids).
        """
        candidate = Path(id_or_path)
        if id_or_path and (candidate.is_file() or (candidate / CARD_FILE).is_file()):
            card = load_card(candidate)
            return ModelEntry(card=card, folder=card.folder, source="path")
        entries, problems = self._scan()
        for entry in entries:
            if entry.card.id == id_or_path:
                return entry
        raise ModelCardError(self._unknown_message(id_or_path, entries, problems))

    def find(self, model_id: str) -> ModelEntry:
        """A model by its id only (a path is never read: for cards naming other models).

        Parameters
        ----------
        model_id : str
            A card id.

        Returns
        -------
        ModelEntry

        Raises
        ------
        ModelCardError
            ``"unknown model 'x'; known models: ..."`` (and why a folder of that name, if any,
            holds no valid card).
        """
        entries, problems = self._scan()
        for entry in entries:
            if entry.card.id == model_id:
                return entry
        known = ", ".join(entry.card.id for entry in entries) or "none installed"
        message = f"unknown model {model_id!r}; known models: {known}"
        for folder, problem in problems:
            if folder.name == model_id:
                message += f"; {folder} holds an invalid card: {problem}"
        raise ModelCardError(message)

    def _unknown_message(
        self, name: str, entries: list[ModelEntry], problems: list[tuple[Path, str]]
    ) -> str:
        known = ", ".join(entry.card.id for entry in entries) or "none installed"
        message = f"unknown model {name!r}; known models: {known}"
        candidate = Path(name)
        if candidate.is_dir() and is_monai_bundle(candidate):
            message += f"; {candidate} is a MONAI bundle: add it to the registry first"
        elif candidate.is_dir():
            message += f"; {candidate} is a folder without {CARD_FILE}"
        for folder, problem in problems:
            if folder.name == name:
                message += f"; {folder} holds an invalid card: {problem}"
        return message

    def _scan(self) -> tuple[list[ModelEntry], list[tuple[Path, str]]]:
        by_id: dict[str, ModelEntry] = {}
        problems: list[tuple[Path, str]] = []
        for root, source in ((self.bundled, "bundled"), (self.user, "user")):
            seen: set[str] = set()
            for folder, card in _cards_in(root, problems):
                if card.id in seen:
                    problems.append((folder, f"{folder}: id {card.id!r} appears twice in {root}"))
                    continue
                seen.add(card.id)
                by_id[card.id] = ModelEntry(card=card, folder=folder, source=source)
        return [by_id[key] for key in sorted(by_id)], problems

    # -- adding -------------------------------------------------------------------------

    def add(
        self, path: str | os.PathLike[str], replace: bool = False
    ) -> tuple[ModelEntry, list[str]]:
        """Install a model into the user folder as ``<user>/<id>``.

        Parameters
        ----------
        path : path-like
            A card folder (holding ``model.json``), a card file, or a MONAI bundle folder.
        replace : bool
            Replace a user model with the same id (otherwise that is refused).

        Returns
        -------
        entry : ModelEntry
            The installed model (source ``"user"``).
        warnings : list of str
            What a MONAI bundle import could not carry over (empty for card folders).

        Raises
        ------
        ModelCardError
            When the card is invalid, the weights are missing, outside the model folder, fail
            their sha256 check or a static check of their format (code in a pickle, data
            outside the folder, a network over the size limits), the id is already installed
            (without ``replace``) or the copy fails. Nothing is left in the user folder then.
        """
        source = Path(path).absolute()
        card, bundle = self._source_card(source)
        if card is not None:
            validate_model(card)
            self._check_free(card.id, replace)
        with self._staging() as staging:
            staged, warnings = _stage(source, card, bundle, staging.path / "model")
            target = self._install(staged, staging, replace)
        return ModelEntry(card=load_card(target), folder=target, source="user"), warnings

    def _source_card(self, source: Path) -> tuple[ModelCard | None, bool]:
        """(the card, False) for a card folder or file; (None, True) for a MONAI bundle."""
        if source.is_file() or (source / CARD_FILE).is_file():
            return load_card(source), False
        if is_monai_bundle(source):
            return None, True
        if source.is_dir():
            raise ModelCardError(
                f"{source}: neither a model folder (no {CARD_FILE}) nor a MONAI bundle "
                "(no configs/metadata.json)"
            )
        raise ModelCardError(f"{source}: no such file or folder")

    def _conflicts(self, model_id: str) -> list[Path]:
        """User folders holding ``model_id``: ``<user>/<id>`` and any other with that card id."""
        folders = [self.user / model_id] if (self.user / model_id).exists() else []
        entries = self._scan()[0]
        others = [e.folder for e in entries if e.source == "user" and e.card.id == model_id]
        return folders + [folder for folder in others if folder not in folders]

    def _check_free(self, model_id: str, replace: bool) -> list[Path]:
        conflicts = self._conflicts(model_id)
        if conflicts and not replace:
            raise ModelCardError(
                f"model {model_id!r} is already installed in {conflicts[0]}; "
                "use --replace to replace it"
            )
        return conflicts

    def _staging(self) -> StagingFolder:
        """A hidden staging folder inside the user folder (same file system: renames work)."""
        try:
            return StagingFolder(self.user)
        except OSError as exc:
            raise ModelCardError(
                f"{self.user}: cannot write the user models folder: {exc}"
            ) from None

    def _install(self, staged: ModelCard, staging: StagingFolder, replace: bool) -> Path:
        """Move the staged folder to ``<user>/<id>``; the folders it replaces go (and come back
        if it cannot be moved in)."""
        conflicts = self._check_free(staged.id, replace)
        target = self.user / staged.id
        try:
            staging.move_into_place([(staged.folder, target)], replacing=conflicts)
        except OSError as exc:
            raise ModelCardError(f"{target}: cannot install the model: {exc}") from None
        return target


def _cards_in(root: Path, problems: list[tuple[Path, str]]) -> list[tuple[Path, ModelCard]]:
    """(folder, card) of each immediate subfolder holding a card; failures go to problems."""
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            continue
        try:
            if (folder / CARD_FILE).is_file():
                found.append((folder, load_card(folder)))
        except ModelCardError as exc:
            problems.append((folder, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad folder must not hide the others
            problems.append((folder, f"{folder / CARD_FILE}: cannot be read: "
                                     f"{type(exc).__name__}: {_first_line(exc)}"))
    return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no details"


def _stage(
    source: Path, card: ModelCard | None, bundle: bool, dest: Path
) -> tuple[ModelCard, list[str]]:
    """Build the model folder ``dest`` from a card (copy) or a bundle (import); check it."""
    if bundle or card is None:
        return import_monai_bundle(source, dest)
    try:
        _copy_card_folder(card, dest)
    except OSError as exc:
        raise ModelCardError(f"{card.folder}: cannot copy the model: {exc}") from None
    staged = load_card(dest)
    validate_model(staged)  # what is installed is what was checked, whatever the source did
    return staged, []


def _copy_card_folder(card: ModelCard, dest: Path) -> None:
    """The card (as ``model.json``), the weights file and the other top-level regular files.

    Symbolic links other than the weights file are not followed (they could point anywhere).
    """
    dest.mkdir()
    for item in card.folder.iterdir():
        skip = item.name in (CARD_FILE, card.weights.file) or item == card.path
        if not skip and item.is_file() and not item.is_symlink():
            shutil.copy2(item, dest / item.name)
    shutil.copyfile(card.path or card.folder / CARD_FILE, dest / CARD_FILE)
    weights = dest / card.weights.file
    weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(card.weights_path, weights)
