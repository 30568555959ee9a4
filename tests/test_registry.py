"""Model discovery through the bbans.models entry points (faked here; the real provider lives in models/)."""
import numpy as np
import pytest

from bbans.container import registry
from bbans.errors import ModelError
from toy_models import FakeEntryPoint, FakeProvider, ToyBinary, ToyGrey, install_providers


@pytest.fixture
def toys(monkeypatch):
    grey, wide, binary = ToyGrey((4, 4), name="grey"), ToyGrey((3,), name="grey3"), ToyBinary((4, 4), name="bin")
    install_providers(monkeypatch, FakeEntryPoint("broken", error=ImportError("no torch")),
                      FakeEntryPoint("a", FakeProvider(grey, wide)), FakeEntryPoint("b", FakeProvider(binary)))
    return grey, wide, binary


def test_list_and_load(toys, tmp_path):
    grey, wide, binary = toys
    names = [m["name"] for m in registry.list_models()]
    assert names == ["grey", "grey3", "bin"]
    assert registry.list_models()[2]["provider"] == "b"
    assert registry.load_model("bin") is binary
    weights = tmp_path / "grey3.safetensors"
    weights.write_bytes(b"")
    assert registry.load_model(str(weights)) is wide
    with pytest.raises(ModelError, match="no model named 'nope'.*grey.*no torch"):
        registry.load_model("nope")
    unknown = tmp_path / "other.bin"
    unknown.write_bytes(b"")
    with pytest.raises(ModelError, match="recognises"):
        registry.load_model(str(unknown))


def test_find_model(toys):
    grey, wide, binary = toys
    assert registry.find_model("bin", binary.sha256) is binary
    with pytest.raises(ModelError, match="installed models: grey .*bin"):
        registry.find_model("bin", "0" * 64)


def test_default_model_prefers_the_narrowest_range(toys):
    grey, wide, binary = toys
    assert registry.default_model_for(np.zeros((2, 4, 4), np.uint8)) is binary  # both fit: binary is narrower
    assert registry.default_model_for(np.full((2, 4, 4), 7, np.uint8)) is grey
    assert registry.default_model_for(np.zeros((2, 3), np.uint8)) is wide
    assert registry.default_model_for(np.zeros((2, 5), np.uint8)) is None


def test_no_providers(monkeypatch):
    install_providers(monkeypatch)
    assert registry.list_models() == [] and registry.default_model_for(np.zeros((1, 2), np.uint8)) is None
    with pytest.raises(ModelError, match="installed models: none"):
        registry.find_model("x", "0" * 64)
