"""The program code inside a TorchScript archive, checked as text before torch compiles it.

``torch.jit.load`` compiles every ``code/**/*.py`` file of the archive and runs the
``__setstate__`` of every scripted object while it loads; the model's methods run later, on
every inference. TorchScript reaches the outside world only through operators: ``torch.X``
is the operator ``aten::X`` and ``ops.NS.X`` is ``NS::X`` (any library can register a
namespace, e.g. torchvision's ``image::read_file``), and through C++ classes named
``__torch__.torch.classes.NS.Class``. So the code is tokenized (Python's :mod:`tokenize`, the
same token grammar torch's printer writes) and refused when it:

- calls an operator outside the allowlist: the ``aten`` and ``quantized`` operators this torch
  registers, minus :data:`DENIED_OPERATORS` (``aten::from_file`` maps any file into memory,
  writable with ``shared=True``; ``aten::save`` writes one), and the ``prim`` operators in
  :data:`PRIM_OPERATORS`; every other namespace is refused;
- names a denied operator anywhere (as a method, an attribute or a string: a tensor's methods
  are operators too);
- uses ``torch``, ``ops`` or ``__torch__`` other than in a full operator or class name (an alias
  or ``getattr(ops, ...)`` would hide the call);
- uses a C++ class other than quantized packed parameters;
- defines ``__setstate__`` (which runs during the load) in a class outside ``__torch__.torch``
  (the name is the archive's own claim, so this is a second line: the allowlist above applies
  to every class);
- is not plain UTF-8 text in the form torch writes (control characters, prefixed or
  triple-quoted strings).

Every refusal is a :class:`~medviewer.core.errors.ModelCardError` naming the file, the member,
the line and the reason.
"""

from __future__ import annotations

import io
import tokenize
from functools import lru_cache

from medviewer.core.errors import ModelCardError

#: Operator namespaces a model's code may call.
ALLOWED_NAMESPACES = ("aten", "prim", "quantized")
#: Operators that touch files, processes or the network, with what they do.
DENIED_OPERATORS = {
    "aten::from_file": "maps any file on this computer into memory (writable with shared=True)",
    "aten::save": "writes a file on this computer",
    "prim::rpc_async": "talks to other computers",
    "prim::rpc_sync": "talks to other computers",
    "prim::rpc_remote": "talks to other computers",
    "prim::PythonOp": "runs Python code",
    "prim::IgnoredPythonOp": "runs Python code",
}
#: The ``prim`` operators a model's code may call (the rest are the JIT's internal graph nodes).
PRIM_OPERATORS = frozenset({
    "AutogradAdd", "AutogradAllNonZero", "AutogradAllZero", "AutogradAnyNonZero",
    "AutogradZero", "BroadcastSizes", "ChunkSizes", "ConstantChunk", "EnumName", "EnumValue",
    "IfThenElse", "ModuleContainerIndex", "NumToTensor", "Print", "RaiseException",
    "StringIndex", "TupleIndex", "TupleUnpack", "Uninitialized", "VarConcat", "VarStack", "abs",
    "awaitable_nowait", "awaitable_wait", "data", "device", "dtype", "grad", "id", "index",
    "is_cpu", "is_cuda", "is_ipu", "is_maia", "is_meta", "is_mkldnn", "is_mps", "is_mtia",
    "is_nested", "is_quantized", "is_sparse", "is_sparse_csr", "is_vulkan", "is_xla", "is_xpu",
    "itemsize", "layout", "max", "min", "name", "nbytes", "rangelist", "requires_grad",
    "tolist", "type", "unchecked_cast", "unchecked_unwrap_optional",
})
#: C++ classes (``__torch__.torch.classes.<namespace>.*``) a model may hold.
ALLOWED_CLASS_NAMESPACES = ("quantized",)
_DENIED_NAMES = frozenset(op.partition("::")[2] for op in DENIED_OPERATORS)
_LAYOUT = frozenset({tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                     tokenize.ENDMARKER, tokenize.COMMENT})
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\n"} | {"\x7f"}
_TORCH_OWN = "__torch__.torch."
_TORCHBIND = "__torch__.torch.classes."


def operator_allowed(namespace: str, name: str) -> bool:
    """Whether the model's code may call the operator ``namespace::name``."""
    qualified = f"{namespace}::{name}"
    if namespace not in ALLOWED_NAMESPACES or qualified in DENIED_OPERATORS:
        return False
    if namespace == "prim":
        return name in PRIM_OPERATORS
    return qualified in _registered_operators()


def torchbind_allowed(qualified: str) -> bool:
    """Whether ``__torch__.torch.classes.NS.Class`` names an allowed C++ class."""
    parts = qualified.removeprefix(_TORCHBIND).split(".")
    return len(parts) == 2 and parts[0] in ALLOWED_CLASS_NAMESPACES


@lru_cache(maxsize=1)
def _registered_operators() -> frozenset[str]:
    import torch

    return frozenset(schema.name for schema in torch._C._jit_get_all_schemas())


def code_module(member: str) -> str:
    """``__torch__.a.b`` for the archive member ``<folder>/code/__torch__/a/b.py``."""
    parts = member.split("/")
    if len(parts) > 2 and parts[1].casefold() == "code":
        parts = parts[2:]
    return ".".join(parts).removesuffix(".py")


def check_torchscript_code(text: str, where: str, module: str) -> None:
    """Refuse TorchScript source that could touch files, processes or the network.

    Parameters
    ----------
    text : str
        One ``code/...py`` member, decoded as UTF-8.
    where : str
        ``"<file> (<member>)"``, for messages.
    module : str
        The member's module (:func:`code_module`), e.g. ``__torch__.monai.networks.nets.unet``.

    Raises
    ------
    ModelCardError
        ``"<where>: refused: line 12 calls 'torch.from_file', which maps any file ..."``; see
        the module notes for every reason.
    """
    bad = sorted({repr(c) for c in text if c in _CONTROL})
    if bad:
        raise ModelCardError(
            f"{where}: refused: its TorchScript code holds control characters torch never "
            f"writes ({', '.join(bad)})"
        )
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                  if t.type not in _LAYOUT]
    except (tokenize.TokenError, SyntaxError) as exc:
        raise ModelCardError(f"{where}: refused: not readable TorchScript code ({exc})") from None
    scope = module
    for index, token in enumerate(tokens):
        line = f"line {token.start[0]}"
        if token.type == tokenize.ERRORTOKEN:
            raise ModelCardError(
                f"{where}: refused: {line}: {token.string!r} is not TorchScript code"
            )
        if token.type == tokenize.STRING:
            _check_string(token.string, where, line)
        if token.type != tokenize.NAME:
            continue
        _check_name(token.string, where, line)
        if index and tokens[index - 1].string == ".":
            continue  # an attribute: its name was checked above
        following = tokens[index + 1].string if index + 1 < len(tokens) else ""
        if token.string == "class" and token.start[1] == 0:
            scope = f"{module}.{following}"
        elif token.string == "def" and following == "__setstate__":
            _check_setstate(scope, where, line)
        elif token.string in ("torch", "ops", "__torch__"):
            first = not index or tokens[index - 1].start[0] < token.start[0]
            if not (first and following == ":"):  # not a class attribute named "ops"
                _check_chain(_chain(tokens, index), where, line)


def _check_string(literal: str, where: str, line: str) -> None:
    if literal[:1] not in ("'", '"') or literal[:3] in ('"""', "'''"):
        raise ModelCardError(
            f"{where}: refused: {line}: the string {literal[:40]!r} is not in the form torch "
            "writes (no prefixes, no triple quotes)"
        )
    if literal[1:-1] in _DENIED_NAMES:
        _deny(literal[1:-1], where, line)


def _check_name(name: str, where: str, line: str) -> None:
    if name in _DENIED_NAMES:
        _deny(name, where, line)


def _deny(name: str, where: str, line: str) -> None:
    qualified = next(op for op in DENIED_OPERATORS if op.endswith(f"::{name}"))
    raise ModelCardError(
        f"{where}: refused: {line} names {qualified!r}, which {DENIED_OPERATORS[qualified]}; a "
        "model's code may only compute on tensors"
    )


def _chain(tokens: list[tokenize.TokenInfo], index: int) -> list[str]:
    """The dotted name starting at ``tokens[index]``: ``['ops', 'prim', 'RaiseException']``."""
    names = [tokens[index].string]
    while (index + 2 < len(tokens) and tokens[index + 1].string == "."
           and tokens[index + 2].type == tokenize.NAME):
        names.append(tokens[index + 2].string)
        index += 2
    return names


def _check_chain(names: list[str], where: str, line: str) -> None:
    """``torch.op``, ``torch.autograd.op``, ``ops.ns.op`` or a ``__torch__`` class name."""
    dotted = ".".join(names)
    head = names[0]
    if head == "__torch__":
        if len(names) < 2:
            _refuse_use(dotted, where, line)
        if dotted.startswith(_TORCHBIND) and not torchbind_allowed(dotted):
            raise ModelCardError(
                f"{where}: refused: {line} uses the C++ class {dotted!r}; of torch's C++ "
                "classes only quantized packed parameters may be part of a model"
            )
        return
    if head == "torch":
        rest = names[2:] if len(names) > 2 and names[1] == "autograd" else names[1:]
        namespace = "aten"
    else:  # ops
        namespace, rest = (names[1], names[2:]) if len(names) > 1 else ("", [])
    if len(rest) != 1:
        _refuse_use(dotted, where, line)
    if namespace not in ALLOWED_NAMESPACES:
        raise ModelCardError(
            f"{where}: refused: {line} calls {dotted!r}: operators outside torch's "
            f"{', '.join(ALLOWED_NAMESPACES)} namespaces come from other libraries and may "
            "read files or run programs"
        )
    qualified = f"{namespace}::{rest[0]}"
    if qualified in DENIED_OPERATORS:
        _deny(rest[0], where, line)
    if not operator_allowed(namespace, rest[0]):
        raise ModelCardError(
            f"{where}: refused: {line} calls {dotted!r}, which is not one of the tensor "
            "operators a model's code may call"
        )


def _refuse_use(dotted: str, where: str, line: str) -> None:
    raise ModelCardError(
        f"{where}: refused: {line} uses {dotted!r} other than as a whole operator or class "
        "name, which would hide what it calls"
    )


def _check_setstate(scope: str, where: str, line: str) -> None:
    if not scope.startswith(_TORCH_OWN):
        raise ModelCardError(
            f"{where}: refused: {line}: the class {scope!r} defines __setstate__, which "
            "torch.jit.load runs while it loads the model; only torch's own classes "
            f"({_TORCH_OWN}*) may"
        )
