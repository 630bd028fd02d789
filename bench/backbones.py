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
from bench.bill import MEMORY_MB, dollars_per_million, projected_ms
from bench.cold_start import once
from bench.common import DATA, median_ms, python_for_serving, sample_images, timed
from bench.results import Table, record
from lambda_fn.model import Model
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from train.backbone import BACKBONES

THREADS = (1, 2)


def latency_ms(variant: Path, x, threads: int, runs: int) -> float:
    model = Model(variant, threads=threads)
    model.logits(x)  # the first invoke prepares the delegate
    return round(median_ms(timed(model.logits, x, repeat=runs)), 1)


def cheapest(latencies: dict[int, float], budget_ms: float) -> tuple[int, float, float] | None:
    """(memory MB, projected ms, $ per million on x86_64) of the cheapest setting within the budget."""
    settings = [(projected_ms(latencies, m), m) for m in MEMORY_MB]
    costs = [(dollars_per_million(ms, m, "x86_64"), m, ms) for ms, m in settings if ms <= budget_ms]
    if not costs:
        return None
    cost, memory, ms = min(costs)
    return memory, round(ms), round(cost, 2)


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
    rows, reference = [], None
    for bundle in args.bundles:
        for variant in sorted((d for d in bundle.iterdir() if (d / "model.tflite").is_file()), key=variant_order):
            meta = json.loads((variant / "model.json").read_text())
            x = Model(variant).input_of(photo.read_bytes(), DEFAULT_MAX_DECODED_BYTES)
            latencies = {t: latency_ms(variant, x, t, args.runs) for t in THREADS}
            correct = sum(p == i.parent.name for p, i in zip(predictions(variant, images), images, strict=True))
            cold = statistics.median(once(python, variant, encoded)[1] for _ in range(args.cold_runs)) * 1000
            bill = cheapest(latencies, args.budget_ms)
            reference = reference or (latencies[1], bill)
            rows.append(
                [
                    meta["backbone"],
                    meta["input"]["size"],
                    variant.name,
                    BACKBONES[meta["backbone"]].gflop,
                    round(correct / len(images), 4),
                    *latencies.values(),
                    round(reference[0] / latencies[1], 1),
                    round((variant / "model.tflite").stat().st_size / 1e6, 1),
                    round(cold),
                    *(bill if bill else ("-", "-", "-")),
                    round(bill[2] / reference[1][2], 2) if bill and reference[1] else "-",
                ]
            )
    columns = ["backbone", "input", "variant", "GFLOP", "test accuracy", "1 thread (ms)", "2 threads (ms)"]
    columns += ["speed-up, 1 thread", "model (MB)", "cold start to first prediction (ms)"]
    columns += [f"cheapest memory within {args.budget_ms:g} ms (MB)", "its latency (ms)", "$ per million"]
    columns += ["cost vs reference"]
    notes = [
        f"{len(images)} test images from {DATA}; latency on one validation photo, median of {args.runs} invokes",
        "the bill is bench.bill's projection (x86_64, Lambda's per-request fee included): Lambda's CPUs are not ours",
    ]
    record(__spec__.name, argv, "The backbones side by side", [Table(columns, rows)], notes)


def variant_order(variant: Path) -> tuple:
    """float32 first (the reference), then the smaller variants by name."""
    return (variant.name != "float32", variant.name)


if __name__ == "__main__":
    main()
