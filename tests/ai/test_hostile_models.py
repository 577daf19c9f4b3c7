"""Hostile model files: none runs code, reaches outside its folder or exhausts memory.

Every crafted file would run ``touch <marker>`` if anything unpickled or evaluated it; each test
asserts the exact refusal, at ``models add`` (nothing installed) and at load time, and that the
marker file was never created.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import re
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from medviewer.ai import model_size
from medviewer.ai.model_card import CARD_FILE, ModelCard, load_card
from medviewer.ai.registry import ModelRegistry, bundled_models_dir
from medviewer.ai.weights import clear_network_cache, load_network, validate_model
from medviewer.cli import main
from medviewer.core.errors import ModelCardError
from tests.ai.test_monai_bundle import INFERENCE, METADATA, make_bundle
from tests.ai.tiny_models import (
    MeanClassifier,
    OctantSegmenter,
    ThresholdSegmenter,
    card_dict,
    save_exported,
    save_torchscript,
    sha256,
    write_card,
)

CPU = torch.device("cpu")
REFUSE_TAIL = (
    "; a weights file may only rebuild tensors and the network's own layers, so it is not loaded"
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_network_cache()


class _Exploit:
    """Unpickling this runs ``touch marker``: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _payload(marker: Path, protocol: int = 2) -> bytes:
    return pickle.dumps(_Exploit(marker), protocol=protocol)


def _global_pickle(module: str, name: str, marker: Path) -> bytes:
    """A protocol-2 pickle: ``GLOBAL module name``, called with ``"touch marker"``."""
    command = f"touch {marker}".encode()
    return (b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X"
            + struct.pack("<I", len(command)) + command + b"\x85R.")


def _rewrite_zip(source: Path, target: Path, edit: Callable[[str, bytes], bytes | None],
                 extra: list[tuple[str, bytes]] = ()) -> Path:
    """Copy a zip archive member by member through `edit` (None drops one), then `extra`."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = edit(info.filename, src.read(info))
            if data is not None:
                dst.writestr(info, data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about a duplicate name
            for name, data in extra:
                dst.writestr(name, data)
    return target


def _registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(bundled=tmp_path / "no-bundled", user=tmp_path / "user")


def _assert_add_refused(tmp_path: Path, source: Path, expected: str) -> None:
    """``models add`` refuses with exactly `expected` (or a message matching it) and installs
    nothing."""
    registry = _registry(tmp_path)
    with pytest.raises(ModelCardError) as info:
        registry.add(source)
    assert re.fullmatch(expected, str(info.value), re.DOTALL), str(info.value)
    assert not registry.user.exists() or [p.name for p in registry.user.iterdir()] == []


def _torchscript_folder(folder: Path, edit: Callable[[str, bytes], bytes | None],
                        extra: list[tuple[str, bytes]] = ()) -> tuple[Path, ModelCard]:
    """A card folder whose model.ts is a real TorchScript archive passed through `edit`."""
    folder.mkdir(parents=True)
    clean = save_torchscript(ThresholdSegmenter(), folder.parent / f"{folder.name}-clean.ts")
    weights = _rewrite_zip(clean, folder / "model.ts", edit, extra)
    return weights, write_card(folder, card_dict(weights, "torchscript"))


# -- 1. torch.export programs ---------------------------------------------------------------


def _pickled_weight(name: str, data: bytes, marker: Path) -> bytes:
    if name.endswith("model_weights_config.json"):
        config = json.loads(data)
        for entry in config["config"].values():
            entry["use_pickle"] = True
        return json.dumps(config).encode()
    return _payload(marker) if "/data/weights/weight_" in name else data


def _pickled_sample_inputs(name: str, data: bytes, marker: Path) -> bytes:
    return _payload(marker) if "/data/sample_inputs/" in name else data


def _sympy_expression(name: str, data: bytes, marker: Path) -> bytes:
    """A symbolic shape written as Python: torch.export.load hands it to sympy, which evals it."""
    if not name.endswith("/models/model.json"):
        return data
    text = data.decode()
    symbol = re.search(r'"expr_str": "([^"]+)"', text).group(1)
    evil = f"__import__('os').system('touch {marker}')"
    return text.replace(f'"expr_str": "{symbol}"', f'"expr_str": "{evil}"', 1).encode()


@pytest.fixture(scope="module")
def clean_pt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "clean.pt2"
    torch.manual_seed(0)
    return save_exported(torch.nn.Conv3d(1, 2, 1), path, torch.zeros(2, 1, 4, 5, 6))


_PT2_CRAFTS = [_pickled_weight, _pickled_sample_inputs, _sympy_expression]


@pytest.mark.parametrize("craft", _PT2_CRAFTS)
def test_the_crafted_programs_do_run_code_in_torch_export_load(
    tmp_path: Path, clean_pt2: Path, craft: Callable[[str, bytes, Path], bytes]
) -> None:
    """Why the format is refused: torch.export.load itself runs each payload (torch 2.13).

    If this starts failing, torch has closed these holes; the refusal may then be reconsidered
    (only after every other path in torch/export/pt2_archive is checked again).
    """
    marker = tmp_path / "exploit-ran"
    evil = _rewrite_zip(clean_pt2, tmp_path / "evil.pt2", lambda n, d: craft(n, d, marker))
    with pytest.raises((RuntimeError, AttributeError)):
        torch.export.load(str(evil))
    assert marker.exists()


@pytest.mark.parametrize("craft", _PT2_CRAFTS)
def test_exported_programs_are_refused_before_any_byte_is_read(
    tmp_path: Path, clean_pt2: Path, craft: Callable[[str, bytes, Path], bytes]
) -> None:
    """Three ways a .pt2 runs code in torch.export.load (two pickles, one sympy eval): the format
    is refused by the card validator, so `models add` and every load stop before reading it."""
    marker = tmp_path / "exploit-ran"
    folder = tmp_path / "evil"
    folder.mkdir()
    weights = _rewrite_zip(clean_pt2, folder / "model.pt2", lambda n, d: craft(n, d, marker))
    (folder / CARD_FILE).write_text(json.dumps(card_dict(weights, "exported")))
    reason = ("'exported': torch.export programs (.pt2) are refused: loading one unpickles parts "
              "of the file and evaluates expressions written in it")
    _assert_add_refused(tmp_path, folder, re.escape(f"{folder / CARD_FILE}: weights.format: "
                                                    f"{reason}") + ".*")
    assert main(["models", "add", str(folder)]) == 1
    # a card built around the validator still never reaches torch.export.load
    card = load_card(_plain_torchscript_card(tmp_path / "other"))
    forged = dataclasses.replace(card, weights=dataclasses.replace(
        card.weights, file=str(weights), format="exported", sha256=sha256(weights)))
    with pytest.raises(ModelCardError) as info:
        load_network(forged, CPU)
    assert str(info.value).startswith(f"{card.path}: weights.format {reason}")
    assert not marker.exists()


def _plain_torchscript_card(folder: Path) -> Path:
    folder.mkdir(parents=True)
    weights = save_torchscript(ThresholdSegmenter(), folder / "model.ts")
    write_card(folder, card_dict(weights, "torchscript"))
    return folder


# -- 2. TorchScript ---------------------------------------------------------------------------


def test_torchscript_data_pkl_naming_os_system(tmp_path: Path) -> None:
    """Today torch's C++ unpickler already fails on it; medviewer refuses it before torch."""
    marker = tmp_path / "exploit-ran"
    evil = _global_pickle("os", "system", marker)
    weights, card = _torchscript_folder(
        tmp_path / "evil", lambda n, d: evil if n.endswith("/data.pkl") else d)
    expected = (f"{weights} (evil-clean/data.pkl): refused: loading it would call 'os.system'"
                + REFUSE_TAIL)
    _assert_add_refused(tmp_path, card.folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected
    with pytest.raises(RuntimeError, match=re.escape("Unknown type name 'os.system'")):
        torch.jit.load(str(weights))  # what torch alone does with it
    assert not marker.exists()


@pytest.mark.parametrize(("member", "protocol", "refusal"), [
    ("/constants.pkl", 2, "loading it would call 'posix.system'" + REFUSE_TAIL),
    ("/data.pkl", 4, "the pickle instruction STACK_GLOBAL could load any program code, which a "
                     "weights file never needs"),
    (".py.debug_pkl", 2, "loading it would call 'posix.system'" + REFUSE_TAIL),
])
def test_torchscript_pickles_are_checked_before_loading(
    tmp_path: Path, member: str, protocol: int, refusal: str
) -> None:
    marker = tmp_path / "exploit-ran"
    evil = _payload(marker, protocol)
    weights, card = _torchscript_folder(
        tmp_path / "evil", lambda n, d: evil if n.endswith(member) else d)
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert re.fullmatch(re.escape(f"{weights} (evil-clean/") + r"[^)]*" + re.escape(
        f"{member.lstrip('/')}): refused: {refusal}"), str(info.value)), str(info.value)
    assert not marker.exists()


def test_torchscript_with_a_second_copy_of_data_pkl(tmp_path: Path) -> None:
    """Readers may take either copy of a name that appears twice: refused, whichever is evil."""
    marker = tmp_path / "exploit-ran"
    weights, card = _torchscript_folder(
        tmp_path / "evil", lambda n, d: d,
        extra=[("evil-clean/data.pkl", _global_pickle("os", "system", marker))])
    with pytest.raises(ModelCardError) as info:
        validate_model(card)
    assert str(info.value) == (f"{weights}: refused: 'evil-clean/data.pkl' appears twice in the "
                               "archive (a loader could read another copy than the one checked)")
    assert not marker.exists()


def test_torchscript_with_a_zip_bomb_member(tmp_path: Path) -> None:
    """A compressed member that would expand to 65 MiB (of zeros): refused from the directory."""
    folder = tmp_path / "bomb"
    weights, _ = _torchscript_folder(folder, lambda n, d: d)
    with zipfile.ZipFile(weights, "a") as archive:
        info = zipfile.ZipInfo("evil-clean/code/__torch__/bomb.py")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as member:
            for _ in range(65):
                member.write(bytes(1 << 20))
    assert weights.stat().st_size < 1 << 20
    card = write_card(folder, card_dict(weights, "torchscript"))
    expected = (f"{weights}: refused: 'evil-clean/code/__torch__/bomb.py' is compressed and "
                "would expand to 68 MB in memory (at most 67 MB; torch stores tensor data "
                "uncompressed)")
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    with pytest.raises(ModelCardError, match=re.escape(expected)):
        load_network(card, CPU)


# -- 2. state dicts -----------------------------------------------------------------------------


def test_state_dict_with_a_payload_in_data_pkl(tmp_path: Path) -> None:
    marker = tmp_path / "exploit-ran"
    folder = tmp_path / "evil"
    folder.mkdir()
    clean = tmp_path / "clean.pt"
    torch.save({"weight": torch.zeros(2)}, clean)
    weights = _rewrite_zip(clean, folder / "model.pt", lambda n, d: _payload(marker)
                           if n.endswith("/data.pkl") else d)
    architecture = {"name": "medviewer.ai.nets.ConvClassifier",
                    "kwargs": {"spatial_dims": 2, "in_channels": 1, "num_classes": 2}}
    card = write_card(folder, card_dict(weights, "state_dict", task="classification", dims=2,
                                        architecture=architecture))
    expected = f"{weights} (clean/data.pkl): refused: loading it would call 'posix.system'"
    _assert_add_refused(tmp_path, folder, re.escape(expected + REFUSE_TAIL))
    with pytest.raises(ModelCardError, match=re.escape(expected)):
        load_network(card, CPU)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(weights, weights_only=True)  # torch's own restricted unpickler agrees
    assert not marker.exists()


# -- 2. safetensors -----------------------------------------------------------------------------


def _safetensors(header: dict[str, Any] | None, length: int | None = None) -> bytes:
    header = header if header is not None else {"w": {"dtype": "F32", "shape": [4],
                                                      "data_offsets": [0, 16]}}
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + bytes(16)


@pytest.mark.parametrize(("data", "reason"), [
    (_safetensors(None, length=1 << 62), "header too large"),
    (_safetensors(None, length=1_000_000), "invalid header length"),
    (_safetensors({"w": {"dtype": "F32", "shape": [1 << 38], "data_offsets": [0, 1 << 40]}}),
     "incomplete metadata, file not fully covered"),
    (_safetensors({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 16]}}),
     "invalid shape, data type, or offset for tensor"),
], ids=["huge-header-length", "header-past-the-end", "offsets-past-the-end", "shape-too-big"])
def test_safetensors_with_lying_headers(tmp_path: Path, data: bytes, reason: str) -> None:
    """Each header claims far more than the 100-byte file holds: refused, nothing allocated."""
    folder = tmp_path / "m"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(data)
    card = write_card(folder, card_dict(weights, "safetensors", task="classification", dims=2,
                                        architecture={"name": "medviewer.ai.nets.ConvClassifier",
                                                      "kwargs": {"spatial_dims": 2,
                                                                 "in_channels": 1,
                                                                 "num_classes": 2}}))
    expected = (f"{weights}: refused: not a valid safetensors file (Error while deserializing "
                f"header: {reason})")
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected


# -- 2. ONNX external data ----------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _external_tensor(location: str) -> bytes:
    """A TensorProto (onnx.proto) whose data lies in an external file: data_location = 1."""
    entry = _field(1, "location") + _field(2, location)
    return _field(8, "w") + _field(13, entry) + _varint(14 << 3) + _varint(1)


def _onnx_initializer(location: str) -> bytes:
    """ModelProto(ir_version 8, graph(initializer))."""
    return _varint(1 << 3) + _varint(8) + _field(7, _field(5, _external_tensor(location)))


def _onnx_in_a_function(location: str) -> bytes:
    """ModelProto(functions[FunctionProto(node[NodeProto(attribute[AttributeProto(t)])])])."""
    attribute = _field(1, "value") + _field(5, _external_tensor(location))
    node = _field(4, "Constant") + _field(5, attribute)
    return _varint(1 << 3) + _varint(8) + _field(25, _field(1, "f") + _field(7, node))


def _onnx_in_a_subgraph(location: str) -> bytes:
    """ModelProto(graph(node[If(attribute[then_branch: graph(sparse_initializer)])]))."""
    sparse = _field(1, _external_tensor(location))
    attribute = _field(1, "then_branch") + _field(6, _field(15, sparse))
    return _field(7, _field(1, _field(4, "If") + _field(5, attribute)))


@pytest.mark.parametrize("model", [_onnx_initializer, _onnx_in_a_function, _onnx_in_a_subgraph])
@pytest.mark.parametrize(("location", "reason"), [
    ("../secret.bin", "refused: '..' leads outside the model folder {folder}"),
    ("{outside}", "refused: must be a path inside the model folder {folder}"),
    ("link.bin", "refused: it leads outside the model folder {folder} (through a link to "
                 "{outside})"),
    ("linked-dir/secret.bin", "refused: it leads outside the model folder {folder} (through a "
                              "link to {outside})"),
], ids=["dotdot", "absolute", "linked-file", "linked-folder"])
def test_onnx_external_data_outside_the_folder(
    tmp_path: Path, model: Callable[[str], bytes], location: str, reason: str
) -> None:
    """Refused before onnxruntime is imported (it is not installed here: the check needs none)."""
    folder = tmp_path / "m"
    folder.mkdir()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    outside = secrets / "secret.bin"
    outside.write_bytes(b"\0" * 16)
    (folder / "link.bin").symlink_to(outside)
    (folder / "linked-dir").symlink_to(secrets)
    location = location.format(outside=outside)
    weights = folder / "model.onnx"
    weights.write_bytes(model(location))
    card = write_card(folder, card_dict(weights, "onnx", dims=2))
    expected = (f"{weights}: external tensor data {location!r}: "
                + reason.format(folder=folder, outside=outside))
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected


def test_onnx_external_data_inside_the_folder_passes(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "w.bin").write_bytes(b"\0" * 16)
    weights = folder / "model.onnx"
    weights.write_bytes(_onnx_initializer("data/w.bin"))
    assert validate_model(write_card(folder, card_dict(weights, "onnx", dims=2))) is None


def test_a_truncated_onnx_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    weights = folder / "model.onnx"
    weights.write_bytes(_onnx_initializer("data/w.bin")[:-5])
    card = write_card(folder, card_dict(weights, "onnx", dims=2))
    with pytest.raises(ModelCardError, match=re.escape(f"{weights}: refused: not an ONNX model")):
        validate_model(card)


# -- 2. MONAI bundles ---------------------------------------------------------------------------


def _hostile_inference(marker: Path) -> dict[str, Any]:
    """The example inference config, with code and targets everywhere a runner would run them."""
    run = f"$__import__('os').system('touch {marker}')"
    config = json.loads(json.dumps(INFERENCE))
    config["imports"].append(run)
    config["network_def"] = {"_target_": "os.system", "command": f"touch {marker}"}
    config["device"] = run
    transforms = config["preprocessing"]["transforms"]
    transforms.insert(0, {"_target_": run, "keys": "image"})
    transforms.insert(1, {"_target_": "os.system", "keys": run, "command": f"touch {marker}"})
    transforms[5]["pixdim"] = run  # Spacingd
    config["inferer"]["roi_size"] = run
    config["postprocessing"]["transforms"].append({"_target_": "builtins.eval", "source": run})
    return config


def test_bundle_configs_are_read_as_data_only(tmp_path: Path) -> None:
    marker = tmp_path / "exploit-ran"
    metadata = json.loads(json.dumps(METADATA))
    metadata["name"] = "Spleen"
    metadata["description"] = f"$__import__('os').system('touch {marker}')"
    bundle = make_bundle(tmp_path / "b", metadata=metadata, inference=_hostile_inference(marker))
    entry, notes = _registry(tmp_path).add(bundle)
    run = f"$__import__('os').system('touch {marker}')"
    skipped = "is an expression or reference; not evaluated, skipped"
    assert notes == [
        f"preprocessing.transforms[0]: {{'_target_': {run!r}, 'keys': 'image'}} not understood; "
        "not imported",
        f"system.keys: {run!r} is an expression; not evaluated, assumed 'image'",
        "preprocessing: not imported: system",
        f"Spacingd.pixdim: {run!r} {skipped}",
        "preprocessing: not imported: ScaleIntensityd",
        f"SlidingWindowInferer.roi_size: {run!r} {skipped}",
        f"AsDiscreted.threshold: '$@image' {skipped}",
        "postprocessing: not imported: eval",
    ]
    assert entry.card.input.spacing is None  # the Spacingd expression was skipped
    assert entry.card.input.patch_size == (96, 96, 96)  # from metadata.json, not the inferer
    assert entry.card.description == run  # kept as text, shown to the user, never run
    assert not marker.exists()


def test_bundle_yaml_with_python_tags_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "exploit-ran"
    bundle = make_bundle(tmp_path / "b", config_name=None)
    config = bundle / "configs" / "inference.yaml"
    config.write_text(f"device: !!python/object/apply:os.system ['touch {marker}']\n")
    expected = f"{config}: invalid YAML: could not determine a constructor for the tag"
    _assert_add_refused(tmp_path, bundle, re.escape(expected) + ".*")
    assert not marker.exists()


def test_bundle_with_a_crafted_model_ts(tmp_path: Path) -> None:
    marker = tmp_path / "exploit-ran"
    bundle = make_bundle(tmp_path / "b")
    evil = _global_pickle("os", "system", marker)
    clean = save_torchscript(ThresholdSegmenter(), tmp_path / "clean.ts")
    _rewrite_zip(clean, bundle / "models" / "model.ts",
                 lambda n, d: evil if n.endswith("/data.pkl") else d)
    expected = (r".*/model\.ts \(clean/data\.pkl\): refused: loading it would call 'os\.system'"
                + re.escape(REFUSE_TAIL))
    _assert_add_refused(tmp_path, bundle, expected)
    assert not marker.exists()


def test_bundle_files_leading_outside_it(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "id_rsa").write_text("PRIVATE KEY")
    bundle = make_bundle(tmp_path / "b")
    (bundle / "docs" / "README.md").unlink()
    (bundle / "docs" / "README.md").symlink_to(secrets / "id_rsa")
    entry, notes = _registry(tmp_path).add(bundle)
    assert not (entry.folder / "README.md").exists()
    assert notes[-1] == (f"docs/README.md: not copied: {bundle}/docs/README.md: refused: it leads "
                         f"outside the model folder {bundle} (through a link to "
                         f"{secrets / 'id_rsa'})")
    other = make_bundle(tmp_path / "c")
    model = other / "models" / "model.ts"
    (secrets / "model.ts").write_bytes(model.read_bytes())
    model.unlink()
    model.symlink_to(secrets / "model.ts")
    expected = (f"{model}: refused: it leads outside the model folder {other} (through a link "
                f"to {secrets / 'model.ts'})")
    with pytest.raises(ModelCardError) as info:
        ModelRegistry(tmp_path / "none", tmp_path / "user2").add(other)
    assert str(info.value) == expected


# -- 3. paths -----------------------------------------------------------------------------------


@pytest.fixture
def outside_weights(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    return save_torchscript(ThresholdSegmenter(), outside / "model.ts")


@pytest.mark.parametrize("how", ["linked-folder", "linked-file"])
def test_weights_through_a_link_out_of_the_folder(
    tmp_path: Path, outside_weights: Path, how: str
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    if how == "linked-folder":
        (folder / "sub").symlink_to(outside_weights.parent)
        name = "sub/model.ts"
    else:
        (folder / "model.ts").symlink_to(outside_weights)
        name = "model.ts"
    card = card_dict(outside_weights, "torchscript")
    card["weights"]["file"] = name
    (folder / CARD_FILE).write_text(json.dumps(card))
    expected = (f"{folder / CARD_FILE}: weights.file: {name!r} leads outside the model folder "
                f"{folder} (through a link, to {outside_weights}); a model's weights must be "
                "inside its folder, so the model is refused")
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    assert str(info.value) == expected
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    assert main(["models", "add", str(folder)]) == 1


@pytest.mark.parametrize(("name", "detail"), [
    ("../outside/model.ts", "must be a plain path inside the card folder (no '..')"),
    ("{outside}", "must be relative to the card folder, not absolute"),
])
def test_weights_named_outside_the_folder(
    tmp_path: Path, outside_weights: Path, name: str, detail: str
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    card = card_dict(outside_weights, "torchscript")
    card["weights"]["file"] = name.format(outside=outside_weights)
    (folder / CARD_FILE).write_text(json.dumps(card))
    given = card["weights"]["file"]  # quoted whole, or its start when long (temp paths vary)
    _assert_add_refused(tmp_path, folder, re.escape(
        f"{folder / CARD_FILE}: weights.file: {detail}, got '{given[:40]}") + ".*")


def test_a_loop_of_links_is_refused(tmp_path: Path, outside_weights: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    card = card_dict(outside_weights, "torchscript")
    card["weights"]["file"] = "a/model.ts"
    (folder / CARD_FILE).write_text(json.dumps(card))
    _assert_add_refused(tmp_path, folder, re.escape(
        f"{folder / CARD_FILE}: weights.file: cannot be followed: Symlink loop from "
        f"'{folder / 'a'}") + ".*")


def test_a_link_inside_the_folder_is_fine(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "v1").mkdir(parents=True)
    real = save_torchscript(ThresholdSegmenter(), folder / "v1" / "model.ts")
    (folder / "model.ts").symlink_to(real)
    card = write_card(folder, card_dict(folder / "model.ts", "torchscript"))
    entry, _ = _registry(tmp_path).add(folder)
    assert (entry.folder / "model.ts").read_bytes() == real.read_bytes()
    assert not (entry.folder / "model.ts").is_symlink()
    assert load_network(card, CPU).format == "torchscript"


def test_weights_swapped_for_a_link_after_the_card_was_read(
    tmp_path: Path, outside_weights: Path
) -> None:
    """The load re-checks the real path: a card read earlier cannot be redirected later."""
    folder = _plain_torchscript_card(tmp_path / "m")
    card = load_card(folder)
    (folder / "model.ts").unlink()
    (folder / "model.ts").symlink_to(outside_weights)
    with pytest.raises(ModelCardError, match=re.escape(
            f"weights.file: 'model.ts' leads outside the model folder {folder} (through a link, "
            f"to {outside_weights})")):
        load_network(card, CPU)


# -- 4. resource limits -------------------------------------------------------------------------

HUGE_UNET = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2,
             "channels": [16384, 16384, 16384], "strides": [2, 2]}


def _architecture_card(folder: Path, kwargs: dict[str, Any], name: str = "UNet",
                       **fields: Any) -> ModelCard:
    folder.mkdir(parents=True)
    weights = folder / "model.safetensors"
    save_file({"x": torch.zeros(1)}, str(weights))
    architecture = {"name": f"monai.networks.nets.{name}", "kwargs": kwargs}
    return write_card(folder, card_dict(weights, "safetensors", dims=2, orientation="PLS",
                                        architecture=architecture, **fields))


def test_an_enormous_network_is_refused_before_it_is_built(tmp_path: Path) -> None:
    card = _architecture_card(tmp_path / "huge", HUGE_UNET)
    expected = (f"{card.path}: weights.architecture: monai.networks.nets.UNet with these kwargs "
                "would have 9,664,479,238 parameters (38.7 GB); medviewer loads at most "
                "1,000,000,000, so the model is refused")
    _assert_add_refused(tmp_path, card.folder, re.escape(expected))
    assert main(["models", "add", str(card.folder)]) == 1
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected
    from torch.nn.modules import module as nn_module

    assert not nn_module._global_module_registration_hooks  # the counting hooks are gone


def test_a_network_over_the_memory_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the parameter limit, over half of a (pretend) 2 GB computer: 2.5 GB needed."""
    monkeypatch.setattr(model_size, "physical_memory", lambda: 2_000_000_000)
    kwargs = {**HUGE_UNET, "channels": [4096, 4096, 4096]}
    card = _architecture_card(tmp_path / "big", kwargs, size=[64, 64])
    expected = (f"{card.path}: weights.architecture: monai.networks.nets.UNet with these kwargs "
                "would need about 2.5 GB of memory (2.4 GB for 604,180,486 parameters + 0.03 GB "
                "for one 1x1x64x64 input); a model may use at most 1.0 GB on this computer "
                "(50% of its 2.0 GB), so the model is refused")
    _assert_add_refused(tmp_path, card.folder, re.escape(expected))


def test_activations_count_for_the_cards_input_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 38 k-parameter UNet on 20000 x 20000 images: 16 GB for one layer's input and output."""
    monkeypatch.setattr(model_size, "physical_memory", lambda: 24_000_000_000)
    kwargs = {**HUGE_UNET, "channels": [16, 32, 64]}
    card = _architecture_card(tmp_path / "wide", kwargs, size=[20000, 20000])
    with pytest.raises(ModelCardError) as info:
        validate_model(card)
    assert str(info.value) == (
        f"{card.path}: weights.architecture: monai.networks.nets.UNet with these kwargs would "
        "need about 16.0 GB of memory (0.00 GB for 37,718 parameters + 16.0 GB for one "
        "1x1x20000x20000 input); a model may use at most 12.0 GB on this computer (50% of its "
        "24.0 GB), so the model is refused"
    )


def test_a_network_with_too_many_layers_stops_being_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_size, "MAX_MODULES", 500)
    card = _architecture_card(tmp_path / "deep", {**HUGE_UNET, "channels": [4, 8, 16],
                                                  "num_res_units": 1_000_000})
    expected = (f"{card.path}: weights.architecture: the network would have more than 500 "
                "layers; refused")
    _assert_add_refused(tmp_path, card.folder, re.escape(expected))


def test_a_weights_file_larger_than_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse 200 MB file on a (pretend) 200 MB computer: refused before any loader opens it."""
    monkeypatch.setattr(model_size, "physical_memory", lambda: 200_000_000)
    folder = tmp_path / "m"
    folder.mkdir()
    weights = folder / "model.ts"
    with weights.open("wb") as stream:
        stream.truncate(200_000_000)
    card = write_card(folder, card_dict(weights, "torchscript"))
    expected = (f"{weights}: refused: the weights file is 0.2 GB, more than the 0.1 GB a model "
                "may use on this computer (50% of its 0.2 GB)")
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected


def test_constructors_that_read_values_are_estimated_exactly(tmp_path: Path) -> None:
    """SwinUNETR reads drop-path rates from a tensor while it is built: meta gives zeros."""
    kwargs = {"in_channels": 1, "out_channels": 2, "feature_size": 12, "spatial_dims": 2}
    card = _architecture_card(tmp_path / "swin", kwargs, name="SwinUNETR", size=[64, 64])
    estimate = validate_model(card)
    from monai.networks.nets import SwinUNETR

    real = SwinUNETR(**kwargs)
    assert estimate.parameters == sum(p.numel() for p in real.parameters()) == 1_590_128


def test_the_demo_models_pass_every_check() -> None:
    """The bundled models validate, with their exact parameter counts, and still run."""
    counts = {}
    for folder in sorted(bundled_models_dir().iterdir()):
        card = load_card(folder)
        estimate = validate_model(card)
        module = load_network(card, CPU).module
        assert estimate.parameters == sum(p.numel() for p in module.parameters())
        assert estimate.activation_bytes and estimate.activation_bytes > 256 * 256 * 4
        counts[card.id] = estimate.parameters
    assert counts == {"demo-ct-lung-nodule-seg": 485_431, "demo-ct-lungs": 487_161,
                      "demo-ct-nodule-cls": 98_625,
                      "demo-cxr-nodule-cls": 97_761, "demo-ct-interactive": 486_727}


# -- 5. nested, oversized and self-multiplying JSON/YAML ------------------------------------------


def _nested_card(folder: Path, depth: int) -> Path:
    """A valid card whose ``metrics`` holds a list nested `depth` levels deep."""
    folder.mkdir(parents=True)
    weights = save_torchscript(ThresholdSegmenter(), folder / "model.ts")
    card = card_dict(weights, "torchscript")
    text = json.dumps({**card, "metrics": {"deep": "@"}})
    (folder / CARD_FILE).write_text(text.replace('"@"', "[" * depth + "]" * depth))
    return folder


@pytest.mark.parametrize(("make", "reason"), [
    (lambda f: (f.mkdir(), (f / CARD_FILE).write_text("[" * 100_000)),
     "invalid JSON: nested too deeply to read (at most 64 levels)"),
    (lambda f: _nested_card(f, 900), "refused: nested more than 64 levels deep"),
    (lambda f: (f.mkdir(), (f / CARD_FILE).write_text(" " * (1 << 20) + "{}")),
     "refused: the model card is larger than 1,048,576 bytes, the most medviewer reads"),
    (lambda f: (f.mkdir(), (f / CARD_FILE).write_text('{"id": ' + "9" * 5000 + "}")),
     "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion: value has "
     "5000 digits; use sys.set_int_max_str_digits() to increase the limit"),
], ids=["100000-brackets", "900-deep-metrics", "over-1-MiB", "5000-digit-number"])
def test_cards_that_used_to_give_a_traceback(
    tmp_path: Path, make: Callable[[Path], Any], reason: str
) -> None:
    """Each raised RecursionError or ValueError past the JSON error handler (or was read whole)."""
    folder = tmp_path / "bad"
    make(folder)
    expected = f"{folder / CARD_FILE}: {reason}"
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    assert str(info.value) == expected
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    assert main(["models", "add", str(folder)]) == 1


def test_one_bad_folder_never_breaks_the_model_list(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _plain_torchscript_card(registry.user / "good")
    (registry.user / "deep").mkdir()
    (registry.user / "deep" / CARD_FILE).write_text("[" * 100_000)
    _nested_card(registry.user / "deeper", 900)
    assert [entry.card.id for entry in registry.entries()] == ["tiny-model"]
    assert registry.problems() == [
        (registry.user / "deep", f"{registry.user / 'deep' / CARD_FILE}: invalid JSON: nested "
                                 "too deeply to read (at most 64 levels)"),
        (registry.user / "deeper", f"{registry.user / 'deeper' / CARD_FILE}: refused: nested "
                                   "more than 64 levels deep"),
    ]
    assert registry.get("tiny-model").folder == registry.user / "good"


def test_a_card_folder_failing_in_an_unforeseen_way_is_a_problem_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever reading one card raises, the others are still listed."""
    from medviewer.ai import registry as registry_module

    registry = _registry(tmp_path)
    _plain_torchscript_card(registry.user / "good")
    _plain_torchscript_card(registry.user / "odd")
    real = registry_module.load_card

    def load(folder: Path) -> ModelCard:
        if Path(folder).name == "odd":
            raise KeyError("something nobody foresaw")
        return real(folder)

    monkeypatch.setattr(registry_module, "load_card", load)
    assert [entry.folder.name for entry in registry.entries()] == ["good"]
    assert registry.problems() == [(registry.user / "odd", (
        f"{registry.user / 'odd' / CARD_FILE}: cannot be read: KeyError: 'something nobody "
        "foresaw'"))]


def _laughs(levels: int) -> str:
    """YAML whose last anchor expands to 10**levels strings through aliases of aliases."""
    lines = ['l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\ninferer: *l{levels}\npreprocessing: *l{levels}\n"


@pytest.mark.parametrize(("text", "reason"), [
    (_laughs(7), "refused: holds more than 1,000,000 values (YAML aliases counted each time "
                 "they are used)"),
    ("device: " + "[" * 100_000, "invalid YAML: nested too deeply to read (at most 64 "
                                 "levels)"),
    ("device: " + "[" * 70 + "]" * 70, "refused: nested more than 64 levels deep"),
], ids=["billion-laughs", "100000-brackets", "70-deep"])
def test_bundle_yaml_that_multiplies_or_nests(tmp_path: Path, text: str, reason: str) -> None:
    bundle = make_bundle(tmp_path / "b", config_name=None)
    config = bundle / "configs" / "inference.yaml"
    config.write_text(text)
    _assert_add_refused(tmp_path, bundle, re.escape(f"{config}: {reason}"))


def test_bundle_metadata_nested_too_deeply(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    (bundle / "configs" / "metadata.json").write_text("[" * 100_000)
    _assert_add_refused(tmp_path, bundle, re.escape(
        f"{bundle / 'configs' / 'metadata.json'}: invalid JSON: nested too deeply to read (at "
        "most 64 levels)"))


def test_values_quoted_in_bundle_warnings_are_shortened(tmp_path: Path) -> None:
    config = json.loads(json.dumps(INFERENCE))
    config["inferer"] = list(range(1000))
    config["preprocessing"] = {"transforms": {"deep": [[[[["x" * 1000]]]]]}}
    bundle = make_bundle(tmp_path / "b", inference=config)
    _, notes = _registry(tmp_path).add(bundle)
    assert "inferer: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...] not understood; not imported" in notes
    assert ("preprocessing: {'deep': [[[...]]]} is not a list of transforms; not imported"
            in notes)


# -- 1. TorchScript program code ------------------------------------------------------------------

_SEGMENTER = "__torch__.tests.ai.tiny_models.ThresholdSegmenter"


def _from_file_in_forward(target: Path) -> Callable[[str, bytes], bytes]:
    """forward maps `target` (created if missing) shared and writable, and zeroes it."""
    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith(".py"):
            return data
        return data.decode().replace(
            "    return torch.cat(_1, 1)\n",
            f'    _f = torch.fill_(torch.from_file("{target}", True, 16), 0.)\n'
            "    return torch.add(torch.cat(_1, 1), torch.sum(_f))\n").encode()
    return edit


def _from_file_in_setstate(target: Path) -> Callable[[str, bytes], bytes]:
    """A __getstate__/__setstate__ pair: torch.jit.load itself runs the __setstate__."""
    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith(".py"):
            return data
        return data.decode().replace("  def forward(", (
            f"  def __getstate__(self: {_SEGMENTER}) -> Dict[str, float]:\n"
            "    return annotate(Dict[str, float], {})\n"
            f"  def __setstate__(self: {_SEGMENTER},\n"
            "    state: Dict[str, float]) -> None:\n"
            f'    _f = torch.fill_(torch.from_file("{target}", True, 16), 0.)\n'
            "    self.threshold = torch.Float(torch.sum(_f))\n"
            "    self.gain = 1.\n"
            "    self.training = False\n"
            "    return None\n"
            "  def forward("), 1).encode()
    return edit


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"A" * 64)
    return victim


_CODE_CRAFTS = {"forward": _from_file_in_forward, "setstate": _from_file_in_setstate}


@pytest.mark.parametrize("craft", sorted(_CODE_CRAFTS))
def test_the_crafted_torchscript_code_does_write_files_in_torch(tmp_path: Path, craft: str) -> None:
    """Why the code is checked: torch alone maps and zeroes a file (setstate: at load time)."""
    victim = _victim(tmp_path)
    weights, _ = _torchscript_folder(tmp_path / "evil", _CODE_CRAFTS[craft](victim))
    module = torch.jit.load(str(weights))
    if craft == "forward":
        assert victim.read_bytes() == b"A" * 64
        module(torch.zeros(1, 1, 1, 1, 1))
    assert victim.read_bytes() == bytes(64)


@pytest.mark.parametrize("craft", sorted(_CODE_CRAFTS))
@pytest.mark.parametrize("target", ["existing", "new"])
def test_torchscript_code_touching_files_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, craft: str, target: str
) -> None:
    victim = _victim(tmp_path) if target == "existing" else tmp_path / "exploit-ran"
    weights, card = _torchscript_folder(tmp_path / "evil", _CODE_CRAFTS[craft](victim))
    member = "evil-clean/code/__torch__/tests/ai/tiny_models.py"
    with zipfile.ZipFile(weights) as archive:
        lines = archive.read(member).decode().splitlines()
    if craft == "forward":
        line = 1 + next(i for i, text in enumerate(lines) if "from_file" in text)
        reason = (f"line {line} names 'aten::from_file', which maps any file on this computer "
                  "into memory (writable with shared=True); a model's code may only compute on "
                  "tensors")
    else:
        line = 1 + next(i for i, text in enumerate(lines) if "def __setstate__" in text)
        reason = (f"line {line}: the class '{_SEGMENTER}' defines __setstate__, which "
                  "torch.jit.load runs while it loads the model; only torch's own classes "
                  "(__torch__.torch.*) may")
    expected = f"{weights} ({member}): refused: {reason}"
    loads: list[Any] = []
    monkeypatch.setattr(torch.jit, "load", lambda *args, **kwargs: loads.append(args))
    _assert_add_refused(tmp_path, card.folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected
    assert loads == []  # torch.jit.load was never reached
    if target == "existing":
        assert victim.read_bytes() == b"A" * 64
    else:
        assert not victim.exists()


_X = "    x: Tensor) -> Tensor:\n"


@pytest.mark.parametrize(("body", "reason"), [
    ('    _0 = ops.aten.from_file("/etc/passwd", True, 16)\n',
     "line 4 names 'aten::from_file', which maps any file on this computer into memory "
     "(writable with shared=True); a model's code may only compute on tensors"),
    ('    _0 = torch.save(x, "/tmp/out")\n',
     "line 4 names 'aten::save', which writes a file on this computer; a model's code may "
     "only compute on tensors"),
    ('    _0 = getattr(x, "from_file")\n',
     "line 4 names 'aten::from_file', which maps any file on this computer into memory "
     "(writable with shared=True); a model's code may only compute on tensors"),
    ("    _0 = ops.prim.rpc_async(x)\n",
     "line 4 names 'prim::rpc_async', which talks to other computers; a model's code may "
     "only compute on tensors"),
    ('    _0 = ops.image.read_file("/etc/passwd")\n',
     "line 4 calls 'ops.image.read_file': operators outside torch's aten, prim, quantized "
     "namespaces come from other libraries and may read files or run programs"),
    ('    _0 = torch.ops.image.read_file("/etc/passwd")\n',
     "line 4 uses 'torch.ops.image.read_file' other than as a whole operator or class name, "
     "which would hide what it calls"),
    ("    _0 = ops\n",
     "line 4 uses 'ops' other than as a whole operator or class name, which would hide what "
     "it calls"),
    ('    _0 = getattr(ops, "image")\n',
     "line 4 uses 'ops' other than as a whole operator or class name, which would hide what "
     "it calls"),
    ("    _0 = ops.prim.BailOut(x)\n",
     "line 4 calls 'ops.prim.BailOut', which is not one of the tensor operators a model's "
     "code may call"),
    ("    _0 = torch.no_such_operator(x)\n",
     "line 4 calls 'torch.no_such_operator', which is not one of the tensor operators a "
     "model's code may call"),
    ("    _0 = __torch__.torch.classes.c10d.ProcessGroup(x)\n",
     "line 4 uses the C++ class '__torch__.torch.classes.c10d.ProcessGroup'; of torch's C++ "
     "classes only quantized packed parameters may be part of a model"),
    ('    _0 = r"raw"\n',
     "line 4: the string 'r\"raw\"' is not in the form torch writes (no prefixes, no triple "
     "quotes)"),
    ('    _0 = """from_file"""\n',
     "line 4: the string '\"\"\"from_file\"\"\"' is not in the form torch writes (no "
     "prefixes, no triple quotes)"),
    ("    _0 = x\r    _1 = x\n",
     "its TorchScript code holds control characters torch never writes ('\\r')"),
], ids=["ops.aten.from_file", "torch.save", "getattr-string", "rpc", "other-namespace",
        "torch.ops", "alias", "getattr-ops", "internal-prim", "unknown", "c10d-class",
        "raw-string", "triple-quoted", "carriage-return"])
def test_ways_of_hiding_a_call_in_torchscript_code(body: str, reason: str) -> None:
    from medviewer.ai.torchscript_code import check_torchscript_code

    text = f"class M(Module):\n  def forward(self: __torch__.m.M,\n{_X}{body}    return x\n"
    with pytest.raises(ModelCardError) as info:
        check_torchscript_code(text, "model.ts (m/code/__torch__/m.py)", "__torch__.m")
    assert str(info.value) == f"model.ts (m/code/__torch__/m.py): refused: {reason}"


def test_a_class_attribute_named_ops_is_fine() -> None:
    """MONAI's VNet has a submodule called ``ops``: declared as ``ops : <type>``, used as
    ``self.ops``."""
    from medviewer.ai.torchscript_code import check_torchscript_code

    text = ("class M(Module):\n  ops : __torch__.torch.nn.modules.container.Sequential\n"
            f"  def forward(self: __torch__.m.M,\n{_X}    ops0 = self.ops\n"
            "    return (ops0).forward(torch.relu(x), )\n")
    check_torchscript_code(text, "model.ts (m/code/__torch__/m.py)", "__torch__.m")


def test_a_torchbind_class_in_data_pkl_is_refused(tmp_path: Path) -> None:
    """A C++ class's __setstate__ runs in C++ while the archive loads: only quantized ones."""
    marker = tmp_path / "exploit-ran"
    evil = _global_pickle("__torch__.torch.classes.c10d", "ProcessGroup", marker)
    weights, card = _torchscript_folder(
        tmp_path / "evil", lambda n, d: evil if n.endswith("/data.pkl") else d)
    expected = (f"{weights} (evil-clean/data.pkl): refused: loading it would call "
                "'__torch__.torch.classes.c10d.ProcessGroup'" + REFUSE_TAIL)
    _assert_add_refused(tmp_path, card.folder, re.escape(expected))


def _scripted_networks() -> dict[str, torch.nn.Module]:
    from monai.networks.nets import BasicUNet, DenseNet121, SegResNet, UNet, VNet

    linear = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    quantized = torch.ao.quantization.quantize_dynamic(linear, {torch.nn.Linear},
                                                       dtype=torch.qint8)
    return {
        "unet": UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16),
                     strides=(2, 2), num_res_units=2),
        "densenet121": DenseNet121(spatial_dims=2, in_channels=1, out_channels=2),
        "segresnet": SegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=2),
        "basicunet": BasicUNet(spatial_dims=2, in_channels=1, out_channels=2,
                               features=(4, 4, 8, 8, 16, 4)),
        "vnet": VNet(spatial_dims=3, in_channels=1, out_channels=2),
        "quantized": quantized,
        "threshold": ThresholdSegmenter(),
        "octant": OctantSegmenter(),
        "mean": MeanClassifier(),
    }


@pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_scripted_monai_networks_and_the_test_models_pass(tmp_path: Path) -> None:
    """Real TorchScript code: every operator these networks use is on the allowlist."""
    for name, network in _scripted_networks().items():
        folder = tmp_path / name
        folder.mkdir()
        weights = save_torchscript(network.eval(), folder / "model.ts")
        card = write_card(folder, card_dict(weights, "torchscript"))
        assert validate_model(card) is None, name
        assert isinstance(load_network(card, CPU).forward, torch.jit.ScriptModule), name


# -- 2. zip archives torch and Python's zipfile could read differently ----------------------------


def _archive_folder(tmp_path: Path, build: Callable[[dict[str, bytes], bytes], bytes],
                    name: str = "model.ts") -> tuple[Path, ModelCard]:
    """A card folder whose weights are `build(members of a clean archive, its bytes)`."""
    folder = tmp_path / "evil"
    folder.mkdir()
    clean = save_torchscript(ThresholdSegmenter(), tmp_path / "evil-clean.ts")
    with zipfile.ZipFile(clean) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    weights = folder / name
    weights.write_bytes(build(members, clean.read_bytes()))
    return weights, write_card(folder, card_dict(weights, "torchscript"))


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def _renamed(members: dict[str, bytes], old: str, new: str, data: bytes,
             extra: list[tuple[str, bytes]] = ()) -> bytes:
    return _zip([(new if name == old else name, data if name == old else content)
                 for name, content in members.items()] + list(extra))


def _evil_pickle(tmp_path: Path) -> bytes:
    return _global_pickle("os", "system", tmp_path / "exploit-ran")


def test_torch_reads_member_names_ignoring_case(tmp_path: Path) -> None:
    """Why names are compared after casefold(): torch takes DATA.PKL for data.pkl."""
    weights, _ = _archive_folder(tmp_path, lambda m, _: _renamed(
        m, "evil-clean/data.pkl", "evil-clean/DATA.PKL", _evil_pickle(tmp_path),
        [("evil-clean/decoy/data.pkl", m["evil-clean/data.pkl"])]))
    with pytest.raises(RuntimeError, match=re.escape("Unknown type name 'os.system'")):
        torch.jit.load(str(weights))  # it read the evil DATA.PKL, not the decoy


_CUT = "(torch and Python's zipfile could read different members, so the archive is not " \
       "checked further)"


def _patch(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and old in data
    return data.replace(old, new)


def _shift_central_directory(data: bytes) -> bytes:
    """16 bytes before the central directory; the zip64 locator updated, the offsets not."""
    end64 = data.rfind(b"PK\x06\x06")
    (cd_offset,) = struct.unpack_from("<Q", data, end64 + 48)
    locator = data.rfind(b"PK\x06\x07")
    moved = data[:cd_offset] + bytes(16) + data[cd_offset:]
    return moved[:locator + 16 + 8] + struct.pack("<Q", end64 + 16) + moved[locator + 32:]


def _zip64_disagrees(data: bytes) -> bytes:
    """The 32-bit end record names another central directory offset than the zip64 one."""
    end = data.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<L", data, end + 16)
    return data[:end + 16] + struct.pack("<L", offset + 1) + data[end + 20:]


@pytest.mark.parametrize(("build", "reason"), [
    (lambda m, d, e: _renamed(m, "evil-clean/data.pkl", "evil-clean/DATA.PKL", e,
                              [("evil-clean/decoy/data.pkl", m["evil-clean/data.pkl"])]),
     "{weights} (evil-clean/DATA.PKL): refused: loading it would call 'os.system'" + REFUSE_TAIL),
    (lambda m, d, e: _renamed(m, "evil-clean/data.pkl", "evil-clean/DATA.PKL", e,
                              [("decoy/data.pkl", m["evil-clean/data.pkl"])]),
     "{weights}: refused: 'decoy/data.pkl' is outside the archive's folder 'evil-clean' (torch "
     "reads only the folder of the first member; a second one could hide what it reads)"),
    (lambda m, d, e: _zip([*m.items(), ("evil-clean/DATA.pkl", e)]),
     "{weights}: refused: 'evil-clean/data.pkl' and 'evil-clean/DATA.pkl' differ only in case "
     "(torch looks names up ignoring case, so it could read another member than the one "
     "checked)"),
    (lambda m, d, e: _patch(_zip([*m.items(), ("evil-clean/data.pklQx", e)]),
                            b"evil-clean/data.pklQx", b"evil-clean/data.pkl\0x"),
     "{weights}: refused: the member name 'evil-clean/data.pkl\\x00x' holds a NUL character "
     "(readers disagree on what such a name is)"),
    (lambda m, d, e: _zip([*m.items(), ("evil-clean/code\\x.py", b"")]),
     "{weights}: refused: the member name 'evil-clean/code\\\\x.py' holds a backslash (readers "
     "disagree on what such a name is)"),
    (lambda m, d, e: bytes(64) + d,
     "{weights}: refused: bytes come before the archive's first member " + _CUT),
    (lambda m, d, e: d + b"junk",
     "{weights}: refused: bytes follow the archive's end record " + _CUT),
    (lambda m, d, e: _shift_central_directory(d),
     "{weights}: refused: its central directory does not sit where the end record says "
     + _CUT),
    (lambda m, d, e: _zip64_disagrees(d),
     "{weights}: refused: the end record and the zip64 end record disagree " + _CUT),
    (lambda m, d, e: d[:4] + b"PTMF" + d[8:],
     "{weights}: refused: its header also marks it as a flatbuffer module, which "
     "torch.jit.load would read instead of the zip archive that was checked"),
], ids=["upper-case-data.pkl", "second-folder", "names-differing-in-case", "nul-in-name",
        "backslash-in-name", "bytes-before", "bytes-after", "central-directory-moved",
        "zip64-disagrees", "flatbuffer-magic"])
def test_archives_read_differently_by_torch_and_zipfile(
    tmp_path: Path, build: Callable[[dict[str, bytes], bytes, bytes], bytes], reason: str
) -> None:
    evil = _evil_pickle(tmp_path)
    weights, card = _archive_folder(tmp_path, lambda m, d: build(m, d, evil))
    expected = reason.format(weights=weights)
    _assert_add_refused(tmp_path, card.folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected
    assert not (tmp_path / "exploit-ran").exists()


def test_a_state_dict_with_an_upper_case_data_pkl(tmp_path: Path) -> None:
    marker = tmp_path / "exploit-ran"
    folder = tmp_path / "evil"
    folder.mkdir()
    clean = tmp_path / "clean.pt"
    torch.save({"weight": torch.zeros(2)}, clean)
    weights = _rewrite_zip(clean, folder / "model.pt", lambda n, d: None
                           if n.endswith("/data.pkl") else d,
                           extra=[("clean/DATA.PKL", _payload(marker)),
                                  ("clean/decoy/data.pkl", pickle.dumps({}))])
    architecture = {"name": "medviewer.ai.nets.ConvClassifier",
                    "kwargs": {"spatial_dims": 2, "in_channels": 1, "num_classes": 2}}
    write_card(folder, card_dict(weights, "state_dict", task="classification", dims=2,
                                 architecture=architecture))
    _assert_add_refused(tmp_path, folder, re.escape(
        f"{weights}: refused: not a torch.save state dict (expected one data.pkl; a TorchScript "
        "file needs weights.format 'torchscript')"))
    assert not marker.exists()


@pytest.mark.parametrize("limit", ["compressed", "memory"])
def test_the_members_together_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """Each member under the per-member cap, together over the total (or the memory) limit."""
    from medviewer.ai import safe_archive

    if limit == "compressed":
        monkeypatch.setattr(safe_archive, "MAX_COMPRESSED_TOTAL", 3 << 20)
    else:
        monkeypatch.setattr(model_size, "physical_memory", lambda: 6_000_000)
    folder = tmp_path / "bomb"
    weights, _ = _torchscript_folder(folder, lambda n, d: d)
    with zipfile.ZipFile(weights, "a") as archive:
        for index in range(4):
            info = zipfile.ZipInfo(f"bomb-clean/code/__torch__/part{index}.py")
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, bytes(1 << 20))
    write_card(folder, card_dict(weights, "torchscript"))
    if limit == "compressed":
        expected = (f"{weights}: refused: its compressed members would expand to 4 MB in memory "
                    "(at most 3 MB in all; torch stores tensor data uncompressed)")
    else:
        expected = (f"{weights}: refused: its members would expand to 0.00 GB, more than the "
                    "0.00 GB a model may use on this computer (50% of its 0.01 GB)")
    _assert_add_refused(tmp_path, folder, re.escape(expected))


# -- 3. ONNX external data ------------------------------------------------------------------------


def _onnx_card(folder: Path, model: bytes, file: str = "model.onnx") -> tuple[Path, ModelCard]:
    weights = folder / file
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(model)
    card = card_dict(weights, "onnx", dims=2)
    card["weights"]["file"] = file
    (folder / CARD_FILE).write_text(json.dumps(card))
    return weights, load_card(folder)


def test_onnx_external_data_is_resolved_beside_the_onnx_file(tmp_path: Path) -> None:
    """onnxruntime reads sub/d.bin for sub/m.onnx: that one is the link out, not folder/d.bin."""
    folder = tmp_path / "m"
    (folder / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 16)
    (folder / "d.bin").write_bytes(b"\0" * 16)
    (folder / "sub" / "d.bin").symlink_to(outside)
    weights, card = _onnx_card(folder, _onnx_initializer("d.bin"), "sub/m.onnx")
    expected = (f"{weights}: external tensor data 'd.bin': refused: it leads outside the model "
                f"folder {folder} (through a link to {outside})")
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected


@pytest.mark.parametrize(("location", "reason"), [
    ("data/w.bin", "refused: {folder}/data/w.bin is not an existing regular file (external "
                   "data is found beside the ONNX file)"),
    ("data", "refused: {folder}/data is not an existing regular file (external data is found "
             "beside the ONNX file)"),
    ("*/_ORT_MEM_ADDR_/*", "refused: _ORT_MEM_ADDR_ asks onnxruntime to read the tensor from a "
                           "raw memory address, which no model file may do"),
], ids=["missing", "a-folder", "memory-address-tag"])
def test_onnx_external_data_must_be_a_file(tmp_path: Path, location: str, reason: str) -> None:
    folder = tmp_path / "m"
    (folder / "data" / "sub").mkdir(parents=True)
    weights, card = _onnx_card(folder, _onnx_initializer(location))
    expected = f"{weights}: external tensor data {location!r}: " + reason.format(folder=folder)
    _assert_add_refused(tmp_path, folder, re.escape(expected))
    with pytest.raises(ModelCardError) as info:
        load_network(card, CPU)
    assert str(info.value) == expected


def test_onnx_external_data_counts_toward_the_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny model naming a sparse 150 MB file on a (pretend) 200 MB computer."""
    monkeypatch.setattr(model_size, "physical_memory", lambda: 200_000_000)
    folder = tmp_path / "m"
    folder.mkdir()
    with (folder / "w.bin").open("wb") as stream:
        stream.truncate(150_000_000)
    weights, _ = _onnx_card(folder, _onnx_initializer("w.bin"))
    _assert_add_refused(tmp_path, folder, re.escape(
        f"{weights}: refused: with its external tensor data the model is 0.2 GB, more than the "
        "0.1 GB a model may use on this computer (50% of its 0.2 GB)"))


# -- 4. the bytes checked are the bytes loaded ----------------------------------------------------


def _serve_other_bytes_after_the_check(monkeypatch: pytest.MonkeyPatch, files: dict[Path, bytes]
                                       ) -> None:
    """Once the static check is done, the model folder serves other bytes (a network or FUSE
    folder can), as if the loader opened the files again."""
    from medviewer.ai import weights as weights_module

    name = ("check_weights_bytes" if hasattr(weights_module, "check_weights_bytes")
            else "check_weights_file")  # (the name before the fix, so the test runs on it too)
    real = getattr(weights_module, name)

    def check_then_swap(*args: Any) -> Any:
        result = real(*args)
        for path, data in files.items():
            path.write_bytes(data)
        return result

    monkeypatch.setattr(weights_module, name, check_then_swap)


def test_torchscript_is_loaded_from_the_checked_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "exploit-ran"
    evil, _ = _torchscript_folder(tmp_path / "evil", _from_file_in_forward(marker))
    card = load_card(_plain_torchscript_card(tmp_path / "m"))
    _serve_other_bytes_after_the_check(monkeypatch, {card.weights_path: evil.read_bytes()})
    network = load_network(card, CPU)
    output = network(torch.tensor([[[[[150.0]]]]]))
    assert output.flatten().tolist() == [0.0, 50.0]  # ThresholdSegmenter(100), as checked
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["safetensors", "state_dict"])
def test_state_dicts_are_loaded_from_the_checked_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    from medviewer.ai.nets import ConvClassifier

    kwargs = {"spatial_dims": 2, "in_channels": 1, "num_classes": 2}
    torch.manual_seed(0)
    checked = {k: v.contiguous() for k, v in ConvClassifier(**kwargs).state_dict().items()}
    other = {k: torch.full_like(v, 7) for k, v in checked.items()}
    folder = tmp_path / "m"
    folder.mkdir()
    weights = folder / ("model.safetensors" if fmt == "safetensors" else "model.pt")
    save = save_file if fmt == "safetensors" else (lambda t, p: torch.save(t, p))
    save(checked, str(weights))
    save(other, str(tmp_path / "other"))
    card = write_card(folder, card_dict(weights, fmt, task="classification", dims=2,
                                        architecture={"name": "medviewer.ai.nets.ConvClassifier",
                                                      "kwargs": kwargs}))
    _serve_other_bytes_after_the_check(monkeypatch, {weights: (tmp_path / "other").read_bytes()})
    loaded = load_network(card, CPU).module.state_dict()
    assert sorted(loaded) == sorted(checked)
    assert all(torch.equal(loaded[key], checked[key]) for key in checked)


class _FakeOnnxRuntime:
    """Stands in for onnxruntime (not installed here): records what each session was given."""

    def __init__(self) -> None:
        self.given: list[Any] = []

    def module(self) -> Any:
        import types

        fake = types.ModuleType("onnxruntime")
        fake.get_available_providers = lambda: ["CPUExecutionProvider"]
        runtime = self

        class InferenceSession:
            def __init__(self, model: bytes | str, providers: list[str]) -> None:
                if isinstance(model, bytes):
                    runtime.given.append(model)
                else:  # onnxruntime reads the model and its external data now
                    root = Path(model).parent
                    runtime.given.append((root, {p.relative_to(root).as_posix(): p.read_bytes()
                                                 for p in root.rglob("*") if p.is_file()}))

            def get_inputs(self) -> list[Any]:
                return [types.SimpleNamespace(name="x")]

        fake.InferenceSession = InferenceSession
        return fake


def test_onnx_is_given_the_checked_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = _FakeOnnxRuntime()
    monkeypatch.setitem(sys.modules, "onnxruntime", runtime.module())
    model = _onnx_initializer("w.bin")
    weights, card = _onnx_card(tmp_path / "plain", _onnx_initializer("w.bin"))
    (tmp_path / "plain" / "w.bin").write_bytes(b"checked!")
    _serve_other_bytes_after_the_check(monkeypatch, {weights: b"other", (tmp_path / "plain" /
                                                                         "w.bin"): b"other"})
    load_network(card, CPU)
    root, files = runtime.given[0]
    assert files == {"model.onnx": model, "w.bin": b"checked!"}
    assert root != weights.parent and not root.exists()  # a private copy, removed once read


def test_onnx_without_external_data_is_given_as_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _FakeOnnxRuntime()
    monkeypatch.setitem(sys.modules, "onnxruntime", runtime.module())
    model = _varint(1 << 3) + _varint(8)  # ModelProto(ir_version 8)
    weights, card = _onnx_card(tmp_path / "m", model)
    _serve_other_bytes_after_the_check(monkeypatch, {weights: b"other"})
    load_network(card, CPU)
    assert runtime.given == [model]


def test_models_add_installs_the_copy_it_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source serves a different card and weights the second time (when they are copied):
    the staged copy is what is checked and installed, so the add is refused."""
    from medviewer.ai import registry as registry_module

    marker = tmp_path / "exploit-ran"
    evil, _ = _torchscript_folder(tmp_path / "evil", _from_file_in_forward(marker))
    folder = _plain_torchscript_card(tmp_path / "m")
    real = registry_module._copy_card_folder

    def copy_other_bytes(card: ModelCard, dest: Path) -> None:
        real(card, dest)
        (dest / "model.ts").write_bytes(evil.read_bytes())
        (dest / CARD_FILE).write_text(json.dumps(card_dict(dest / "model.ts", "torchscript")))

    monkeypatch.setattr(registry_module, "_copy_card_folder", copy_other_bytes)
    _assert_add_refused(tmp_path, folder, re.escape(str(tmp_path / "user")) + (
        r"/\.partial-[^/]+/model/model\.ts \(evil-clean/code/__torch__/tests/ai/tiny_models\.py"
        r"\): refused: line \d+ names 'aten::from_file', which maps any file.*"))
    assert not marker.exists()
