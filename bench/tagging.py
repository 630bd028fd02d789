"""Tagging a catalog (python -m catalog.tag) against the local server on 127.0.0.1, and the projection for
the deployed stack.

    .venv/bin/python -m bench.tagging [--bundle artifacts/bundle] [--variant float32] [--images 64]

1. images/s at --jobs 1, 4 and 16: files as raw bodies over the API route, and URLs (from a file server on
   127.0.0.1) in {"urls"} batches of 10 through the invocations route. One server process, so the figure is
   bounded by its inference (LiteRT, 2 threads), not by the client.
2. The client's own cost per image: the same runs against a server that answers every request at once with a
   fixed prediction (what is left is the client: reading files, HTTP, retries' bookkeeping, writing rows).
3. The projection for a million images through the deployed stack, at the API's default throttle (20
   requests/s) and a raised one, from the warm per-image time measured here and Lambda's published prices.
"""

import json
import tempfile
import time
from contextlib import redirect_stderr
from io import StringIO
from pathlib import Path

from bench.bill import NOT_MEASURED, PRICES
from bench.common import parser, python_for_serving, sample_images
from bench.results import Field, Table, model_of, record
from catalog import client, tag
from harness.servers import Quiet, file_server, local_server, reply, serving
from project.cpu_class import LAMBDA, describe, is_lambdas, this_machine


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


RATES = [
    Field("jobs", "--jobs", "requests at once"),
    Field("files", "files, raw bodies over /predict, images/s", "images/s"),
    Field("urls", "URLs in batches of 10, images/s", "images/s"),
]
MILLION = [
    Field("rate", "a million images at (requests/s)", "requests/s"),
    Field("wall_h", "wall time (h)", "h"),
    Field("instances", "Lambda instances busy", "instances"),
    *(Field(f"{arch}_dollars", f"{arch} $", "USD", absent=NOT_MEASURED) for arch in LAMBDA),
]


def main(argv=None):
    p = parser(__doc__, one_variant=True)
    p.add_argument("--images", type=int, default=64)
    args = p.parse_args(argv)
    images = sample_images(args.images)
    rates = []
    with (
        file_server(images[0].parents[1]) as files,
        local_server(args.bundle / args.variant, python_for_serving()) as local,
    ):
        url_list = Path(tempfile.mkdtemp()) / "urls.txt"
        url_list.write_text("\n".join(f"{files}/{i.parent.name}/{i.name}" for i in images) + "\n")
        for jobs in (1, 4, 16):
            files_rate = images_per_second([str(i) for i in images], ["--api", local.url], jobs)
            urls_rate = images_per_second([str(url_list)], ["--endpoint", local.url], jobs)
            rates.append({"jobs": jobs, "files": round(files_rate, 2), "urls": round(urls_rate, 2)})
        probe = client.Target(endpoint=local.url).urls([f"{files}/{images[0].parent.name}/{images[0].name}"])
    Instant.answer = json.dumps(probe).encode()
    with serving(Instant) as stub:
        overhead = images_per_second([str(i) for i in images] * 4, ["--api", stub], 1)
    per_image = (
        1 / rates[0]["files"]
    )  # one request at a time: the warm time of one image, as one Lambda instance has it
    cpu = this_machine()
    projection = Table(
        "million",
        MILLION,
        [million_images(rate, per_image, cpu) for rate in (20, 200, 1000)],
        "A million images through the deployed stack (2,048 MB; Lambda and HTTP API prices: bench.bill)",
    )
    notes = [
        f"{len(images)} images from the validation split; one local server process (LiteRT, 2 threads)",
        f"the client alone (a server that answers at once, --jobs 1): {1000 / overhead:.1f} ms an image",
        f"warm seconds an image, one at a time: {per_image:.3f}, on {describe(cpu)}",
    ]
    title = "Tagging a catalog"
    model = model_of(args.bundle / args.variant)
    record(__spec__.name, argv, title, [Table("rates", RATES, rates), projection], notes, model)


def million_images(rate: float, per_image: float, cpu: dict, memory_gb: float = 2.0) -> dict:
    """A million images at rate requests/s, each taking per_image seconds; priced per arch only where per_image was
    measured on Lambda's class of CPU for it (cpu)."""
    compute = 1e6 * per_image * memory_gb
    fixed = 1e6 * (PRICES["request"] + PRICES["http api"])
    dollars = {
        f"{arch}_dollars": round(compute * PRICES[f"{arch} GB-s"] + fixed, 2) if is_lambdas(cpu, arch) else None
        for arch in LAMBDA
    }
    return {"rate": rate, "wall_h": round(1e6 / rate / 3600, 1), "instances": round(rate * per_image)} | dollars


if __name__ == "__main__":
    main()
