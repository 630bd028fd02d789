"""How far the answers can be trusted: calibration and selective accuracy of every served variant.

    python -m bench.calibration [--bundle artifacts/bundle]      # runs without TensorFlow

Each validation and test image goes through the Lambda's own preprocessing and interpreter
(lambda_fn.model.Model); its logits become probabilities by the temperature the variant's model.json holds
(lambda_fn.confidence), raw (T = 1) beside them. Expected calibration error: 15 equal-width bins of the top
probability; beside it, its noise floor: the ECE a perfectly calibrated model would score on the same
confidences and as few images (convert/calibrate.py ece_noise_floor). "Confident" is the answer the service
publishes as such: a calibrated top probability at or over model.json's min_confidence, proven at
conversion (a one-sided 95% bound on its precision >= 98%, convert/calibrate.py; the figures here, on
validation). Accuracy at 80% and 90% coverage: of the most confident 80% and 90% of the answers.
Validation is where the temperature and the threshold were fitted, so test is the honest
figure.

Measured beside float32, the two alternatives the service does not use unless they pay: vector scaling (a
scale and a bias per class, 20 parameters instead of one, fitted on the validation logits by the same
negative log-likelihood, its own threshold chosen the same way), and test-time augmentation (each image and its
mirror image, the two calibrated probabilities averaged, same temperature and threshold: twice the inference).
"""

from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import DATA, parser
from bench.results import Field, Table, model_of, record
from convert.calibrate import min_confidence_for, report
from lambda_fn.confidence import calibrated
from lambda_fn.model import Model
from lambda_fn.preprocess import decode_image
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES

FIELDS = [
    Field("variant", "variant"),
    Field("split", "split"),
    Field("images", "images", "images"),
    Field("accuracy", "accuracy", "fraction"),
    Field("ece_raw", "ECE raw", "fraction"),
    Field("ece_calibrated", "ECE calibrated", "fraction"),
    Field("ece_noise_floor", "ECE noise floor", "fraction"),
    Field("confident_share", "confident: share", "fraction", "{:.1%}"),
    Field("confident_accuracy", "confident: accuracy", "fraction", "{:.1%}", absent="-"),
    Field("accuracy_at_80", "accuracy at 80% coverage", "fraction", "{:.1%}"),
    Field("accuracy_at_90", "accuracy at 90% coverage", "fraction", "{:.1%}"),
]


def split_logits(model: Model, split: str, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(logits of shape images x views x classes, true label indices) of every image of the split, one request's
    path each; views: the image, and its mirror image when mirrored."""
    images = sorted((DATA / split).rglob("*.jpg"))
    logits = []
    for path in images:
        decoded = decode_image(path.read_bytes(), DEFAULT_MAX_DECODED_BYTES, at_least=model.input.size)
        views = [decoded, decoded.transpose(Image.Transpose.FLIP_LEFT_RIGHT)] if mirrored else [decoded]
        logits.append([model.logits(model.input.of_image(view))[0] for view in views])
    return np.array(logits), np.array([model.labels.index(p.parent.name) for p in images])


def row(name: str, split: str, raw: dict, fitted: dict) -> dict:
    confident_accuracy = fitted["confident_accuracy"]
    return {
        "variant": name,
        "split": split,
        "images": fitted["images"],
        "accuracy": round(fitted["accuracy"], 4),
        "ece_raw": round(raw["ece"], 4),
        "ece_calibrated": round(fitted["ece"], 4),
        "ece_noise_floor": round(fitted["ece_noise_floor"], 4),
        "confident_share": round(fitted["confident_coverage"], 4),
        "confident_accuracy": None if confident_accuracy is None else round(confident_accuracy, 4),
        "accuracy_at_80": round(fitted["accuracy_at_80"], 4),
        "accuracy_at_90": round(fitted["accuracy_at_90"], 4),
    }


def fit_vector_scaling(logits: np.ndarray, labels: np.ndarray, steps: int = 3000, rate: float = 0.05):
    """(scale, bias) per class minimising the NLL of softmax(logits * scale + bias), by gradient descent."""
    scale, bias = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
    for _ in range(steps):
        gradient = calibrated(logits * scale + bias, 1.0)
        gradient[np.arange(len(labels)), labels] -= 1
        gradient /= len(labels)
        scale -= rate * (gradient * logits).sum(0)
        bias -= rate * gradient.sum(0)
    return scale, bias


def vector_scaling_rows(plain: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """float32 with vector scaling fitted on its validation logits: validation and test."""
    scale, bias = fit_vector_scaling(*plain["validation"])
    scaled = {split: (calibrated(logits * scale + bias, 1.0), labels) for split, (logits, labels) in plain.items()}
    threshold = min_confidence_for(*scaled["validation"])
    return [
        row(
            "float32, vector scaling",
            split,
            report(calibrated(plain[split][0], 1.0), labels),
            report(p, labels, threshold),
        )
        for split, (p, labels) in scaled.items()
    ]


def rows_of(variant: Path) -> tuple[list[dict], str]:
    """The variant's rows (validation, test; float32 mirrored and vector-scaled too), its temperature, threshold."""
    model = Model(variant)
    rows, plain = [], {}
    for split in ("validation", "test"):
        logits, labels = split_logits(model, split, mirrored=variant.name == "float32")
        plain[split] = (logits[:, 0], labels)
        views = {variant.name: logits[:, :1]} | ({"float32 + mirror (TTA)": logits} if logits.shape[1] > 1 else {})
        for name, chosen in views.items():  # each view's calibrated probabilities, averaged
            raw = report(calibrated(chosen, 1.0).mean(axis=1), labels)
            fitted = report(calibrated(chosen, model.temperature).mean(axis=1), labels, model.min_confidence)
            rows.append(row(name, split, raw, fitted))
    if variant.name == "float32":
        rows += vector_scaling_rows(plain)
    return rows, f"{model.meta['name']}: temperature {model.temperature:g}, min_confidence {model.min_confidence:.4f}"


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    variants = sorted(
        (d for d in args.bundle.iterdir() if (d / "model.tflite").is_file()), key=lambda d: d.name != "float32"
    )
    measured = [rows_of(variant) for variant in variants]
    table = Table("splits", FIELDS, [row for rows, _ in measured for row in rows])
    notes = [note for _, note in measured]
    title = "Answers a catalog can trust: calibration and selective accuracy"
    record(__spec__.name, argv, title, [table], notes, model_of(args.bundle / "float32"))


if __name__ == "__main__":
    main()
