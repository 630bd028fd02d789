"""Tagging a catalog (python -m lambda_fn.tag) against the local server on 127.0.0.1, and the projection for
the deployed stack.

    .venv/bin/python -m bench.tagging [--bundle artifacts/bundle/float32] [--images 64]

1. images/s at --jobs 1, 4 and 16: files as raw bodies over the API route, and URLs (from a file server on
   127.0.0.1) in {"urls"} batches of 10 through the invocations route. One server process, so the figure is
   bounded by its inference (LiteRT, 2 threads), not by the client.
2. The client's own cost per image: the same runs against a server that answers every request at once with a
   fixed prediction (what is left is the client: reading files, HTTP, retries' bookkeeping, writing rows).
3. The projection for a million images through the deployed stack, at the API's default throttle (20
   requests/s) and a raised one, from the warm per-image time measured here and Lambda's published prices.
"""

import argparse
import json
import tempfile
import time
from contextlib import redirect_stderr
from io import StringIO
from pathlib import Path

from bench.common import BUNDLE, machine, python_for_serving, sample_images
from harness.servers import Quiet, file_server, local_server, reply, serving
from lambda_fn import tag

# AWS Lambda and API Gateway list prices, us-east-1, as published on their pricing pages (read 2026-12-02 from
# what this project recorded; check them before you budget): Lambda compute per GB-second for the first 6
# billion GB-s a month, Lambda requests per million, HTTP API requests per million (the first 300 million).
PRICES = {"x86_64 GB-s": 0.0000166667, "arm64 GB-s": 0.0000133334, "request": 0.20 / 1e6, "http api": 1.00 / 1e6}


class Instant(Quiet):
    """Answers every request at once with one fixed prediction: the client's cost alone remains."""

    protocol_version = "HTTP/1.1"
    answer = b""  # a real answer of the function, taken from the local server

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        reply(self, 200, self.answer)


def images_per_second(inputs: list[str], where: list[str], jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, redirect_stderr(StringIO()):
        started = time.perf_counter()
        tag.main([*inputs, *where, "--jobs", str(jobs), "--out", f"{tmp}/out.jsonl"])
        elapsed = time.perf_counter() - started
        rows = [json.loads(line) for line in Path(f"{tmp}/out.jsonl").read_text().splitlines()]
    assert all(r["error_code"] is None for r in rows), [r for r in rows if r["error_code"]][:2]
    return len(rows) / elapsed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=BUNDLE / "float32")
    p.add_argument("--images", type=int, default=64)
    args = p.parse_args(argv)
    images = sample_images(args.images)
    model = json.loads((args.bundle / "model.json").read_text())["name"]
    print(f"machine: {machine()}; model: {model}; {len(images)} images from the validation split\n")
    rows = {}
    with file_server(images[0].parents[1]) as files, local_server(args.bundle, python_for_serving()) as local:
        server = local.url
        url_list = Path(tempfile.mkdtemp()) / "urls.txt"
        url_list.write_text("\n".join(f"{files}/{i.parent.name}/{i.name}" for i in images) + "\n")
        for jobs in (1, 4, 16):
            rows[jobs] = (
                images_per_second([str(i) for i in images], ["--api", server], jobs),
                images_per_second([str(url_list)], ["--endpoint", server], jobs),
            )
        probe = tag.Target(endpoint=server).urls([f"{files}/{images[0].parent.name}/{images[0].name}"])
    Instant.answer = json.dumps(probe).encode()
    with serving(Instant) as stub:
        overhead = images_per_second([str(i) for i in images] * 4, ["--api", stub], 1)
    print("| `--jobs` | files, raw bodies over `/predict`, images/s | URLs in batches of 10, images/s |")
    print("| --- | --- | --- |")
    for jobs, (files_rate, urls_rate) in rows.items():
        print(f"| {jobs} | {files_rate:.2f} | {urls_rate:.2f} |")
    print(f"\nthe client alone (a server that answers at once, --jobs 1): {1000 / overhead:.1f} ms an image")
    per_image = 1 / rows[1][0]  # one request at a time: the warm time of one image, as one Lambda instance has it
    print(f"\nwarm seconds an image, one at a time: {per_image:.3f}\n")
    print("| a million images | rate (requests/s) | wall time | Lambda instances busy | x86_64 $ | arm64 $ |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rate in (20, 200, 1000):
        hours = 1e6 / rate / 3600
        busy = rate * per_image
        for memory_gb in (2.0,):
            compute = 1e6 * per_image * memory_gb
            fixed = 1e6 * (PRICES["request"] + PRICES["http api"])
            x86, arm = compute * PRICES["x86_64 GB-s"] + fixed, compute * PRICES["arm64 GB-s"] + fixed
            print(f"| 1,000,000 | {rate} | {hours:.1f} h | {busy:.0f} | {x86:.2f} | {arm:.2f} |")


if __name__ == "__main__":
    main()
