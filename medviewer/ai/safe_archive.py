"""Static checks of a weights file, made before any loader reads it.

Nothing here unpickles, decodes tensors or evaluates anything from the file:

- zip archives (TorchScript, ``torch.save``) are listed with :mod:`zipfile`: no member twice (a
  reader could pick another copy than the one checked), no compressed member that would expand
  past :data:`MAX_COMPRESSED_MEMBER` (torch stores tensor data uncompressed);
- every pickle in them is disassembled with :func:`pickletools.genops`, never run: only
  ``GLOBAL`` targets that torch's own ``weights_only`` unpickler allows (tensor rebuilders,
  storages, dtypes, ``OrderedDict``...) pass, plus, in TorchScript, the archive's own compiled
  classes (``__torch__.*``) and ``torch.jit._pickle`` list builders; instructions that could
  reach any other code (``STACK_GLOBAL``, ``INST``, ``OBJ``, ``EXT*``) are refused;
- safetensors headers are checked by :func:`safetensors.safe_open` (header only: offsets inside
  the file, shapes matching their byte ranges);
- ONNX files are walked as protobuf wire format: every tensor stored as external data must name
  a file inside the model folder (no absolute path, no ``..``, no link leading out).

Every refusal is a :class:`~medviewer.core.errors.ModelCardError` naming the file and the reason.
"""

from __future__ import annotations

import pickletools
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from medviewer.core.errors import ModelCardError

#: A compressed zip member may expand to this many bytes at most (code and text, never tensors).
MAX_COMPRESSED_MEMBER = 64 << 20
#: Pickle instructions that import or call code by a name the checker cannot see statically.
FORBIDDEN_PICKLE_OPS = frozenset({"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"})
_PICKLE_SUFFIXES = (".pkl", ".debug_pkl")
_TORCHSCRIPT_CLASS = re.compile(r"^__torch__(\.[A-Za-z_][A-Za-z0-9_]*)*\.[A-Za-z_][A-Za-z0-9_]*$")
_JIT_PICKLE = "torch.jit._pickle."
#: What torch's weights_only unpickler allows, in case its private list cannot be read.
_FALLBACK_ALLOWED = frozenset({
    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter", "torch.FloatStorage", "torch.DoubleStorage",
    "torch.HalfStorage", "torch.BFloat16Storage", "torch.LongStorage", "torch.IntStorage",
    "torch.ShortStorage", "torch.CharStorage", "torch.ByteStorage", "torch.BoolStorage",
})


def check_weights_file(path: Path, fmt: str, folder: Path) -> None:
    """Refuse a weights file that could run code, reach outside `folder` or expand in memory.

    Parameters
    ----------
    path : Path
        The weights file (its sha256 already checked).
    fmt : str
        The card's ``weights.format``.
    folder : Path
        The model folder; ONNX external data must stay inside it.

    Raises
    ------
    ModelCardError
        ``"<path>: refused: <reason>"``.
    """
    check = _CHECKS.get(fmt)
    if check is None:
        raise ModelCardError(f"{path}: refused: medviewer does not load {fmt!r} weights")
    check(path, folder)


# -- pickles ----------------------------------------------------------------------------


def pickle_globals(data: bytes | BinaryIO, where: str) -> list[str]:
    """The ``module.name`` of every ``GLOBAL`` in one pickle, read without running it.

    Parameters
    ----------
    data : bytes or binary file
        The pickle (a file is read as a stream, never whole).
    where : str
        What to call it in errors (file and member).

    Returns
    -------
    list of str
        In order of appearance.

    Raises
    ------
    ModelCardError
        When the pickle is malformed or uses an instruction in :data:`FORBIDDEN_PICKLE_OPS`.
    """
    found: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in FORBIDDEN_PICKLE_OPS:
                raise ModelCardError(
                    f"{where}: refused: the pickle instruction {opcode.name} could load any "
                    "program code, which a weights file never needs"
                )
            if opcode.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                found.append(f"{module}.{name}")
    except (ValueError, EOFError) as exc:
        raise ModelCardError(f"{where}: refused: not a readable pickle ({exc})") from None
    return found


def check_pickle(data: bytes | BinaryIO, where: str, allowed: Callable[[str], bool]) -> None:
    """Refuse a pickle naming any global that `allowed` rejects, before it is ever unpickled.

    Raises
    ------
    ModelCardError
        ``"<where>: refused: loading it would call 'os.system' ..."``.
    """
    for target in pickle_globals(data, where):
        if not allowed(target):
            raise ModelCardError(
                f"{where}: refused: loading it would call {target!r}; a weights file may only "
                "rebuild tensors and the network's own layers, so it is not loaded"
            )


def weights_only_allowed(target: str) -> bool:
    """Whether torch's ``weights_only`` unpickler allows the global ``module.name``."""
    return target in _weights_only_globals()


def torchscript_allowed(target: str) -> bool:
    """``weights_only`` globals, the archive's compiled classes and TorchScript list builders."""
    if weights_only_allowed(target) or _TORCHSCRIPT_CLASS.match(target):
        return True
    if not target.startswith(_JIT_PICKLE):
        return False
    name = target.removeprefix(_JIT_PICKLE)
    return name.isidentifier() and (name.startswith("build_") or name == "restore_type_tag")


def _weights_only_globals() -> frozenset[str]:
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
    except ImportError:
        return _FALLBACK_ALLOWED
    return frozenset(_get_allowed_globals())


# -- zip archives -----------------------------------------------------------------------


def _members(path: Path, kind: str) -> list[zipfile.ZipInfo]:
    """The checked member list of a zip archive (``kind`` names the format in errors)."""
    if not zipfile.is_zipfile(path):
        raise ModelCardError(f"{path}: refused: not a {kind} file (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelCardError(f"{path}: refused: not a readable {kind} file ({exc})") from None
    seen: set[str] = set()
    for info in infos:
        if info.filename in seen:
            raise ModelCardError(
                f"{path}: refused: {info.filename!r} appears twice in the archive "
                "(a loader could read another copy than the one checked)"
            )
        seen.add(info.filename)
        _check_member_size(path, info)
    return infos


def _check_member_size(path: Path, info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise ModelCardError(f"{path}: refused: {info.filename!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_COMPRESSED_MEMBER:
        raise ModelCardError(
            f"{path}: refused: {info.filename!r} is compressed and would expand to "
            f"{_mb(info.file_size)} in memory (at most {_mb(MAX_COMPRESSED_MEMBER)}; torch "
            "stores tensor data uncompressed)"
        )


def _check_pickles(path: Path, infos: list[zipfile.ZipInfo],
                   allowed: Callable[[str], bool]) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in infos:
                if info.filename.endswith(_PICKLE_SUFFIXES):
                    with archive.open(info) as stream:
                        check_pickle(stream, f"{path} ({info.filename})", allowed)
    except (zipfile.BadZipFile, zlib.error, OSError) as exc:
        raise ModelCardError(f"{path}: refused: a damaged zip archive ({exc})") from None


def _has_member(infos: list[zipfile.ZipInfo], suffix: str) -> bool:
    return any(info.filename.endswith(suffix) for info in infos)


def _check_torchscript(path: Path, folder: Path) -> None:
    infos = _members(path, "TorchScript")
    if not _has_member(infos, "/data.pkl") or not _has_member(infos, "/constants.pkl"):
        raise ModelCardError(
            f"{path}: refused: not a TorchScript file (no data.pkl and constants.pkl; save it "
            "with torch.jit.save)"
        )
    _check_pickles(path, infos, torchscript_allowed)


def _check_state_dict(path: Path, folder: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise ModelCardError(
            f"{path}: refused: not a torch.save archive (files from before torch 1.6, or plain "
            "pickles, are not loaded; save the state dict with torch.save or as safetensors)"
        )
    infos = _members(path, "torch.save")
    pickles = [info for info in infos if info.filename.endswith("/data.pkl")]
    if len(pickles) != 1 or _has_member(infos, "/constants.pkl"):
        raise ModelCardError(
            f"{path}: refused: not a torch.save state dict (expected one data.pkl; a TorchScript "
            "file needs weights.format 'torchscript')"
        )
    _check_pickles(path, infos, weights_only_allowed)


# -- safetensors ------------------------------------------------------------------------


def _check_safetensors(path: Path, folder: Path) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except (SafetensorError, OSError) as exc:
        raise ModelCardError(
            f"{path}: refused: not a valid safetensors file ({_first_line(exc)})"
        ) from None


# -- ONNX -------------------------------------------------------------------------------

#: Which protobuf fields of which ONNX message hold which message (onnx/onnx.proto).
_ONNX_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse",
                  23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}
_TENSOR_EXTERNAL_DATA = 13


def onnx_external_locations(data: bytes) -> list[str]:
    """Every ``location`` of external tensor data named anywhere in an ONNX model.

    Parameters
    ----------
    data : bytes
        A serialized ``ModelProto``.

    Returns
    -------
    list of str
        The locations as written (relative to the model file's folder when well formed).

    Raises
    ------
    ValueError
        When the bytes are not protobuf wire format.
    """
    return list(_locations(memoryview(data), "model", depth=0))


def _locations(buffer: memoryview, kind: str, depth: int) -> Iterator[str]:
    if depth > 64:
        raise ValueError("messages nested more than 64 deep")
    children = _ONNX_CHILDREN.get(kind, {})
    for number, wire, value in _wire_fields(buffer):
        if wire != 2 or number not in children:
            continue
        child = children[number]
        if child == "entry":
            entry = {n: bytes(v) for n, w, v in _wire_fields(value) if w == 2}
            if entry.get(1) == b"location":
                yield entry.get(2, b"").decode("utf-8", errors="replace")
        else:
            yield from _locations(value, child, depth + 1)


def _wire_fields(buffer: memoryview) -> Iterator[tuple[int, int, memoryview]]:
    """(field number, wire type, payload) of each field; payload is empty unless wire type 2."""
    pos, end = 0, len(buffer)
    while pos < end:
        key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buffer, pos)
            yield number, wire, buffer[0:0]
            continue
        size = {1: 8, 5: 4}.get(wire)
        if wire == 2:
            size, pos = _varint(buffer, pos)
        if size is None or number == 0 or pos + size > end:
            raise ValueError(f"malformed protobuf field at byte {pos}")
        yield number, wire, buffer[pos:pos + size] if wire == 2 else buffer[0:0]
        pos += size


def _varint(buffer: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(buffer) and shift < 70:
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError(f"malformed protobuf varint at byte {pos}")


def _check_onnx(path: Path, folder: Path) -> None:
    try:
        locations = onnx_external_locations(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise ModelCardError(f"{path}: refused: not an ONNX model ({exc})") from None
    for location in dict.fromkeys(locations):
        check_inside(folder, location, f"{path}: external tensor data {location!r}")


def check_inside(folder: Path, relative: str, what: str) -> Path:
    """The real path of ``folder / relative``; refused when it leaves `folder`'s real path.

    Parameters
    ----------
    folder : Path
        The model folder.
    relative : str
        A path written in the model (a card field, an ONNX location).
    what : str
        What to call it in errors.

    Returns
    -------
    Path
        The resolved path (it may not exist).

    Raises
    ------
    ModelCardError
        For an absolute path, a ``..`` part, or a symbolic link leading out of the folder.
    """
    pure = PurePosixPath(relative.replace("\\", "/"))
    if not relative or pure.is_absolute() or re.match(r"^[A-Za-z]:", relative):
        raise ModelCardError(f"{what}: refused: must be a path inside the model folder {folder}")
    if ".." in pure.parts:
        raise ModelCardError(f"{what}: refused: '..' leads outside the model folder {folder}")
    try:
        root = folder.resolve()
        target = (root / pure).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links
        raise ModelCardError(f"{what}: refused: cannot be followed ({exc})") from None
    if not target.is_relative_to(root):
        raise ModelCardError(
            f"{what}: refused: it leads outside the model folder {folder} (through a link to "
            f"{target})"
        )
    return target


def _mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size:,} bytes"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_CHECKS: dict[str, Callable[[Path, Path], None]] = {
    "torchscript": _check_torchscript,
    "state_dict": _check_state_dict,
    "safetensors": _check_safetensors,
    "onnx": _check_onnx,
}
