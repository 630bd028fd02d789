"""Bench results as data: each bench writes bench/results/<bench>.json, and bench.report renders BENCHMARKS.md.

A result holds its figures as tables and sentences, the command line that produced it, the model it measured
(name and sha256) and the machine (CPU, vector extensions, cores, memory, library versions, the BLAS kernel),
with the time it was written. Nothing in BENCHMARKS.md is typed by hand: a figure comes from one of these.
"""

import json
import os
import platform
import shlex
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from harness import REPO

RESULTS = REPO / "bench" / "results"
LIBRARIES = ("numpy", "ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu", "keras", "jax", "pillow")
VECTOR_FLAGS = ("avx", "fma", "amx")  # the prefixes of /proc/cpuinfo flags that decide a kernel's speed


@dataclass
class Table:
    columns: list[str]
    rows: list[list]
    title: str = ""


@dataclass
class Result:
    bench: str  # the module under bench/
    command: str
    title: str  # the section's heading
    tables: list[Table]
    notes: list[str] = field(default_factory=list)  # sentences built from the figures
    model: dict | None = None
    machine: dict = field(default_factory=dict)
    when: str = ""


def cpu() -> dict:
    """The processor as /proc/cpuinfo names it, its vector extensions, cores and memory."""
    info = Path("/proc/cpuinfo").read_text().splitlines()
    name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line
    )
    return {
        "cpu": name,
        "vector_extensions": sorted(f for f in flags if f.startswith(VECTOR_FLAGS)),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
    }


def bfloat16() -> list[str]:
    """This CPU's bfloat16 arithmetic (AVX512_BF16, AMX), as its vector extensions name it; empty where none."""
    return [flag for flag in ("avx512_bf16", "amx_bf16") if flag in cpu()["vector_extensions"]]


def blas_kernel() -> str | None:
    """OpenBLAS's kernel for this CPU as threadpoolctl reports it (None where either is missing)."""
    try:
        import numpy  # noqa: F401  (loads the BLAS threadpoolctl inspects)
        import threadpoolctl
    except ImportError:
        return None
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    return f"{blas[0]['internal_api']} {blas[0]['version']} {blas[0].get('architecture')}" if blas else None


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def machine() -> dict:
    return {**cpu(), "versions": versions(), "blas": blas_kernel()}


def model_of(bundle_variant: Path) -> dict:
    """A bundle variant's name and its .tflite's sha256, as conversion wrote them in model.json."""
    meta = json.loads((bundle_variant / "model.json").read_text())
    return {"name": meta["name"], "sha256": meta["tflite_sha256"]}


def command_line(bench: str, argv: list[str] | None) -> str:
    return shlex.join(["python", "-m", f"bench.{bench}", *(sys.argv[1:] if argv is None else argv)])


def record(
    module: str,
    argv: list[str] | None,
    title: str,
    tables: list[Table],
    notes: list[str] | None = None,
    model: dict | None = None,
    measured_on: dict | None = None,
    folder: Path = RESULTS,
    key: str | None = None,
) -> Result:
    """Writes bench/results/<bench>.json (this machine, unless the figures were measured on another: measured_on)
    and prints the section as BENCHMARKS.md will show it. module: the bench's own (`__spec__.name`, also when run
    with -m), so that a bench is named once, by its file; argv: as its main() got it (None: sys.argv); key: what
    tells apart several results of one bench (a backbone's make_run: <bench>.<key>.json, shown after <bench>)."""
    bench = module.rsplit(".", 1)[-1]
    result = Result(bench, command_line(bench, argv), title, tables, notes or [], model, measured_on or machine())
    result.when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{bench}.{key}" if key else bench
    (folder / f"{name}.json").write_text(json.dumps(asdict(result), indent=1, ensure_ascii=False) + "\n")
    print(markdown(result))
    return result


def load(path: Path) -> Result:
    data = json.loads(path.read_text())
    data["tables"] = [Table(**t) for t in data["tables"]]
    return Result(**data)


def machine_line(m: dict) -> str:
    libraries = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    blas = f"; BLAS {m['blas']}" if m.get("blas") else ""
    return (
        f"{m['cpu']}, {m['cores']} cores ({' '.join(m['vector_extensions']) or 'no AVX'}), "
        f"{m['memory_gib']} GiB; {libraries}{blas}"
    )


def markdown(result: Result, heading_note: str = "", prose: str = "") -> str:
    """One BENCHMARKS.md section: heading, what it measures, where and on what, the command, the figures."""
    lines = [f"## {result.title}{heading_note}", ""]
    if prose:
        lines += [prose, ""]
    model = f"; model `{result.model['name']}` (sha256 `{result.model['sha256'][:12]}`)" if result.model else ""
    lines += [f"Measured {result.when} on {machine_line(result.machine)}{model}.", ""]
    lines += ["```sh", result.command, "```", ""]
    for table in result.tables:
        if table.title:
            lines += [f"**{table.title}**", ""]
        lines += ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
        lines += [""]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def cell(value) -> str:
    """A figure as the bench rounded it; None where a row has no such figure."""
    return "—" if value is None else str(value)
