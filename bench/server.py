"""End to end through the local server, and the server under load, with images served on 127.0.0.1.

    .venv/bin/python -m bench.server [--variant float32] [--load-requests 200] [--soak-requests 1000]

1. Warm request -> response for {"url": ...}, and its split into fetch,
   preprocess and inference (from the server's own structured log lines).
2. 4 and 16 concurrent clients, a fixed number of requests each run:
   throughput, p50/p95 latency, errors.
3. The server's resident memory before and after 1,000 more requests.
"""

import argparse
import json
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from bench.common import BUNDLE, DATA, machine, percentile_ms, python_for_serving, rss_mb
from harness.servers import file_server, local_server

INVOKE = "/2015-03-31/functions/function/invocations"


def classify(server: str, url: str) -> tuple[float, bool]:
    request = urllib.request.Request(server + INVOKE, data=json.dumps({"url": url}).encode(), method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        ok = "label" in json.loads(response.read())
    return time.perf_counter() - started, ok


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
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--variant", default="float32")
    p.add_argument("--warm-requests", type=int, default=50)
    p.add_argument("--load-requests", type=int, default=200)
    p.add_argument("--soak-requests", type=int, default=1000)
    args = p.parse_args(argv)
    images = sorted((DATA / "validation").rglob("*.jpg"))
    with file_server(DATA / "validation") as files, local_server(BUNDLE / args.variant, python_for_serving()) as local:
        server, pid = local.url, local.pid
        urls = [f"{files}/{p.relative_to(DATA / 'validation').as_posix()}" for p in images]
        for url in urls[:5]:
            classify(server, url)
        skip = len(local.lines)
        warm = [classify(server, url)[0] for url in urls[5 : 5 + args.warm_requests]]
        lines = [json.loads(line) for line in local.lines[skip:] if line.startswith("{")]
        print(f"machine: {machine()}; variant {args.variant}; server: lambda_fn.local_server (TensorFlow-free venv)")
        split = {k: statistics.median(line[f"{k}_ms"] for line in lines) for k in ("fetch", "preprocess", "inference")}
        print(
            f"1. warm end to end, median of {len(warm)}: {statistics.median(warm) * 1000:.1f} ms, of which "
            + ", ".join(f"{k} {ms:.1f} ms" for k, ms in split.items())
            + "; the rest is HTTP and JSON"
        )
        print("2. load")
        print("| clients | requests | throughput (req/s) | p50 (ms) | p95 (ms) | errors |")
        print("| --- | --- | --- | --- | --- | --- |")
        for clients in (4, 16):
            row = load(server, (urls * 10)[: args.load_requests], clients)
            columns = ("clients", "requests", "throughput", "p50", "p95", "errors")
            print("| " + " | ".join(str(row[c]) for c in columns) + " |")
        before = rss_mb(pid)
        soak = load(server, (urls * 10)[: args.soak_requests], 4)
        after = rss_mb(pid)
        print(
            f"3. memory: {before} MB before, {after} MB after {soak['requests']} more requests "
            f"({soak['errors']} errors, {soak['throughput']} req/s)"
        )


if __name__ == "__main__":
    main()
