"""The .pth reader: what torch itself reads, with no torch and no code run; anything else refused by name.

torch writes the legacy files here (torch.save's pre-1.6 format, as the weight packages ship); it is installed
in the training environment for the EfficientNet-Lite port's reference (the lite-reference group).
"""

import os
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.needs import missing
from train.torch_weights import LEGACY_MAGIC, LEGACY_PROTOCOL, UnsafeOrCorrupt, load_state_dict


@pytest.fixture(scope="module")
def torch():
    try:
        import torch
    except ImportError:
        missing("torch is not installed: pip install --group lite-reference (make test installs it)")
    return torch


def legacy_file(torch, path, state) -> bytes:
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path.read_bytes()


def test_reads_what_torch_reads(torch, tmp_path):
    """Every dtype a state dict holds, views into shared storages, non-contiguous strides, scalars, empties."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "conv.weight": torch.randn(8, 3, 3, 3),
        "transposed": base.t(),  # strides (1, 6)
        "slice": base[1:3, 2:5],  # an offset into the same storage
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "half": torch.randn(5).half(),
        "double": torch.randn(2, 2, dtype=torch.float64),
        "mask": torch.tensor([True, False]),
        "bytes": torch.arange(4, dtype=torch.uint8),
        "empty": torch.zeros(0, 3),
    }
    legacy_file(torch, tmp_path / "s.pth", state)
    loaded = load_state_dict(tmp_path / "s.pth")
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)
        assert loaded[name].dtype == tensor.numpy().dtype and loaded[name].shape == tuple(tensor.shape)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def header() -> bytes:
    return b"".join(
        pickle.dumps(part, protocol=2)
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True})
    )


def test_code_in_the_pickle_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for body in (pickle.dumps({"w": Payload()}, protocol=2), pickle.dumps(Payload(), protocol=2)):
        (tmp_path / "evil.pth").write_bytes(header() + body)
        with pytest.raises(UnsafeOrCorrupt, match="names (posix|os).system"):
            load_state_dict(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned.txt").exists()
    (tmp_path / "evil.pth").write_bytes(pickle.dumps(Payload(), protocol=2))  # in the header records
    with pytest.raises(UnsafeOrCorrupt, match="header record names"):
        load_state_dict(tmp_path / "evil.pth")


def test_other_formats_are_refused_by_name(tmp_path, torch):
    torch.save({"w": torch.zeros(2)}, tmp_path / "zip.pth")  # PyTorch >= 1.6's default
    with pytest.raises(UnsafeOrCorrupt, match="zip format"):
        load_state_dict(tmp_path / "zip.pth")
    (tmp_path / "plain.pth").write_bytes(header() + pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    with pytest.raises(UnsafeOrCorrupt, match="other than a dict of tensors"):
        load_state_dict(tmp_path / "plain.pth")


@pytest.fixture(scope="module")
def small_legacy(torch, tmp_path_factory) -> bytes:
    state = {"a.weight": torch.randn(3, 2, 1, 1), "a.bias": torch.randn(3), "n": torch.tensor(1)}
    return legacy_file(torch, tmp_path_factory.mktemp("pth") / "small.pth", state)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_raise_only_the_readers_error(small_legacy, tmp_path, data):
    """Truncated or bit-flipped anywhere (header, pickle, key list, element counts, raw data): the reader
    either returns arrays of the recorded shapes or raises UnsafeOrCorrupt; never another error, never a hang."""
    damaged = bytearray(small_legacy)
    if data.draw(st.booleans(), label="truncate"):
        damaged = damaged[: data.draw(st.integers(0, len(damaged) - 1), label="length")]
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        at = data.draw(st.integers(0, len(damaged) - 1), label="at") if damaged else 0
        if damaged:
            damaged[at] = data.draw(st.integers(0, 255), label="byte")
    path = tmp_path / "damaged.pth"
    path.write_bytes(bytes(damaged))
    try:
        loaded = load_state_dict(path)
    except UnsafeOrCorrupt:
        return
    assert all(isinstance(v, np.ndarray) for v in loaded.values())
