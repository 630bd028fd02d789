"""Test accuracy of every served variant, through the Lambda's own preprocessing and interpreter.

    .venv-lambda/bin/python -m bench.accuracy      # runs without TensorFlow

Each test image's file bytes go through lambda_fn.preprocess and
lambda_fn.model.Model, exactly as a request's would.
"""

import json

from bench.common import BUNDLE, DATA, machine
from lambda_fn.model import Model
from lambda_fn.preprocess import decode_image


def main():
    images = sorted((DATA / "test").rglob("*.jpg"))
    print(f"machine: {machine()}; {len(images)} test images")
    print("| variant | test accuracy | agreement with float32 |")
    print("| --- | --- | --- |")
    reference = None
    variants = sorted(
        (d for d in BUNDLE.iterdir() if (d / "model.tflite").is_file()), key=lambda d: d.name != "float32"
    )
    for variant in variants:  # float32 first: the others are compared with it
        model = Model(variant)
        predicted = []
        for path in images:
            x = model.input_of(decode_image(path.read_bytes(), 10**8))
            predicted.append(model.labels[int(model.logits(x).argmax())])
        accuracy = sum(p == path.parent.name for p, path in zip(predicted, images, strict=True)) / len(images)
        reference = reference or predicted
        agreement = sum(a == b for a, b in zip(predicted, reference, strict=True)) / len(images)
        print(f"| {variant.name} | {accuracy:.4f} | {agreement:.2%} |")
    print("model:", json.loads((BUNDLE / "float32" / "model.json").read_text())["name"])


if __name__ == "__main__":
    main()
