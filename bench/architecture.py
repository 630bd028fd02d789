"""The served architecture with an untrained head, for size and speed figures on a machine with no trained model.

    python -m bench.architecture [--backbone xception] [--out artifacts/arch]

`make run` takes hours on a small CPU. This builds, in minutes, a bundle whose graph is the served one's but for
the head (trained one epoch on a generated 3-class set, so 3 outputs instead of 10): its file sizes, latencies
and cold starts are the served model's; its accuracy means nothing. The base's weights are the ImageNet ones
training would use where they are here, else random (the arithmetic is the same).
"""

import argparse
from pathlib import Path

from harness import REPO
from harness.dataset import make_tiny_dataset
from train.backbone import BACKBONES, DEFAULT_BACKBONE

VARIANTS = "float32,float16,int8-dynamic"  # what make run ships; int8-full's gate needs a trained head


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=sorted(BACKBONES))
    p.add_argument("--out", type=Path, default=REPO / "artifacts" / "arch")
    args = p.parse_args(argv)
    from convert.convert import convert
    from train.config import parse_args
    from train.train import train

    backbone = BACKBONES[args.backbone]
    root = args.out / backbone.name
    data = make_tiny_dataset(root / "data", per_split=(4, 2, 2))
    made = "imagenet" if backbone.imagenet else "none"  # made from what is here (EfficientNet-Lite's), or random
    weights = str(path) if (path := backbone.weights_file()) else made
    flags = ["--preset", "frozen", "--backbone", backbone.name, "--data", data, "--weights", weights]
    flags += [
        "--head-epochs",
        "1",
        "--views",
        "1",
        "--batch-size",
        "8",
        "--out",
        root / "run",
        "--cache",
        root / "cache",
    ]
    train(parse_args([str(f) for f in flags]))
    convert(root / "run", root / "bundle", variants=VARIANTS.split(","), data=data)
    print(f"bundle: {root / 'bundle'}")
    return root / "bundle"


if __name__ == "__main__":
    main()
