"""Static checks of a weights file's bytes, made before any loader sees them.

The bytes checked here are the bytes the loader gets (read once, see
:func:`medviewer.ai.weights.check_weights`). Nothing here unpickles, decodes tensors or
evaluates anything from the file:

- zip archives (TorchScript, ``torch.save``) must be laid out so that Python's :mod:`zipfile`
  and torch's reader (miniz) see the same members: nothing before the first entry or after the
  end record, the central directory exactly where the end record (and its zip64 twin) says, no
  flatbuffer magic (torch would read the file as a flatbuffer module), one top-level folder,
  no NUL or backslash in a name, and no name twice, even ignoring case (miniz looks names up
  ignoring case). No compressed member may expand past :data:`MAX_COMPRESSED_MEMBER`, all
  compressed ones together past :data:`MAX_COMPRESSED_TOTAL`, all members past the memory a
  model may use;
- every pickle in them (``.pkl``, ``.debug_pkl``, whatever the case) is disassembled with
  :func:`pickletools.genops`, never run: only ``GLOBAL`` targets that torch's own
  ``weights_only`` unpickler allows (tensor rebuilders, storages, dtypes, ``OrderedDict``...)
  pass, plus, in TorchScript, the archive's own compiled classes (``__torch__.*``, C++ classes
  only quantized ones) and ``torch.jit._pickle`` list builders; instructions that could reach
  any other code (``STACK_GLOBAL``, ``INST``, ``OBJ``, ``EXT*``) are refused;
- every TorchScript source file (``code/**/*.py``) is checked by
  :func:`medviewer.ai.torchscript_code.check_torchscript_code`: only tensor operators, no file,
  process or network access, no ``__setstate__`` outside torch's own classes;
- safetensors headers are checked in Python (header only: offsets inside the file, shapes
  matching their byte ranges), with the messages of the safetensors library;
- ONNX files are walked as protobuf wire format: every tensor stored as external data must
  name an existing regular file inside the model folder, relative to the ONNX file's own
  folder (as onnxruntime resolves it), not onnxruntime's in-memory address tag; the external
  files count toward the memory a model may use and are read here, once, for the loader.

Every refusal is a :class:`~medviewer.core.errors.ModelCardError` naming the file and the reason.
"""

from __future__ import annotations

import io
import json
import math
import pickletools
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from medviewer.ai.model_card import read_limited
from medviewer.ai.model_size import check_memory_use, memory_limit
from medviewer.ai.torchscript_code import check_torchscript_code, code_module, torchbind_allowed
from medviewer.core.errors import ModelCardError

#: A compressed zip member may expand to this many bytes at most (code and text, never tensors).
MAX_COMPRESSED_MEMBER = 64 << 20
#: All compressed members of one archive together may expand to this many bytes at most.
MAX_COMPRESSED_TOTAL = 256 << 20
#: Pickle instructions that import or call code by a name the checker cannot see statically.
FORBIDDEN_PICKLE_OPS = frozenset({"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"})
_PICKLE_SUFFIXES = (".pkl", ".debug_pkl")
_TORCHSCRIPT_CLASS = re.compile(r"^__torch__(\.[A-Za-z_][A-Za-z0-9_]*)*\.[A-Za-z_][A-Za-z0-9_]*$")
_TORCHBIND = "__torch__.torch.classes."
_JIT_PICKLE = "torch.jit._pickle."
#: What torch's weights_only unpickler allows, in case its private list cannot be read.
_FALLBACK_ALLOWED = frozenset({
    "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter", "torch.FloatStorage", "torch.DoubleStorage",
    "torch.HalfStorage", "torch.BFloat16Storage", "torch.LongStorage", "torch.IntStorage",
    "torch.ShortStorage", "torch.CharStorage", "torch.ByteStorage", "torch.BoolStorage",
})
_ORT_MEMORY_TAG = "_ORT_MEM_ADDR_"


def check_weights_bytes(data: bytes, path: Path, fmt: str, folder: Path) -> dict[str, bytes]:
    """Refuse weights that could run code, reach outside `folder` or expand in memory.

    Parameters
    ----------
    data : bytes
        The weights file's bytes (its sha256 already checked): exactly what the loader gets.
    path : Path
        The weights file as the card names it (``folder / weights.file``), for messages and
        ONNX external data.
    fmt : str
        The card's ``weights.format``.
    folder : Path
        The model folder; ONNX external data must stay inside it.

    Returns
    -------
    dict of str to bytes
        ONNX external data files, by their location as written in the model, read once and
        checked; empty for other formats and ONNX models without external data.

    Raises
    ------
    ModelCardError
        ``"<path>: refused: <reason>"``.
    """
    check = _CHECKS.get(fmt)
    if check is None:
        raise ModelCardError(f"{path}: refused: medviewer does not load {fmt!r} weights")
    return check(data, path, folder)


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
    """``weights_only`` globals, the archive's compiled classes and TorchScript list builders.

    Of torch's C++ classes (``__torch__.torch.classes.*``, whose ``__setstate__`` runs in
    C++ while the archive loads) only the quantized packed parameters are allowed.
    """
    if weights_only_allowed(target):
        return True
    if _TORCHSCRIPT_CLASS.match(target):
        return not target.startswith(_TORCHBIND) or torchbind_allowed(target)
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

_LOCAL_HEADER = b"PK\x03\x04"
_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")


class _Archive:
    """A zip archive in memory whose layout and names passed :func:`_open_archive`."""

    def __init__(self, zip_file: zipfile.ZipFile, infos: list[zipfile.ZipInfo], top: str) -> None:
        self.zip = zip_file
        self.infos = infos
        self.top = top

    def named(self, relative: str) -> list[zipfile.ZipInfo]:
        """The members named ``<top>/<relative>``, ignoring case (as torch looks them up)."""
        wanted = f"{self.top}/{relative}".casefold()
        return [info for info in self.infos if info.filename.casefold() == wanted]


def _open_archive(data: bytes, path: Path, kind: str) -> _Archive:
    """The checked member list of a zip archive (``kind`` names the format in errors)."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelCardError(f"{path}: refused: not a {kind} file (not a zip archive)")
    entries, cd_offset = _check_layout(data, path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise ModelCardError(f"{path}: refused: not a readable {kind} file ({exc})") from None
    if archive.start_dir != cd_offset or len(infos) != entries:
        raise ModelCardError(
            f"{path}: refused: Python's zipfile and torch would read different member lists "
            "(the central directory does not sit where the end record says)"
        )
    _check_sizes(path, infos)
    return _Archive(archive, infos, _check_names(path, infos))


def _check_layout(data: bytes, path: Path) -> tuple[int, int]:
    """(entries, central directory offset) when the archive sits alone in the file.

    Python's zipfile tolerates bytes before an archive (it shifts every offset) and always
    takes the zip64 end record's values; miniz (torch) does neither. Archives where the two
    could differ are refused.
    """
    def refuse(reason: str) -> ModelCardError:
        return ModelCardError(
            f"{path}: refused: {reason} (torch and Python's zipfile could read different "
            "members, so the archive is not checked further)"
        )

    if not data.startswith(_LOCAL_HEADER):
        raise refuse("bytes come before the archive's first member")
    if data[4:8] == b"PTMF":
        raise ModelCardError(
            f"{path}: refused: its header also marks it as a flatbuffer module, which "
            "torch.jit.load would read instead of the zip archive that was checked"
        )
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - _END.size - 0xFFFF))
    if end < 0 or end + _END.size > len(data):
        raise refuse("no end record")
    _, disk, cd_disk, disk_entries, entries, cd_size, cd_offset, comment = _END.unpack_from(
        data, end)
    if end + _END.size + comment != len(data):
        raise refuse("bytes follow the archive's end record")
    cd_end = end
    locator = end - _END64_LOCATOR.size
    if locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":
        _, _, end64, _ = _END64_LOCATOR.unpack_from(data, locator)
        if end64 + _END64.size != locator or data[end64:end64 + 4] != b"PK\x06\x06":
            raise refuse("the zip64 end record is not right before its locator")
        fields = _END64.unpack_from(data, end64)
        size64 = fields[1]
        disk64, cd_disk64, disk_entries64, entries64, cd_size64, cd_offset64 = fields[4:]
        if size64 != _END64.size - 12:
            raise refuse("the zip64 end record has extra data")
        for short, long, full in ((disk, disk64, 0xFFFF), (cd_disk, cd_disk64, 0xFFFF),
                                  (disk_entries, disk_entries64, 0xFFFF),
                                  (entries, entries64, 0xFFFF),
                                  (cd_size, cd_size64, 0xFFFFFFFF),
                                  (cd_offset, cd_offset64, 0xFFFFFFFF)):
            if short not in (long, full):
                raise refuse("the end record and the zip64 end record disagree")
        disk, cd_disk, disk_entries, entries = disk64, cd_disk64, disk_entries64, entries64
        cd_size, cd_offset, cd_end = cd_size64, cd_offset64, end64
    if disk or cd_disk or disk_entries != entries:
        raise refuse("it claims to span several disks")
    if cd_offset + cd_size != cd_end:
        raise refuse("its central directory does not sit where the end record says")
    return entries, cd_offset


def _check_names(path: Path, infos: list[zipfile.ZipInfo]) -> str:
    """The archive's one top-level folder; refuse odd names and names twice (ignoring case)."""
    if not infos:
        raise ModelCardError(f"{path}: refused: the archive is empty")
    top = infos[0].orig_filename.split("/")[0]
    seen: dict[str, str] = {}
    for info in infos:
        name = info.orig_filename
        if "\0" in name or "\\" in name:
            raise ModelCardError(
                f"{path}: refused: the member name {name!r} holds a "
                f"{'NUL character' if chr(0) in name else 'backslash'} (readers disagree on "
                "what such a name is)"
            )
        if "/" not in name or name.split("/")[0] != top:
            raise ModelCardError(
                f"{path}: refused: {name!r} is outside the archive's folder {top!r} (torch "
                "reads only the folder of the first member; a second one could hide what it "
                "reads)"
            )
        key = name.casefold()
        if key in seen:
            if seen[key] == name:
                raise ModelCardError(
                    f"{path}: refused: {name!r} appears twice in the archive (a loader could "
                    "read another copy than the one checked)"
                )
            raise ModelCardError(
                f"{path}: refused: {seen[key]!r} and {name!r} differ only in case (torch "
                "looks names up ignoring case, so it could read another member than the one "
                "checked)"
            )
        seen[key] = name
    return top


def _check_sizes(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    compressed = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise ModelCardError(f"{path}: refused: {info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            if info.file_size > MAX_COMPRESSED_MEMBER:
                raise ModelCardError(
                    f"{path}: refused: {info.filename!r} is compressed and would expand to "
                    f"{_mb(info.file_size)} in memory (at most {_mb(MAX_COMPRESSED_MEMBER)}; "
                    "torch stores tensor data uncompressed)"
                )
            compressed += info.file_size
    if compressed > MAX_COMPRESSED_TOTAL:
        raise ModelCardError(
            f"{path}: refused: its compressed members would expand to {_mb(compressed)} in "
            f"memory (at most {_mb(MAX_COMPRESSED_TOTAL)} in all; torch stores tensor data "
            "uncompressed)"
        )
    check_memory_use(path, sum(info.file_size for info in infos),
                     "its members would expand to")


def _read_member(archive: _Archive, info: zipfile.ZipInfo, path: Path) -> bytes:
    try:
        return archive.zip.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise ModelCardError(f"{path}: refused: a damaged zip archive ({exc})") from None


def _check_pickles(archive: _Archive, path: Path, allowed: Callable[[str], bool]) -> None:
    for info in archive.infos:
        if info.filename.casefold().endswith(_PICKLE_SUFFIXES):
            check_pickle(_read_member(archive, info, path), f"{path} ({info.filename})", allowed)


def _check_code(archive: _Archive, path: Path) -> None:
    for info in archive.infos:
        if info.filename.casefold().endswith(".py"):
            where = f"{path} ({info.filename})"
            try:
                text = _read_member(archive, info, path).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ModelCardError(
                    f"{where}: refused: its TorchScript code is not UTF-8 text ({exc})"
                ) from None
            check_torchscript_code(text, where, code_module(info.filename))


def _check_torchscript(data: bytes, path: Path, folder: Path) -> dict[str, bytes]:
    archive = _open_archive(data, path, "TorchScript")
    with archive.zip:
        if not archive.named("data.pkl") or not archive.named("constants.pkl"):
            raise ModelCardError(
                f"{path}: refused: not a TorchScript file (no data.pkl and constants.pkl; save "
                "it with torch.jit.save)"
            )
        _check_pickles(archive, path, torchscript_allowed)
        _check_code(archive, path)
    return {}


def _check_state_dict(data: bytes, path: Path, folder: Path) -> dict[str, bytes]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelCardError(
            f"{path}: refused: not a torch.save archive (files from before torch 1.6, or plain "
            "pickles, are not loaded; save the state dict with torch.save or as safetensors)"
        )
    archive = _open_archive(data, path, "torch.save")
    with archive.zip:
        pickles = [i for i in archive.infos if i.filename.casefold().endswith("/data.pkl")]
        constants = [i for i in archive.infos if i.filename.casefold().endswith("/constants.pkl")]
        if len(pickles) != 1 or not archive.named("data.pkl") or constants:
            raise ModelCardError(
                f"{path}: refused: not a torch.save state dict (expected one data.pkl; a "
                "TorchScript file needs weights.format 'torchscript')"
            )
        _check_pickles(archive, path, weights_only_allowed)
    return {}


# -- safetensors ------------------------------------------------------------------------

#: Bits per element of each safetensors dtype.
_SAFETENSORS_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32,
    "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
_SAFETENSORS_MAX_HEADER = 100_000_000


def _check_safetensors(data: bytes, path: Path, folder: Path) -> dict[str, bytes]:
    problem = safetensors_header_problem(data)
    if problem:
        raise ModelCardError(
            f"{path}: refused: not a valid safetensors file (Error while deserializing "
            f"header: {problem})"
        )
    return {}


def safetensors_header_problem(data: bytes) -> str | None:
    """What is wrong with a safetensors file's header (the library's words), or ``None``.

    The rules of the safetensors library, checked on the bytes in memory without decoding a
    tensor: the header fits in the file, every tensor's shape and dtype match its byte range,
    the ranges follow each other from 0 and cover the data exactly.
    """
    if len(data) < 8:
        return "header too small"
    length = int.from_bytes(data[:8], "little")
    if length > _SAFETENSORS_MAX_HEADER:
        return "header too large"
    if 8 + length > len(data):
        return "invalid header length"
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 in header: {exc}"
    except (ValueError, RecursionError) as exc:
        return f"invalid JSON in header: {exc}"
    if not isinstance(header, dict):
        return "invalid JSON in header: not an object"
    ranges = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return "invalid JSON in header: __metadata__ must map strings to strings"
            continue
        entry = _tensor_range(info)
        if entry is None:
            return f"invalid JSON in header: tensor {name!r} is not a dtype, shape and offsets"
        ranges.append((*entry, name))
    position = 0
    for begin, end, bits, elements, name in sorted(ranges):
        if begin != position or end < begin:
            return f"invalid offset for tensor `{name}`"
        if elements * bits % 8 or elements * bits // 8 != end - begin:
            return "invalid shape, data type, or offset for tensor"
        position = end
    if 8 + length + position != len(data):
        return "incomplete metadata, file not fully covered"
    return None


def _tensor_range(info: Any) -> tuple[int, int, int, int] | None:
    """(begin, end, bits per element, elements) of one header entry, or None when malformed."""
    if not isinstance(info, dict) or info.get("dtype") not in _SAFETENSORS_BITS:
        return None
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not (isinstance(shape, list) and isinstance(offsets, list) and len(offsets) == 2):
        return None
    if not all(type(n) is int and n >= 0 for n in (*shape, *offsets)):
        return None
    return offsets[0], offsets[1], _SAFETENSORS_BITS[info["dtype"]], math.prod(shape)


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


def _check_onnx(data: bytes, path: Path, folder: Path) -> dict[str, bytes]:
    """External data: inside the folder, relative to the ONNX file's folder, read once here."""
    try:
        locations = onnx_external_locations(data)
    except ValueError as exc:
        raise ModelCardError(f"{path}: refused: not an ONNX model ({exc})") from None
    base = PurePosixPath(path.relative_to(folder).as_posix()).parent
    external: dict[str, bytes] = {}
    total = len(data)
    for location in dict.fromkeys(locations):
        what = f"{path}: external tensor data {location!r}"
        if _ORT_MEMORY_TAG.casefold() in location.casefold():
            raise ModelCardError(
                f"{what}: refused: {_ORT_MEMORY_TAG} asks onnxruntime to read the tensor from a "
                "raw memory address, which no model file may do"
            )
        target = check_inside(folder, location, what, base=base.as_posix())
        if not target.is_file():
            raise ModelCardError(
                f"{what}: refused: {target} is not an existing regular file (external data is "
                "found beside the ONNX file)"
            )
        check_memory_use(path, total + target.stat().st_size,
                         "with its external tensor data the model is")  # before reading it
        content = read_limited(target, memory_limit() - total, "the external tensor data")
        total += len(content)
        external[location] = content
    return external


def check_inside(folder: Path, relative: str, what: str, base: str = "") -> Path:
    """The real path of ``folder / base / relative``; refused when it leaves `folder`'s real path.

    Parameters
    ----------
    folder : Path
        The model folder.
    relative : str
        A path written in the model (a card field, an ONNX location).
    what : str
        What to call it in errors.
    base : str, optional
        A folder inside `folder` that `relative` is relative to (an ONNX file's folder);
        already checked, never absolute.

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
        target = (root / base / pure).resolve()
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


_CHECKS: dict[str, Callable[[bytes, Path, Path], dict[str, bytes]]] = {
    "torchscript": _check_torchscript,
    "state_dict": _check_state_dict,
    "safetensors": _check_safetensors,
    "onnx": _check_onnx,
}
