"""The benchmarks' own helpers: statistics, the machine, the sample images (servers are in harness.servers)."""

import os
import platform
import statistics
import sys
import time
from pathlib import Path

from harness import REPO
from train.data import default_data_dir

BUNDLE = REPO / "artifacts" / "bundle"
DATA = default_data_dir()  # the training stage's setting: $FASHION_DATA, ../shared, or ./clothing-dataset-small
LAMBDA_PYTHON = REPO / ".venv-lambda" / "bin" / "python"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


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
