"""End to end through the local server, and the server under load, with images served on 127.0.0.1.

    python -m bench.server [--variant float32] [--load-requests 200] [--soak-requests 1000]

1. Warm request -> response for {"url": ...}, and its split into fetch,
   preprocess and inference (from the server's own structured log lines).
2. 4 and 16 concurrent clients, a fixed number of requests each run:
   throughput, p50/p95 latency, errors.
3. The server's resident memory before and after 1,000 more requests.
"""

import json
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from bench.common import DATA, parser, percentile_ms, python_for_serving, rss_mb
from bench.results import Field, Table, model_of, record
from harness.servers import file_server, local_server

INVOKE = "/2015-03-31/functions/function/invocations"


def classify(server: str, url: str) -> tuple[float, bool]:
    request = urllib.request.Request(server + INVOKE, data=json.dumps({"url": url}).encode(), method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        ok = "label" in json.loads(response.read())
    return time.perf_counter() - started, ok


STEPS = ("fetch", "preprocess", "inference")  # as the function's log line times them (<step>_ms)
WARM = [Field("requests", "warm requests", "requests"), Field("median_ms", "median end to end (ms)", "ms")]
WARM += [Field(f"{step}_ms", f"{step} (ms)", "ms") for step in STEPS]
LOAD = [
    Field("clients", "clients", "clients"),
    Field("requests", "requests", "requests"),
    Field("throughput", "throughput (req/s)", "req/s"),
    Field("p50", "p50 (ms)", "ms"),
    Field("p95", "p95 (ms)", "ms"),
    Field("errors", "errors", "requests"),
]


def load(server: str, urls: list[str], clients: int) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda u: classify(server, u), urls))
    elapsed = time.perf_counter() - started
    latencies = [r[0] for r in results]
    return {
        "clients": clients,
        "requests": len(urls),
        "throughput": round(len(urls) / elapsed, 1),
        "p50": percentile_ms(latencies, 0.5),
        "p95": percentile_ms(latencies, 0.95),
        "errors": sum(not r[1] for r in results),
    }


def main(argv=None):
    p = parser(__doc__, one_variant=True)
    p.add_argument("--warm-requests", type=int, default=50)
    p.add_argument("--load-requests", type=int, default=200)
    p.add_argument("--soak-requests", type=int, default=1000)
    args = p.parse_args(argv)
    images = sorted((DATA / "validation").rglob("*.jpg"))
    with (
        file_server(DATA / "validation") as files,
        local_server(args.bundle / args.variant, python_for_serving()) as local,
    ):
        server, pid = local.url, local.pid
        urls = [f"{files}/{p.relative_to(DATA / 'validation').as_posix()}" for p in images]
        for url in urls[:5]:
            classify(server, url)
        skip = len(local.lines)
        warm = [classify(server, url)[0] for url in urls[5 : 5 + args.warm_requests]]
        lines = [json.loads(line) for line in local.lines[skip:] if line.startswith("{")]
        split = {k: statistics.median(line[f"{k}_ms"] for line in lines) for k in STEPS}
        loads = [load(server, (urls * 10)[: args.load_requests], clients) for clients in (4, 16)]
        before = rss_mb(pid)
        soak = load(server, (urls * 10)[: args.soak_requests], 4)
        after = rss_mb(pid)
    warm_table = Table(
        "warm",
        WARM,
        [
            {"requests": len(warm), "median_ms": round(statistics.median(warm) * 1000, 1)}
            | {f"{k}_ms": round(ms, 1) for k, ms in split.items()}
        ],
        "One request at a time (the rest of end to end is HTTP and JSON)",
    )
    load_table = Table("load", LOAD, loads, "Under load")
    notes = [
        f"memory: {before} MB before, {after} MB after {soak['requests']} more requests "
        f"({soak['errors']} errors, {soak['throughput']} req/s)",
        "the server: lambda_fn.local_server in the TensorFlow-free environment, photos from a file server on 127.0.0.1",
    ]
    title = "End to end through the local server, and under load"
    record(__spec__.name, argv, title, [warm_table, load_table], notes, model_of(args.bundle / args.variant))


if __name__ == "__main__":
    main()
