"""The bill: what a million classified images cost on Lambda, from the warm latencies bench.inference measured.

    python -m bench.bill [--budget-ms 300]

Lambda gives a function CPU in proportion to its memory: one vCPU per 1,769 MB. The latency at each memory
size is projected from the measured ones: with v vCPUs, an interpreter on t threads takes its measured t-thread
latency times max(1, t / v) (fewer vCPUs than threads share them), and the faster of 1 and all threads is
taken. That is a projection: Lambda's CPUs are not ours, and arm64 (Graviton) is priced here at the x86_64
latency, which it was not measured at. The duration is billed per started millisecond; each request adds its
price. API Gateway's HTTP API adds its own per-request price to every image sent one per request, or once per
ten images in a `urls` batch (not included here).
"""

import argparse
import json
import math

from bench.results import RESULTS, Table, record

# AWS Lambda's public prices (us-east-1, the first tier: up to 6 billion GB-s a month), as written down from
# aws.amazon.com/lambda/pricing and aws.amazon.com/api-gateway/pricing in 2026; this machine cannot re-read them.
PRICES = {"x86_64 GB-s": 0.0000166667, "arm64 GB-s": 0.0000133334, "request": 0.20 / 1e6, "http api": 1.00 / 1e6}
PRICES_SOURCE = "AWS's Lambda and API Gateway pricing pages, us-east-1, first tier, as written down in 2026"
MB_PER_VCPU = 1769
MEMORY_MB = (1024, 1536, 2048, 3008, 4096)


def projected_ms(measured: dict[int, float], memory_mb: int) -> float:
    """The latency with this memory's vCPUs: each thread count's, slowed where threads outnumber vCPUs."""
    vcpus = memory_mb / MB_PER_VCPU
    return min(ms * max(1.0, threads / vcpus) for threads, ms in measured.items())


def dollars_per_million(ms: float, memory_mb: int, arch: str) -> float:
    billed_s = math.ceil(ms) / 1000
    return 1e6 * (billed_s * memory_mb / 1024 * PRICES[f"{arch} GB-s"] + PRICES["request"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-ms", type=float, default=300, help="the answer time a setting must meet")
    args = p.parse_args(argv)
    inference = json.loads((RESULTS / "inference.json").read_text())
    (table,) = inference["tables"]
    column = {name: k for k, name in enumerate(table["columns"])}
    measured: dict[str, dict[int, float]] = {}
    for r in table["rows"]:
        if r[column["engine"]] == "LiteRT":
            measured.setdefault(r[column["model"]], {})[r[column["threads"]]] = r[column["median (ms)"]]
    rows, settings = [], []
    for variant, by_threads in measured.items():
        for memory in MEMORY_MB:
            ms = projected_ms(by_threads, memory)
            x86, arm = (dollars_per_million(ms, memory, arch) for arch in ("x86_64", "arm64"))
            rows.append([variant, memory, round(memory / MB_PER_VCPU, 2), round(ms), round(x86, 2), round(arm, 2)])
            settings += [(cost, variant, memory, arch, ms) for cost, arch in ((x86, "x86_64"), (arm, "arm64"))]
    columns = [
        "variant",
        "memory (MB)",
        "vCPUs",
        "projected inference (ms)",
        "x86_64 $ per million",
        "arm64 $ per million",
    ]
    within = [s for s in settings if s[4] <= args.budget_ms]
    notes = [f"prices: {PRICES_SOURCE}: " + ", ".join(f"{k} ${v:.10g}" for k, v in PRICES.items())]
    notes.append(
        f"latencies from bench.inference ({inference['when']}), inference alone: fetching and decoding add to it"
    )
    if within:
        cost, variant, memory, arch, ms = min(within)
        notes.append(
            f"the cheapest setting that answers within {args.budget_ms:g} ms: {variant} at {memory} MB on {arch}, "
            f"about {ms:.0f} ms, ${cost:.2f} per million images (arm64's speed assumed, not measured)"
        )
    else:
        notes.append(f"no setting up to {MEMORY_MB[-1]} MB answers within {args.budget_ms:g} ms by this projection")
    title = "The bill: a million images on Lambda (projected)"
    tables = [Table(columns, rows)]
    # the figures are the inference result's: its machine, not the one this arithmetic ran on
    record(__spec__.name, argv, title, tables, notes, inference["model"], inference["machine"])


if __name__ == "__main__":
    main()
