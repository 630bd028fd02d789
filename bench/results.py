"""Bench results as data: each bench writes bench/results/<bench>.json, and bench.report renders BENCHMARKS.md.

A result holds its figures as records: named sets of measurements, each a raw number in its field's unit (ms,
MB, a fraction, a ratio; "" for a name), never a formatted string. Its tables are views over those records,
written as BENCHMARKS.md is rendered: which fields, under what heading, shown how. Beside them: sentences
built from the figures, the command line that produced them, the model it measured (name and sha256) and the
machine (CPU, its class: the instruction-set features that change the answer, cores, memory, library versions,
the BLAS kernel), with the time it was written. Nothing in BENCHMARKS.md is typed by hand: a figure comes from
one of these.
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
from project import cpu_class

RESULTS = REPO / "bench" / "results"
LIBRARIES = ("numpy", "ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu", "keras", "jax", "pillow")
VECTOR_FLAGS = ("avx", "fma", "amx")  # the prefixes of /proc/cpuinfo flags that decide a kernel's speed


@dataclass(frozen=True)
class Field:
    """One measured quantity of a bench's records: its key, its unit, and how a table heads and shows it."""

    key: str
    header: str
    unit: str = ""  # the raw number's unit ("ms", "MB", "fraction", "ratio", ...); "" for a name, a label, a count
    shown: str = "{}"  # how a table writes a value: a str.format template ("{:.1%}": a fraction as a percentage)
    absent: str = "—"  # what a table writes where a record has no such figure (None)


@dataclass
class Table:
    """What a bench hands to record(): a named set of records, and the fields that describe and show them."""

    name: str  # the records' name in the result (another bench reads them by it: bill reads inference's)
    fields: list[Field]
    records: list[dict]
    title: str = ""


@dataclass
class Records:
    """Measurements as stored: one dict per measured thing, raw numbers in the units named per key."""

    units: dict[str, str]
    items: list[dict]


@dataclass
class Column:
    key: str
    header: str
    shown: str = "{}"
    absent: str = "—"

    def cell(self, value) -> str:
        return self.absent if value is None else self.shown.format(value)


@dataclass
class View:
    """A table as BENCHMARKS.md shows it: some records' fields, in order, each under its heading."""

    records: str
    columns: list[Column]
    title: str = ""


@dataclass
class Result:
    bench: str  # the module under bench/
    command: str
    title: str  # the section's heading
    records: dict[str, Records]
    views: list[View]
    notes: list[str] = field(default_factory=list)  # sentences built from the figures
    model: dict | None = None
    machine: dict = field(default_factory=dict)
    when: str = ""


def stored(table: Table) -> tuple[Records, View]:
    """A bench's table as its records and their view; a number field holding anything but a number is refused."""
    units = {f.key: f.unit for f in table.fields}
    for item in table.records:
        if unknown := set(item) - set(units):
            raise ValueError(f"{table.name}: fields {sorted(unknown)} are not declared; declared: {sorted(units)}")
        for key, value in item.items():
            if units[key] and not (value is None or (isinstance(value, int | float) and not isinstance(value, bool))):
                raise ValueError(f"{table.name}.{key} is in {units[key]}: a number or None, not {value!r}")
    columns = [Column(f.key, f.header, f.shown, f.absent) for f in table.fields]
    return Records(units, table.records), View(table.name, columns, table.title)


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
    return {**cpu(), "cpu_class": cpu_class.this_machine(), "versions": versions(), "blas": blas_kernel()}


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
    records, views = {}, []
    for table in tables:
        if table.name in records:
            raise ValueError(f"two tables named {table.name!r} in {bench}: each set of records needs its own name")
        records[table.name], view = stored(table)
        views.append(view)
    result = Result(bench, command_line(bench, argv), title, records, views, notes or [], model)
    result.machine = measured_on or machine()
    result.when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{bench}.{key}" if key else bench
    (folder / f"{name}.json").write_text(json.dumps(asdict(result), indent=1, ensure_ascii=False) + "\n")
    print(markdown(result))
    return result


def load(path: Path) -> Result:
    data = json.loads(path.read_text())
    data["records"] = {name: Records(**r) for name, r in data["records"].items()}
    data["views"] = [View(v["records"], [Column(**c) for c in v["columns"]], v["title"]) for v in data["views"]]
    return Result(**data)


def machine_line(m: dict) -> str:
    libraries = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    blas = f"; BLAS {m['blas']}" if m.get("blas") else ""
    return (
        f"{m['cpu']}, {m['cores']} cores ({' '.join(m['vector_extensions']) or 'no AVX'}), "
        f"{m['memory_gib']} GiB; {libraries}{blas}; CPU class {cpu_class.describe(m['cpu_class'])}"
    )


def rows(view: View, records: Records) -> list[list[str]]:
    """The view applied: a row of cells per record, each field written as its column shows it."""
    return [[c.cell(item.get(c.key)) for c in view.columns] for item in records.items]


def markdown(result: Result, heading_note: str = "", prose: str = "") -> str:
    """One BENCHMARKS.md section: heading, what it measures, where and on what, the command, the figures."""
    lines = [f"## {result.title}{heading_note}", ""]
    if prose:
        lines += [prose, ""]
    model = f"; model `{result.model['name']}` (sha256 `{result.model['sha256'][:12]}`)" if result.model else ""
    lines += [f"Measured {result.when} on {machine_line(result.machine)}{model}.", ""]
    lines += ["```sh", result.command, "```", ""]
    for view in result.views:
        if view.title:
            lines += [f"**{view.title}**", ""]
        lines += ["| " + " | ".join(c.header for c in view.columns) + " |", "|" + " --- |" * len(view.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in rows(view, result.records[view.records])]
        lines += [""]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"
