"""Passwords and tokens of DICOMweb nodes: kept in the OS keyring when there is one, never in
``pacs-nodes.json`` and never in a log or message.

Where no keyring is usable (a headless Linux without a Secret Service, for instance) they are
kept in ``pacs-secrets.json`` in the user's config folder, readable by the user only (mode
0600), as git's credential store and PostgreSQL's ``.pgpass`` do; :func:`store_secret` says
which. ``MEDVIEWER_SECRETS=file`` forces that file (the test suite sets it, so no test touches a
real keyring) and ``MEDVIEWER_SECRETS=keyring`` refuses to fall back to it. For scripts,
``MEDVIEWER_PACS_SECRET`` gives the secret of whatever node a command uses, first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medviewer.core.errors import NetworkError
from medviewer.core.staging import staged_file

SERVICE = "medviewer-pacs"
"""The keyring service name; the user name is the node's name."""
ENVIRONMENT = "MEDVIEWER_PACS_SECRET"
"""A secret given to one command (scripts), used before the stored one."""


_SESSION: dict[str, str] = {}


def use_for_session(name: str, secret: str) -> None:
    """Use `secret` for node `name` until the program ends, without keeping it (a secret
    typed at a prompt, or one being tried before it is saved); empty forgets it."""
    if secret:
        _SESSION[name] = secret
    else:
        _SESSION.pop(name, None)


def secret_for(name: str) -> str:
    """The password or token of node `name`: ``MEDVIEWER_PACS_SECRET``, else one given for
    this session, else the kept one; empty when there is none."""
    given = os.environ.get(ENVIRONMENT, "") or _SESSION.get(name, "")
    if given:
        return given
    keyring = _keyring()
    if keyring is not None:
        return keyring.get_password(SERVICE, name) or ""
    return str(_read_file().get(name, ""))


def store_secret(name: str, secret: str) -> str:
    """Keep `secret` for node `name` (an empty one forgets it); return where it is kept, in
    words (no secret in it)."""
    keyring = _keyring()
    if keyring is not None:
        if secret:
            keyring.set_password(SERVICE, name, secret)
        elif keyring.get_password(SERVICE, name) is not None:
            keyring.delete_password(SERVICE, name)
        return "the OS keyring"
    secrets = _read_file()
    if secret:
        secrets[name] = secret
    else:
        secrets.pop(name, None)
    path = secrets_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(path) as part:
        part.touch(mode=0o600)
        os.chmod(part, 0o600)
        part.write_text(json.dumps(secrets, indent=2) + "\n", encoding="utf-8")
    return f"{path} (readable only by you; no OS keyring was found)"


def secrets_path() -> Path:
    """The fallback file (``pacs-secrets.json`` in the user's config folder)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("medviewer")) / "pacs-secrets.json"


def _keyring() -> Any:
    """The ``keyring`` module when it has a usable backend and the setting allows it."""
    choice = os.environ.get("MEDVIEWER_SECRETS", "auto")
    if choice not in ("auto", "keyring", "file"):
        raise NetworkError(f"MEDVIEWER_SECRETS must be auto, keyring or file, not {choice!r}")
    if choice == "file":
        return None
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        usable = not isinstance(backend, fail.Keyring) and getattr(backend, "priority", 0) > 0
        if getattr(backend, "backends", None) == []:  # a chainer holding no keyring
            usable = False
    except Exception:  # noqa: BLE001 (a broken keyring installation is "no keyring")
        usable = False
    if usable:
        return keyring
    if choice == "keyring":
        raise NetworkError("MEDVIEWER_SECRETS=keyring, but no OS keyring is usable here")
    return None


def _read_file() -> dict[str, str]:
    path = secrets_path()
    if not path.exists():
        return {}
    if path.stat().st_mode & 0o077:
        raise NetworkError(f"{path} is readable by others: run `chmod 600 {path}`")
    try:
        secrets = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NetworkError(f"{path}: cannot read the PACS secrets ({type(exc).__name__})"
                           ) from None
    if not isinstance(secrets, dict):
        raise NetworkError(f"{path}: expected an object of node names")
    return {str(k): str(v) for k, v in secrets.items()}
