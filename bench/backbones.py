"""The backbones side by side: what each trained, converted variant gives and costs, measured in one run.

    python -m bench.backbones --bundles artifacts/bundle artifacts/bundle-efficientnet-lite2   # no TensorFlow

Every variant of every bundle, served as the Lambda serves it (lambda_fn.model.Model on LiteRT): test accuracy
through the Lambda's preprocessing, warm single-image latency at 1 and 2 threads (median), the model file, a
fresh process to its first prediction (median), and the bill at the cheapest Lambda memory whose projected
latency answers within the budget (bench.bill's projection and prices, x86_64). The first bundle's float32 is
the reference the speed-up and the cost ratio are counted against. Inference alone: fetching and decoding a
photo add the same to every row (bench.request_split).
"""

import argparse
import base64
import json
import statistics
from pathlib import Path

from bench.accuracy import predictions
from bench.bill import MEMORY_MB, NOT_MEASURED, dollars_per_million, lambda_dollars, projected_ms
from bench.cold_start import once
from bench.common import DATA, median_ms, python_for_serving, sample_images, timed
from bench.results import Field, Table, record
from lambda_fn.model import Model
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from project import cpu_class
from train.backbone import BACKBONES

THREADS = (1, 2)


def fields(budget_ms: float) -> list[Field]:
    return [
        Field("backbone", "backbone"),
        Field("input", "input", "px"),
        Field("variant", "variant"),
        Field("gflop", "GFLOP", "GFLOP"),
        Field("test_accuracy", "test accuracy", "fraction"),
        *(Field(f"ms_threads_{t}", f"{t} thread{'s' if t > 1 else ''} (ms)", "ms") for t in THREADS),
        Field("speed_up", "speed-up, 1 thread", "ratio"),
        Field("model_mb", "model (MB)", "MB"),
        Field("cold_ms", "cold start to first prediction (ms)", "ms"),
        Field("memory_mb", f"cheapest memory within {budget_ms:g} ms (MB)", "MB", absent="-"),
        Field("memory_ms", "its latency (ms)", "ms", absent="-"),
        Field("dollars", "$ per million", "USD", absent="-"),
        Field("cost_vs_reference", "cost vs reference", "ratio", absent="-"),
    ]


def latency_ms(variant: Path, x, threads: int, runs: int) -> float:
    model = Model(variant, threads=threads)
    model.logits(x)  # the first invoke prepares the delegate
    return round(median_ms(timed(model.logits, x, repeat=runs)), 1)


def cheapest(latencies: dict[int, float], budget_ms: float, cpu: dict) -> dict:
    """The cheapest memory within the budget at x86_64's price, its projected ms, and its $ per million where the
    latencies were measured on Lambda's x86_64 class of CPU (cpu); None where there is no such figure."""
    settings = [(projected_ms(latencies, m), m) for m in MEMORY_MB]
    costs = [(dollars_per_million(ms, m, "x86_64"), m, ms) for ms, m in settings if ms <= budget_ms]
    if not costs:
        return {"memory_mb": None, "memory_ms": None, "dollars": None}
    _, memory, ms = min(costs)
    dollars = lambda_dollars(ms, memory, "x86_64", cpu)
    return {"memory_mb": memory, "memory_ms": round(ms), "dollars": None if dollars is None else round(dollars, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundles", type=Path, nargs="+", required=True, help="bundle folders; the first is the reference")
    p.add_argument("--runs", type=int, default=30, help="timed invokes per variant and thread count")
    p.add_argument("--cold-runs", type=int, default=5, help="fresh processes per variant")
    p.add_argument("--budget-ms", type=float, default=300, help="the answer time a memory setting must meet")
    args = p.parse_args(argv)
    images = sorted((DATA / "test").rglob("*.jpg"))
    photo = sample_images(1)[0]
    python, encoded = python_for_serving(), base64.b64encode(photo.read_bytes()).decode()
    records, reference, cpu = [], None, cpu_class.this_machine()
    for bundle in args.bundles:
        for variant in sorted((d for d in bundle.iterdir() if (d / "model.tflite").is_file()), key=variant_order):
            meta = json.loads((variant / "model.json").read_text())
            x = Model(variant).input_of(photo.read_bytes(), DEFAULT_MAX_DECODED_BYTES)
            latencies = {t: latency_ms(variant, x, t, args.runs) for t in THREADS}
            correct = sum(p == i.parent.name for p, i in zip(predictions(variant, images), images, strict=True))
            cold = statistics.median(once(python, variant, encoded)[1] for _ in range(args.cold_runs)) * 1000
            bill = cheapest(latencies, args.budget_ms, cpu)
            reference = reference or (latencies[1], bill["dollars"])
            records.append(
                {
                    "backbone": meta["backbone"],
                    "input": meta["input"]["size"],
                    "variant": variant.name,
                    "gflop": BACKBONES[meta["backbone"]].gflop,
                    "test_accuracy": round(correct / len(images), 4),
                    **{f"ms_threads_{t}": ms for t, ms in latencies.items()},
                    "speed_up": round(reference[0] / latencies[1], 1),
                    "model_mb": round((variant / "model.tflite").stat().st_size / 1e6, 1),
                    "cold_ms": round(cold),
                    **bill,
                    "cost_vs_reference": round(bill["dollars"] / reference[1], 2)
                    if bill["dollars"] and reference[1]
                    else None,
                }
            )
    notes = [
        f"{len(images)} test images from {DATA}; latency on one validation photo, median of {args.runs} invokes",
        "the bill is bench.bill's projection (x86_64, Lambda's per-request fee included), priced only where measured "
        f"on Lambda's class of CPU; this is {cpu_class.describe(cpu)}",
    ]
    if not cpu_class.is_lambdas(cpu, "x86_64"):
        notes.append(f"$ per million and cost vs reference: {NOT_MEASURED}")
    record(
        __spec__.name, argv, "The backbones side by side", [Table("variants", fields(args.budget_ms), records)], notes
    )


def variant_order(variant: Path) -> tuple:
    """float32 first (the reference), then the smaller variants by name."""
    return (variant.name != "float32", variant.name)


if __name__ == "__main__":
    main()
