"""The bill: what a million classified images cost on Lambda, from the warm latencies bench.inference measured.

    python -m bench.bill [--budget-ms 300]

Lambda gives a function CPU in proportion to its memory: one vCPU per 1,769 MB. The latency at each memory
size is projected from the measured ones: with v vCPUs, an interpreter on t threads takes its measured t-thread
latency times max(1, t / v) (fewer vCPUs than threads share them), and the faster of 1 and all threads is
taken. An architecture is priced only where the latencies were measured on Lambda's class of CPU for it
(project.cpu_class: x86_64 with AVX2 and no AVX-512; arm64 a Graviton2): XNNPACK's kernels differ by class, and
on AVX2 int8-dynamic is slower than float32 where AVX-512 with VNNI and AMX make it the fastest. The duration is
billed per started millisecond; each request adds its price. API Gateway's HTTP API adds its own per-request
price to every image sent one per request, or once per ten images in a `urls` batch (not included here).
"""

import argparse
import math
from pathlib import Path

from bench.results import RESULTS, Field, Result, Table, load, record
from project.cpu_class import LAMBDA, describe, is_lambdas

# AWS Lambda's public prices (us-east-1, the first tier: up to 6 billion GB-s a month), as written down from
# aws.amazon.com/lambda/pricing and aws.amazon.com/api-gateway/pricing in 2026; this machine cannot re-read them.
PRICES = {"x86_64 GB-s": 0.0000166667, "arm64 GB-s": 0.0000133334, "request": 0.20 / 1e6, "http api": 1.00 / 1e6}
PRICES_SOURCE = "AWS's Lambda and API Gateway pricing pages, us-east-1, first tier, as written down in 2026"
MB_PER_VCPU = 1769
MEMORY_MB = (1024, 1536, 2048, 3008, 4096)
LATENCY = "latency"  # the name of bench.inference's records the bill reads
NOT_MEASURED = "not measured on Lambda's class of CPU"


def projected_ms(measured: dict[int, float], memory_mb: int) -> float:
    """The latency with this memory's vCPUs: each thread count's, slowed where threads outnumber vCPUs."""
    vcpus = memory_mb / MB_PER_VCPU
    return min(ms * max(1.0, threads / vcpus) for threads, ms in measured.items())


def dollars_per_million(ms: float, memory_mb: int, arch: str) -> float:
    billed_s = math.ceil(ms) / 1000
    return 1e6 * (billed_s * memory_mb / 1024 * PRICES[f"{arch} GB-s"] + PRICES["request"])


def lambda_dollars(ms: float, memory_mb: int, arch: str, cpu_class: dict) -> float | None:
    """$ per million images on Lambda's arch, where ms was measured on Lambda's class of CPU for it; else None."""
    return dollars_per_million(ms, memory_mb, arch) if is_lambdas(cpu_class, arch) else None


FIELDS = [
    Field("variant", "variant"),
    Field("memory_mb", "memory (MB)", "MB"),
    Field("vcpus", "vCPUs", "vCPUs"),
    Field("projected_ms", "projected inference (ms)", "ms"),
    *(Field(f"{arch}_dollars", f"{arch} $ per million", "USD", absent=NOT_MEASURED) for arch in LAMBDA),
]


def measured_ms(inference: Result) -> dict[str, dict[int, float]]:
    """LiteRT's median latency per served variant and thread count, from bench.inference's records."""
    latency = inference.records[LATENCY]
    litert = [item for item in latency.items if item["engine"] == "LiteRT"]
    by_variant: dict[str, dict[int, float]] = {}
    for item in litert:
        by_variant.setdefault(item["model"], {})[item["threads"]] = item["median_ms"]
    return by_variant


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-ms", type=float, default=300, help="the answer time a setting must meet")
    p.add_argument("--results", type=Path, default=RESULTS, help="reads inference.json there, writes bill.json there")
    args = p.parse_args(argv)
    inference = load(args.results / "inference.json")
    cpu_class = inference.machine["cpu_class"]
    records, settings = [], []
    for variant, by_threads in measured_ms(inference).items():
        for memory in MEMORY_MB:
            ms = projected_ms(by_threads, memory)
            dollars = {arch: lambda_dollars(ms, memory, arch, cpu_class) for arch in LAMBDA}
            records.append(
                {"variant": variant, "memory_mb": memory, "vcpus": round(memory / MB_PER_VCPU, 2)}
                | {"projected_ms": round(ms)}
                | {f"{arch}_dollars": None if d is None else round(d, 2) for arch, d in dollars.items()}
            )
            settings += [(d, variant, memory, arch, ms) for arch, d in dollars.items() if d is not None]
    notes = [f"prices: {PRICES_SOURCE}: " + ", ".join(f"{k} ${v:.10g}" for k, v in PRICES.items())]
    notes.append(
        f"latencies from bench.inference ({inference.when}), inference alone: fetching and decoding add to it; "
        f"measured on {describe(cpu_class)}"
    )
    notes.append(cheapest(settings, args.budget_ms, cpu_class))
    title = "The bill: a million images on Lambda (projected)"
    # the figures are the inference result's: its machine, not the one this arithmetic ran on
    tables = [Table("settings", FIELDS, records)]
    record(__spec__.name, argv, title, tables, notes, inference.model, inference.machine, args.results)


def cheapest(settings: list[tuple], budget_ms: float, cpu_class: dict) -> str:
    """The sentence naming the cheapest priced setting within the budget, or why there is none."""
    if not settings:
        return (
            f"{NOT_MEASURED}: the latencies were measured on {describe(cpu_class)}; run python -m bench.inference "
            "on x86_64 with AVX2 and no AVX-512 (or on a Graviton2 for arm64), then python -m bench.bill"
        )
    within = [s for s in settings if s[4] <= budget_ms]
    if not within:
        return f"no priced setting up to {MEMORY_MB[-1]} MB answers within {budget_ms:g} ms by this projection"
    cost, variant, memory, arch, ms = min(within)
    return (
        f"the cheapest setting that answers within {budget_ms:g} ms: {variant} at {memory} MB on {arch}, "
        f"about {ms:.0f} ms, ${cost:.2f} per million images"
    )


if __name__ == "__main__":
    main()
