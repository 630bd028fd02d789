"""The Lambda container image: its size, the layers the project adds, and run -> first answer.

    .venv/bin/python -m bench.container [--runs 5]

Builds Dockerfile.lambda with `make image` on the served bundle (artifacts/bundle/float32), on AWS's
base image or, where it cannot be pulled, the stand-in (tests/container/). Then, per run, starts
the container under AWS's Runtime Interface Emulator and times from `run` to the first answer (one
URL from 127.0.0.1, fetched, preprocessed and classified): container start, init (imports, model
load) and the request. (The RIE's REPORT line's "Init Duration" is not the init time.) Medians.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import BUNDLE, file_server, machine, sample_images
from tests.container.images import AWS_BASE, build_image, ensure_base, find_engine, invoke_rie, remove, run_under_rie
from tests.dockerfile import handler

TAG = "fashion-classifier:bench"


def image_mb(engine: str, tag: str) -> float:
    inspected = json.loads(subprocess.run([engine, "image", "inspect", tag], capture_output=True, check=True).stdout)
    return inspected[0]["Size"] / 1e6


def layers(engine: str, tag: str) -> list[tuple[str, float]]:
    """(instruction, MB) of each layer, newest first: podman prints a JSON list, docker a JSON object a line."""
    form = "json" if engine == "podman" else "{{json .}}"
    command = [engine, "history", "--no-trunc", "--human=false", "--format", form, tag]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = json.loads(out) if engine == "podman" else [json.loads(line) for line in out.splitlines()]
    return [
        (row["CreatedBy"].replace("/bin/sh -c #(nop) ", "").strip()[:70], int(row.get("size", row.get("Size"))) / 1e6)
        for row in rows
    ]


def first_answer(engine: str, url: str) -> float:
    """Seconds from `run` to the first answer."""
    started = time.perf_counter()
    container, invocations = run_under_rie(engine, TAG, handler(), "ALLOW_PRIVATE_URLS=true")
    try:
        body = invoke_rie(invocations, {"url": url})
        answered = time.perf_counter()
    finally:
        remove(engine, container)
    assert "label" in body, body
    return answered - started


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    engine = find_engine()
    base = ensure_base(engine)
    with tempfile.TemporaryDirectory() as context:
        build_image(TAG, BUNDLE / "float32", Path(context))
    model = json.loads((BUNDLE / "float32" / "model.json").read_text())["name"]
    print(f"machine: {machine()}; engine: {engine}; base: {base}; model: {model}")
    size, base_size = image_mb(engine, TAG), image_mb(engine, AWS_BASE)
    print(f"\nimage size: {size:.0f} MB; the base {base_size:.0f} MB; the project's layers {size - base_size:.0f} MB\n")
    print("| layer (newest first) | MB |\n| --- | --- |")
    for created, size in layers(engine, TAG):
        print(f"| `{created}` | {size:.1f} |")
    image = sample_images(1)[0]
    with file_server(image.parent) as files:
        runs = [first_answer(engine, f"{files}/{image.name}") for _ in range(args.runs)]
    print(f"\n| under the RIE (median of {args.runs}) | seconds |\n| --- | --- |")
    print(f"| from `{engine} run` to the first answer (+ fetch, inference) | {statistics.median(runs):.2f} |")
    print(f"\nall runs: {[round(run, 2) for run in runs]}")


if __name__ == "__main__":
    main()
