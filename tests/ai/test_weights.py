"""Weights: every format loads to the same numbers; tampered or pickled files are refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai.runner import Runner, run_to_end
from medviewer.ai.weights import clear_network_cache, load_network
from medviewer.core.errors import InferenceError, ModelCardError
from tests.ai.tiny_models import ThresholdSegmenter, card_dict, make_card, make_volume, write_card


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_network_cache()


UNET_KWARGS = {"spatial_dims": 2, "in_channels": 1, "out_channels": 3,
               "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 1}


def _unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(**UNET_KWARGS).eval()


@pytest.mark.parametrize("fmt", ["safetensors", "state_dict"])
def test_state_dict_weights_give_the_architectures_own_output(tmp_path: Path, fmt: str) -> None:
    """A MONAI UNet saved as tensors: the runner's labels = argmax of the module on each slice."""
    module = _unet()
    folder = tmp_path / "unet"
    folder.mkdir()
    if fmt == "safetensors":
        from safetensors.torch import save_file

        weights = folder / "model.safetensors"
        save_file(module.state_dict(), str(weights))
    else:
        weights = folder / "model.pt"
        torch.save(module.state_dict(), weights)
    labels = {"1": {"name": "a", "color": "#ff0000"}, "2": {"name": "b", "color": "#00ff00"}}
    card = write_card(folder, card_dict(
        weights, fmt, dims=2, orientation="PLS", labels=labels,
        architecture={"name": "monai.networks.nets.UNet", "kwargs": UNET_KWARGS},
    ))
    array = np.random.default_rng(0).normal(size=(3, 32, 24)).astype(np.float32)
    prediction = run_to_end(Runner(card, "cpu").run(make_volume(array)))
    with torch.no_grad():
        expected = module(torch.from_numpy(array)[:, None]).argmax(dim=1).numpy()
    np.testing.assert_array_equal(prediction.label_map, expected)


def test_wrong_sha256_refuses_the_model(tmp_path: Path) -> None:
    card = make_card(tmp_path / "m", ThresholdSegmenter())
    with card.weights_path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelCardError, match="sha256 mismatch"):
        load_network(card, torch.device("cpu"))


class _Exploit:
    """Unpickling this runs code: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt,name,reason", [
    ("state_dict", "model.pt", "not a torch.save archive"),
    ("torchscript", "model.ts", "not a TorchScript file (not a zip archive)"),
    ("safetensors", "model.st", "not a valid safetensors file"),
])
def test_pickled_weights_are_never_unpickled(
    tmp_path: Path, fmt: str, name: str, reason: str
) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    marker = tmp_path / "exploit-ran"
    weights = folder / name
    weights.write_bytes(pickle.dumps({"weight": _Exploit(marker)}))
    fields = {}
    if fmt in ("state_dict", "safetensors"):
        fields["architecture"] = {"name": "monai.networks.nets.UNet", "kwargs": UNET_KWARGS}
    card = write_card(folder, card_dict(weights, fmt, dims=2, orientation="PLS", **fields))
    with pytest.raises(ModelCardError) as info:
        load_network(card, torch.device("cpu"))
    assert str(info.value).startswith(f"{weights}: refused: {reason}")
    assert not marker.exists()


def test_a_torch_save_of_a_whole_module_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    torch.save(_unet(), folder / "model.pt")  # a pickled module, not a state dict
    card = write_card(folder, card_dict(
        folder / "model.pt", "state_dict", dims=2, orientation="PLS",
        architecture={"name": "monai.networks.nets.UNet", "kwargs": UNET_KWARGS},
    ))
    with pytest.raises(ModelCardError) as info:
        load_network(card, torch.device("cpu"))
    assert str(info.value) == (
        f"{folder / 'model.pt'} (model/data.pkl): refused: loading it would call "
        "'monai.networks.nets.unet.UNet'; a weights file may only rebuild tensors and the "
        "network's own layers, so it is not loaded"
    )


def test_weights_that_do_not_fit_the_architecture(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"nonsense": torch.zeros(3)}, str(folder / "model.safetensors"))
    card = write_card(folder, card_dict(
        folder / "model.safetensors", "safetensors", dims=2, orientation="PLS",
        architecture={"name": "monai.networks.nets.UNet", "kwargs": UNET_KWARGS},
    ))
    with pytest.raises(InferenceError, match=r"do not fit monai\.networks\.nets\.UNet"):
        load_network(card, torch.device("cpu"))


def test_architecture_kwargs_it_refuses(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"x": torch.zeros(1)}, str(folder / "model.safetensors"))
    card = write_card(folder, card_dict(
        folder / "model.safetensors", "safetensors", dims=2, orientation="PLS",
        architecture={"name": "monai.networks.nets.UNet", "kwargs": {"colour": 3}},
    ))
    with pytest.raises(ModelCardError, match=r"weights\.architecture\.kwargs"):
        load_network(card, torch.device("cpu"))


def test_onnx_without_onnxruntime_says_how_to_get_it(tmp_path: Path) -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("onnxruntime is installed here")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"\x08\x08")  # a ModelProto with ir_version 8 only
    card = write_card(folder, card_dict(folder / "model.onnx", "onnx", dims=2, orientation="PLS"))
    with pytest.raises(InferenceError, match=r"pip install 'medviewer\[onnx\]'"):
        load_network(card, torch.device("cpu"))
