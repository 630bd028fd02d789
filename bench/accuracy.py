"""Test accuracy of every served variant, through the Lambda's own preprocessing and interpreter.

    python -m bench.accuracy [--bundle artifacts/bundle]      # runs without TensorFlow

Each test image's file bytes go through lambda_fn.preprocess and lambda_fn.model.Model, exactly as a
request's would. float32 is the reference the other variants' agreement is counted against.
"""

from pathlib import Path

from bench.common import DATA, parser
from bench.results import Field, Table, model_of, record
from lambda_fn.model import Model
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES

FIELDS = [
    Field("variant", "variant"),
    Field("test_accuracy", "test accuracy", "fraction"),
    Field("agreement", "agreement with float32", "fraction", "{:.2%}"),
]


def predictions(variant: Path, images: list[Path]) -> list[str]:
    model = Model(variant)
    return [
        model.labels[int(model.logits(model.input_of(p.read_bytes(), DEFAULT_MAX_DECODED_BYTES)).argmax())]
        for p in images
    ]


def main(argv=None):
    p = parser(__doc__)
    args = p.parse_args(argv)
    images = sorted((DATA / "test").rglob("*.jpg"))
    variants = sorted(
        (d for d in args.bundle.iterdir() if (d / "model.tflite").is_file()), key=lambda d: d.name != "float32"
    )
    reference, records = None, []
    for variant in variants:  # float32 first: the others are compared with it
        predicted = predictions(variant, images)
        reference = reference or predicted
        accuracy = sum(p == path.parent.name for p, path in zip(predicted, images, strict=True)) / len(images)
        agreement = sum(a == b for a, b in zip(predicted, reference, strict=True)) / len(images)
        records.append({"variant": variant.name, "test_accuracy": round(accuracy, 4), "agreement": agreement})
    table = Table("variants", FIELDS, records)
    notes = [f"{len(images)} test images from {DATA}"]
    record(__spec__.name, argv, "Accuracy of the served variants", [table], notes, model_of(args.bundle / "float32"))


if __name__ == "__main__":
    main()
