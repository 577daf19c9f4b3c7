"""Hostile model files: none runs code, reaches outside its folder or exhausts memory.

Every crafted file would run ``touch <marker>`` if anything unpickled or evaluated it; each test
asserts the exact refusal, at ``models add`` (nothing installed) and at load time, and that the
marker file was never created.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import struct
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
    _assert_add_refused(tmp_path, folder, re.escape(
        f"{folder / CARD_FILE}: weights.file: {detail}, got '{card['weights']['file']}'"))


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
    assert counts == {"demo-ct-lung-nodule-seg": 488_268, "demo-ct-nodule-cls": 97_890,
                      "demo-cxr-nodule-cls": 97_761}


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
