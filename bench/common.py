"""Helpers shared by the benchmarks: statistics, the machine, servers on 127.0.0.1."""

import contextlib
import functools
import http.server
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from train.data import default_data_dir

REPO = Path(__file__).resolve().parents[1]
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


@contextlib.contextmanager
def file_server(root: Path):
    """A static HTTP server on 127.0.0.1 for the images."""
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def local_server(model_dir: Path, python: Path = LAMBDA_PYTHON, log_path: Path | None = None):
    """lambda_fn.local_server in its own process; yields (base URL, pid)."""
    env = {**os.environ, "MODEL_DIR": str(model_dir), "ALLOW_PRIVATE_URLS": "true", "PYTHONPATH": str(REPO)}
    log = open(log_path or os.devnull, "w")
    server = subprocess.Popen(
        [str(python), "-m", "lambda_fn.local_server", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert server.stdout is not None  # stdout=PIPE
    try:
        line = server.stdout.readline()
        while line and not line.startswith("serving on "):
            line = server.stdout.readline()
        yield line.split()[2], server.pid
    finally:
        server.kill()
        server.wait()
        log.close()


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
