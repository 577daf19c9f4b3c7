"""The click-to-segment engines by name (the command line's ``--engine``, the viewer's tool)."""

from __future__ import annotations

from medviewer.ai.interactive import Engine
from medviewer.core.errors import InferenceError

ENGINES = ("classical",)


def engine_named(name: str) -> Engine:
    """The engine for `name`; :class:`InferenceError` for an unknown one."""
    if name == "classical":
        from medviewer.ai.classical_engine import ClassicalEngine

        return ClassicalEngine()
    raise InferenceError(f"no interactive engine {name!r} (available: {', '.join(ENGINES)})")
