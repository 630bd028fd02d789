"""Photos a second that one function instance classifies from S3, as S3 Batch Operations invokes it.

    python -m bench.s3 --bundle artifacts/bundle [--photos 48] [--rounds 3]

Validation photos are put in a real S3 on 127.0.0.1 (Ceph's radosgw: harness/s3.py) and the function, in
this process as one Lambda instance is, answers a Batch Operations task for each, one after another: first
the S3 read alone (lambda_fn.objects.read: GetObject, the capped read), then the whole task through
lambda_fn.app.lambda_handler (read, decode, inference, the answer). A first round warms the S3 client and the
interpreter and is not counted. radosgw shares this machine's cores with the function, so the read is an
upper bound for S3 in the function's own region, not a measurement of it; docs/s3.md sizes a catalog from it.
"""

import importlib
import os
import statistics
import time
from urllib.parse import quote_plus

from bench.common import parser, percentile_ms, sample_images
from bench.results import Field, Table, model_of, record
from harness import s3


def batch_event(key: str) -> dict:
    """A Batch Operations task (schema 2.0) for one object of the test bucket."""
    task = {"taskId": key, "s3Key": quote_plus(key), "s3VersionId": None, "s3Bucket": s3.TEST_BUCKET}
    return {"invocationSchemaVersion": "2.0", "invocationId": "bench", "job": {"id": "bench"}, "tasks": [task]}


def timed_rounds(step, keys: list[str], rounds: int) -> list[float]:
    """Seconds per photo over the rounds after a first, uncounted one."""
    seconds = []
    for round_ in range(rounds + 1):
        for key in keys:
            started = time.perf_counter()
            step(key)
            if round_:
                seconds.append(time.perf_counter() - started)
    return seconds


FIELDS = [
    Field("step", "step, one photo at a time"),
    Field("median_ms", "median (ms)", "ms"),
    Field("p95_ms", "p95 (ms)", "ms"),
    Field("photos_per_s", "photos/s per instance", "photos/s"),
]


def step_record(step: str, seconds: list[float]) -> dict:
    return {
        "step": step,
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "p95_ms": percentile_ms(seconds, 0.95),
        "photos_per_s": round(len(seconds) / sum(seconds), 1),
    }


def main(argv=None):
    p = parser(__doc__, one_variant=True)
    p.add_argument("--photos", type=int, default=48)
    p.add_argument("--rounds", type=int, default=3, help="counted rounds over the photos")
    args = p.parse_args(argv)
    photos = sample_images(args.photos)
    variant = args.bundle / args.variant
    with s3.s3_server() as server:
        client = server.client()
        client.create_bucket(Bucket=s3.TEST_BUCKET)
        for photo in photos:
            client.put_object(Bucket=s3.TEST_BUCKET, Key=f"photos/{photo.name}", Body=photo.read_bytes())
        os.environ.update(server.environment(), MODEL_DIR=str(variant), CATALOG_BUCKET=s3.TEST_BUCKET)
        app = importlib.import_module("lambda_fn.app")  # reads its settings at import, as in Lambda
        from lambda_fn.objects import ObjectRef, read

        keys = [f"photos/{photo.name}" for photo in photos]
        reads = timed_rounds(
            lambda key: read(ObjectRef(s3.TEST_BUCKET, key), app.SETTINGS.fetch, s3.TEST_BUCKET), keys, args.rounds
        )

        def task(key: str) -> None:
            (result,) = app.lambda_handler(batch_event(key), None)["results"]
            assert result["resultCode"] == "Succeeded", result

        tasks = timed_rounds(task, keys, args.rounds)
    size = round(statistics.mean(photo.stat().st_size for photo in photos) / 1024)
    steps = [
        step_record("S3 read (GetObject, capped)", reads),
        step_record("Batch Operations task (read, decode, inference)", tasks),
    ]
    notes = [
        f"{len(photos)} validation photos of {size} KB on average, {args.rounds} counted rounds; radosgw and the "
        f"function on the same {os.cpu_count()} cores; {app.SETTINGS.threads} interpreter threads",
    ]
    title = "Photos from S3, per function instance"
    record(__spec__.name, argv, title, [Table("steps", FIELDS, steps)], notes, model_of(variant))


if __name__ == "__main__":
    main()
