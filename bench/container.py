"""The Lambda container image under AWS's own tools: its size and the layers the project adds (x86_64 and arm64),
run -> first answer under the RIE, warm requests through the RIE, and `sam local invoke` end to end.

    python -m bench.container [--bundle artifacts/bundle] [--variant float32] [--runs 5] [--warm 10] [--sam 3] [--arm64]

Builds Dockerfile.lambda with `make image` on the bundle, on AWS's base image or, where it cannot be pulled,
the stand-in (tests/container/; for arm64 the arm64 stand-in, through qemu). Then:
- cold: per run, starts the container under AWS's Runtime Interface Emulator and times from `run` to the
  first answer (one URL from 127.0.0.1, fetched, preprocessed and classified): container start, init (imports,
  model load) and the request. The RIE's REPORT line's "Init Duration" is not the init time, and this RIE
  prints no INIT REPORT line, so the init is measured from outside.
- warm: in one container, the same {"url"} request again and again.
- sam: `sam build` once, then `sam local invoke` with infra/events/image.json (a new container each time,
  as SAM CLI runs it).
Medians.
"""

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import parser, sample_images
from bench.results import Field, Table, model_of, record
from harness.containers import build_image, ensure_base, find_engine, invoke_rie, remove, run_under_rie
from harness.dockerfile import handler
from harness.sam import invoked, sam, sam_environment
from harness.servers import file_server

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


def system_of(engine: str, tag: str) -> str:
    """The image's operating system as its /etc/os-release names it: AWS's base is Amazon Linux, the stand-in Debian."""
    command = [engine, "run", "--rm", "--entrypoint", "cat", tag, "/etc/os-release"]
    release = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return next(line.split("=", 1)[1].strip('"') for line in release.splitlines() if line.startswith("PRETTY_NAME="))


LAYERS = [Field("layer", "layer (newest first)", shown="`{}`"), Field("mb", "MB", "MB")]
RIE = [
    Field("start", "under the RIE"),
    Field("runs", "runs", "count"),
    Field("median", "median", "s (cold) or ms (warm), as its row says"),
]
SAM = [Field("step", "SAM CLI"), Field("runs", "runs", "count"), Field("median_s", "median (s)", "s")]


def image_table(engine: str, tag: str, base: str, arch: str) -> Table:
    size, base_size = image_mb(engine, tag), image_mb(engine, base)
    records = [{"layer": created, "mb": round(layer, 1)} for created, layer in layers(engine, tag) if layer >= 0.05]
    title = f"{arch}: image {size:.0f} MB; the base ({base}) {base_size:.0f} MB; the project's layers "
    title += f"{size - base_size:.0f} MB"
    return Table(f"layers_{arch}", LAYERS, records, title)


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


def warm_answers(engine: str, url: str, count: int) -> list[float]:
    """Seconds per {"url"} request to one container that has answered once already."""
    container, invocations = run_under_rie(engine, TAG, handler(), "ALLOW_PRIVATE_URLS=true")
    try:
        invoke_rie(invocations, {"url": url})
        times = []
        for _ in range(count):
            started = time.perf_counter()
            assert "label" in invoke_rie(invocations, {"url": url})
            times.append(time.perf_counter() - started)
    finally:
        remove(engine, container)
    return times


def sam_invokes(engine: str, project: Path, count: int) -> tuple[float, list[float]]:
    """(sam build seconds, seconds per `sam local invoke` of the sample image event)."""
    event = str(project / "infra" / "events" / "image.json")
    with sam_environment(engine) as env:
        started = time.perf_counter()
        assert sam(env, project, "build").returncode == 0
        build = time.perf_counter() - started
        times = []
        for _ in range(count):
            started = time.perf_counter()
            invoked(sam(env, project, "local", "invoke", "Function", "-e", event, "--skip-pull-image"))
            times.append(time.perf_counter() - started)
    return build, times


def main(argv=None):
    p = parser(__doc__, one_variant=True)
    p.add_argument("--runs", type=int, default=5, help="cold starts under the RIE")
    p.add_argument("--warm", type=int, default=10, help="warm {url} requests through the RIE")
    p.add_argument("--sam", type=int, default=3, help="sam local invoke runs (0: skip SAM CLI)")
    p.add_argument("--arm64", action="store_true", help="also build the arm64 image and report its size")
    args = p.parse_args(argv)
    bundle = args.bundle / args.variant
    engine = find_engine()
    base = ensure_base(engine)
    system = system_of(engine, base)
    stand_in = " (Debian: the stand-in tests/container/ builds where AWS's image cannot be pulled)"
    tables: list[Table] = []
    notes = [f"engine: {engine}; the x86_64 base's system: {system}{stand_in if 'Debian' in system else ''}"]
    with tempfile.TemporaryDirectory() as context:
        build_image(TAG, bundle, Path(context))
        tables.append(image_table(engine, TAG, base, "x86_64"))
        image = sample_images(1)[0]
        with file_server(image.parent) as files:
            url = f"{files}/{image.name}"
            runs = [first_answer(engine, url) for _ in range(args.runs)]
            warm = warm_answers(engine, url, args.warm)
        rie = [
            {
                "start": f"cold: `{engine} run` to the first answer, s",
                "runs": args.runs,
                "median": round(statistics.median(runs), 2),
            },
            {
                "start": "warm: one {url} request, ms",
                "runs": args.warm,
                "median": round(statistics.median(warm) * 1000),
            },
        ]
        tables.append(Table("rie", RIE, rie, "Under AWS's Runtime Interface Emulator"))
        if args.sam:
            build, invokes = sam_invokes(engine, Path(context), args.sam)
            sam_steps = [
                {"step": "`sam build` (layers cached)", "runs": 1, "median_s": round(build, 1)},
                {
                    "step": "`sam local invoke -e infra/events/image.json`, end to end",
                    "runs": args.sam,
                    "median_s": round(statistics.median(invokes), 1),
                },
            ]
            tables.append(Table("sam", SAM, sam_steps, "SAM CLI"))
    if args.arm64:
        arm_base = ensure_base(engine, "arm64")
        with tempfile.TemporaryDirectory() as context:
            build_image(f"{TAG}-arm64", bundle, Path(context), arch="arm64", base=arm_base)
        tables.append(image_table(engine, f"{TAG}-arm64", arm_base, "arm64"))
    title = "The container image under AWS's own tools"
    record(__spec__.name, argv, title, tables, notes, model_of(bundle))


if __name__ == "__main__":
    main()
