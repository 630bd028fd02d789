"""Cached activations on disk: append-only shards of float16 rows, read back a batch at a time.

float16 halves the disk and page cache of float32 (its effect on the model
is measured in docs/benchmarks-history.md). Rows are read one by one with pread, not
memory-mapped, so a process reading the cache holds only the batch it asked
for, however large the cache. numpy only: no Keras, no TensorFlow.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

ROW_DTYPE = np.float16


class ActivationStore:
    """One key's entries: shards of float16 rows (shard-N.f16) and their digests (shard-N.digests)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.shape: tuple[int, ...] | None = None  # a row's; None until the first append
        self.index: dict[str, tuple[Path, int]] = {}  # digest -> (shard, row)
        self.files: dict[Path, int] = {}  # open shard descriptors
        meta = self.folder / "meta.json"
        if meta.is_file():
            self.shape = tuple(json.loads(meta.read_text())["shape"])
        for digests in sorted(self.folder.glob("shard-*.digests")):  # a shard without .digests was never finished
            for row, digest in enumerate(digests.read_text().split()):
                self.index[digest] = (digests.with_suffix(".f16"), row)

    def __contains__(self, digest: str) -> bool:
        return digest in self.index

    def __len__(self) -> int:
        return len(self.index)

    @property
    def row_shape(self) -> tuple[int, ...]:
        if self.shape is None:
            raise KeyError(f"{self.folder} holds no rows yet")
        return self.shape

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape)) * np.dtype(ROW_DTYPE).itemsize

    def append(self, digests: list[str], rows: np.ndarray) -> None:
        if self.shape is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.shape = tuple(rows.shape[1:])
            (self.folder / "meta.json").write_text(json.dumps({"shape": self.shape, "dtype": "float16"}))
        shard = self.folder / f"shard-{time.time_ns()}.f16"
        rows.astype(ROW_DTYPE).tofile(shard)
        tmp = shard.with_suffix(".tmp")
        tmp.write_text("\n".join(digests) + "\n")
        os.replace(tmp, shard.with_suffix(".digests"))  # written last: a killed run leaves no half shard
        self.index.update((d, (shard, row)) for row, d in enumerate(digests))

    def read(self, digests: list[str]) -> np.ndarray:
        """The rows for digests as float32, read one by one (no mapping: memory holds only these)."""
        out = np.empty((len(digests), *self.row_shape), np.float32)
        for k, digest in enumerate(digests):
            shard, row = self.index[digest]
            if shard not in self.files:
                self.files[shard] = os.open(shard, os.O_RDONLY)
            data = os.pread(self.files[shard], self.row_bytes, row * self.row_bytes)
            out[k] = np.frombuffer(data, ROW_DTYPE).reshape(self.row_shape)
        return out

    def prune(self, live: set[str]) -> int:
        """Rewrite shards that hold entries not in live; returns the bytes freed."""
        freed = 0
        for shard in sorted({s for s, _ in self.index.values()}):
            digests = shard.with_suffix(".digests").read_text().split()
            keep = [d for d in digests if d in live]
            if len(keep) == len(digests):
                continue
            if keep:
                self.append(keep, self.read(keep))
            freed += shard.stat().st_size - self.row_bytes * len(keep)
            for path in (shard.with_suffix(".digests"), shard):
                path.unlink()
            for d in set(digests) - set(keep):
                del self.index[d]
        return freed
