"""Cold start: a fresh process (the Lambda's TensorFlow-free Python) to its first prediction, per variant.

    python -m bench.cold_start [--bundle artifacts/bundle] [--runs 10]

Measures process start, imports, interpreter load and the first invoke,
as Lambda's init plus first request would (minus the container's own start).
"""

import base64
import os
import statistics
import subprocess
import time

from bench.common import REPO, parser, python_for_serving, sample_images
from bench.results import Field, Table, model_of, record

CHILD = """
import base64, sys, time
from lambda_fn.app import lambda_handler
loaded = time.time()
answer = lambda_handler({"image": sys.stdin.read()}, None)
assert "label" in answer, answer
print(loaded, time.time())
"""


FIELDS = [
    Field("variant", "variant"),
    Field("model_mb", "model file (MB)", "MB"),
    Field("loaded_ms", "to handler loaded (ms)", "ms"),
    Field("answered_ms", "to first prediction (ms)", "ms"),
]


def once(python, variant_dir, image_b64) -> tuple[float, float]:
    env = {**os.environ, "MODEL_DIR": str(variant_dir), "PYTHONPATH": str(REPO)}
    started = time.time()
    out = subprocess.run(
        [str(python), "-c", CHILD], input=image_b64, capture_output=True, text=True, env=env, cwd=REPO, check=True
    ).stdout.split()
    loaded, answered = map(float, out[-2:])
    return loaded - started, answered - started


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args(argv)
    python = python_for_serving()
    image = base64.b64encode(sample_images(1)[0].read_bytes()).decode()
    records = []
    for variant in sorted(d for d in args.bundle.iterdir() if (d / "model.tflite").is_file()):
        runs = [once(python, variant, image) for _ in range(args.runs)]
        size = (variant / "model.tflite").stat().st_size / 1e6
        loaded, answered = (round(statistics.median(r[k] for r in runs) * 1000) for k in (0, 1))
        records.append(
            {"variant": variant.name, "model_mb": round(size, 1), "loaded_ms": loaded, "answered_ms": answered}
        )
    where = python.relative_to(REPO) if python.is_relative_to(REPO) else python
    notes = [f"median of {args.runs} fresh processes of {where}"]
    title = "Cold start: a fresh process to its first prediction"
    model = model_of(args.bundle / "float32")
    record(__spec__.name, argv, title, [Table("variants", FIELDS, records)], notes, model)


if __name__ == "__main__":
    main()
