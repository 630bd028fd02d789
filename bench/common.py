"""The benchmarks' own helpers: the command line, statistics, the sample images, the checkpoint of a bundle."""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import REPO
from project.paths import BUNDLE
from train.data import default_data_dir

DATA = default_data_dir()  # the training stage's setting: $FASHION_DATA, ../shared, or ./clothing-dataset-small
LAMBDA_PYTHON = REPO / ".venv-lambda" / "bin" / "python"


def median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 2)


def percentile_ms(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def sample_images(n: int, split: str = "validation") -> list[Path]:
    """n images spread over the split (its files are sorted by class)."""
    files = sorted(DATA.joinpath(split).rglob("*.jpg"))
    return files[:: max(1, len(files) // n)][:n]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} for {pid}")


def timed(function, *args, repeat: int = 1) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - started)
    return times


def python_for_serving() -> Path:
    return LAMBDA_PYTHON if LAMBDA_PYTHON.exists() else Path(sys.executable)


def checkpoint_of(variant: Path) -> Path | None:
    """The checkpoint a bundle was converted from (model.json names it), in the run folders under artifacts/."""
    name = json.loads((variant / "model.json").read_text())["source_checkpoint"]
    return next(iter(sorted((REPO / "artifacts").glob(f"**/{name}"))), None)


def parser(doc: str | None, one_variant: bool = False) -> argparse.ArgumentParser:
    """A bench's command line: its docstring as help, --bundle, and --variant where it measures one variant."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=BUNDLE, help="a bundle folder (its variants in sub-folders)")
    if one_variant:
        p.add_argument("--variant", default="float32", help="the variant measured")
    return p


def fresh_clone(clone: Path) -> Path:
    """This repository's HEAD cloned beside it (so that ../shared is the clone's too), the folder emptied first."""
    subprocess.run(["rm", "-rf", str(clone)], check=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    return clone


def timed_make(clone: Path, *targets: str) -> float:
    """Seconds `make targets` takes in clone (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(["make", *targets], cwd=clone, check=True)
    return time.perf_counter() - started
