"""EfficientNet-Lite's Keras port against its PyTorch reference, and what the wrong normalisation costs.

    python -m bench.lite_port [--images 100]     # needs the lite-reference group (torch): make test installs it

The port (train/efficientnet_lite.py) loads the weights packages' state dicts with no torch
(train/torch_weights.py); the reference is the efficientnet-lite-pytorch architecture loading the same file
with torch. Both get real test photos made by the Lambda's own pixels at the native size and the registry's
normalisation; the table gives each variant's largest ImageNet logit difference and top-1 agreement, and how
many of the port's own ImageNet answers survive torchvision's normalisation instead.

The second table is why the normalisation is (x - 127) / 128 and nothing else: a linear probe (pooled
features of the ImageNet weights, softmax regression with its L2 strength chosen on validation) on the
dataset's photos, normalised as the official lite builder does and as torchvision's ImageNet models do
(mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225 of 255). A "fix" to the familiar numbers costs this.
"""

import argparse

import numpy as np

from bench.common import DATA
from bench.results import Field, Table, record
from lambda_fn.preprocess import InputSpec
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from train import efficientnet_lite
from train.backbone import BACKBONES
from train.torch_weights import load_state_dict

TORCHVISION = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))  # ImageNet's mean and std on 0..255
L2 = (1e-4, 1e-3, 1e-2, 1e-1)
PROBE_STEPS = 400


def photos(split: str, per_class: int | None = None) -> tuple[list, np.ndarray]:
    folders = sorted(d for d in (DATA / split).iterdir() if d.is_dir())
    paths = [p for d in folders for p in sorted(d.glob("*.jpg"))[:per_class]]
    return paths, np.array([folders.index(p.parent) for p in paths])


def inputs(paths: list, spec: InputSpec) -> np.ndarray:
    return np.concatenate([spec.model_input(p.read_bytes(), DEFAULT_MAX_DECODED_BYTES) for p in paths])


def reference_logits(variant: str, x: np.ndarray) -> np.ndarray:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(variant)
    model.load_state_dict(torch.load(efficientnet_lite.pth_file(variant), weights_only=True))
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()


PORT = [
    Field("variant", "variant"),
    Field("size", "size", "px"),
    Field("photos", "photos", "images"),
    Field("max_logit_difference", "max abs logit difference", "logit"),
    Field("agreement", "top-1 agreement", "fraction", "{:.1%}"),
    Field("kept", "top-1 kept, torchvision's", "fraction", "{:.1%}"),
]
PROBE = [
    Field("normalisation", "normalisation"),
    Field("validation", "probe validation", "fraction"),
    Field("test", "probe test", "fraction"),
]


def port_row(variant: str, paths: list) -> dict:
    backbone = BACKBONES[variant]
    spec = backbone.input_spec(backbone.size, "bilinear")
    x = inputs(paths, spec)
    model = efficientnet_lite.build(variant, include_top=True)
    efficientnet_lite.assign(model, variant, load_state_dict(efficientnet_lite.pth_file(variant)))
    ours, theirs = np.asarray(model.predict(x, batch_size=16, verbose=0)), reference_logits(variant, x)
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    wrong = np.asarray(model.predict(inputs(paths, torchvision_spec(spec)), batch_size=16, verbose=0))
    kept = float((wrong.argmax(1) == ours.argmax(1)).mean())
    difference = float(f"{np.abs(ours - theirs).max():.2g}")
    return {
        "variant": variant,
        "size": backbone.size,
        "photos": len(paths),
        "max_logit_difference": difference,
        "agreement": round(agreement, 4),
        "kept": round(kept, 4),
    }


def torchvision_spec(spec: InputSpec) -> InputSpec:
    return InputSpec(spec.size, spec.interpolation, *TORCHVISION)


def softmax_regression(x, y, l2: float, classes: int) -> np.ndarray:
    """Full-batch gradient descent with Adam's step on the mean cross-entropy plus l2 x |W|^2."""
    w = np.zeros((x.shape[1] + 1, classes))
    xb = np.hstack([x, np.ones((len(x), 1))])
    onehot = np.eye(classes)[y]
    m, v = np.zeros_like(w), np.zeros_like(w)
    for step in range(1, PROBE_STEPS + 1):
        z = xb @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = xb.T @ (p - onehot) / len(x) + 2 * l2 * w
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        w -= 0.01 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return w


def probe(variant: str, spec: InputSpec) -> tuple[float, float]:
    """Validation and test accuracy of the linear probe (its L2 chosen on validation)."""
    base = BACKBONES[variant].constructor(weights="imagenet", input_shape=(spec.size, spec.size, 3))
    features, labels = {}, {}
    for split in ("train", "validation", "test"):
        paths, labels[split] = photos(split)
        features[split] = np.asarray(base.predict(inputs(paths, spec), batch_size=32, verbose=0)).mean(axis=(1, 2))
    mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
    scaled = {split: (f - mean) / std for split, f in features.items()}
    classes = int(labels["train"].max()) + 1

    def accuracy(w: np.ndarray, split: str) -> float:
        logits = np.hstack([scaled[split], np.ones((len(scaled[split]), 1))]) @ w
        return float((logits.argmax(1) == labels[split]).mean())

    fits = [softmax_regression(scaled["train"], labels["train"], l2, classes) for l2 in L2]
    best = max(fits, key=lambda w: accuracy(w, "validation"))
    return accuracy(best, "validation"), accuracy(best, "test")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=100, help="test photos for the port's check (an equal share a class)")
    p.add_argument("--probe", default=next(iter(efficientnet_lite.VARIANTS)), help="the variant the probe uses")
    args = p.parse_args(argv)
    paths, _ = photos("test", per_class=max(1, args.images // 10))
    port = [port_row(variant, paths) for variant in efficientnet_lite.VARIANTS]
    backbone = BACKBONES[args.probe]
    right = backbone.input_spec(backbone.size, "bilinear")
    wrong = torchvision_spec(right)
    (right_val, right_test), (wrong_val, wrong_test) = probe(args.probe, right), probe(args.probe, wrong)
    probes = [
        {"normalisation": name, "validation": round(v, 4), "test": round(t, 4)}
        for name, v, t in [("(x - 127) / 128", right_val, right_test), ("torchvision's", wrong_val, wrong_test)]
    ]
    tables = [
        Table(
            "port",
            PORT,
            port,
            "Port vs reference (and the port's own ImageNet top-1 under torchvision's normalisation)",
        ),
        Table("probe", PROBE, probes, f"Linear probe of {args.probe}"),
    ]
    notes = [
        f"the wrong normalisation costs {(right_val - wrong_val) * 100:.1f} points of validation accuracy and "
        f"{(right_test - wrong_test) * 100:.1f} of test accuracy in the probe"
    ]
    record(__spec__.name, argv, "EfficientNet-Lite: the port proven, the normalisation measured", tables, notes)


if __name__ == "__main__":
    main()
