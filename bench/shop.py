"""The shop's loop measured: k-fold over the shop sample, reviewed labels into training and the promise re-proven.

    python -m bench.shop --train-flags "--backbone efficientnet-lite2"      # hours: see docs/shop-loop.md
    python -m bench.shop --score artifacts/bundle/float32 --key served     # seconds: a bundle as it serves now

The shop sample (../shared/data/shop-sample: class folders as the dataset's, children.txt naming the children's
photos) stands for what a shop's reviewers labelled. It is cut into k folds, stratified by class (each class's
photos in sha256 order, dealt round). Before: one model trained on the course's training split alone (make run),
calibrated and proven on validation, scores every shop photo. After, for each fold: the other k-1 folds become a
reviewed-labels file (a "label" decision about each file, as the review page writes them); training takes it
(--reviewed: half of them train, the other half, chosen by sha256, is held out) and conversion fits and tries to
prove the promise on the held-out half (--reviewed); the fold's photos, which neither saw, are scored. Every
photo goes through the served model (lambda_fn.model.Model on the float32 bundle: the Lambda's pixels, its
temperature and min_confidence), so "confident" is what the service would publish.

Reported, over all photos and for children's and adults' apart: accuracy, expected calibration error, the
confident share and the confident answers' precision with its one-sided 95% lower bound (Clopper-Pearson,
convert/calibrate.py), beside the served test accuracy. After pools the k folds, each scored by its own model.
Every run shares one activation cache, so a fold costs its fine-tuning, the fill of its shop photos, and its
conversion. --score skips the loop: it scores one bundle (what serves today, say) on every photo of the sample.
--key tells apart the results of several recipes (bench/results/shop.<key>.json).
"""

import argparse
import hashlib
import json
import shlex
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.results import RESULTS, Field, Table, record
from convert.calibrate import expected_calibration_error, precision_bound
from harness.reviewed import decide
from lambda_fn.confidence import calibrated
from lambda_fn.model import Model
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from project.paths import ARTIFACTS
from train.data import IMAGE_SUFFIXES, SHARED

SAMPLE = SHARED / "data" / "shop-sample"
CHILDREN = "children.txt"  # the sample's list of children's photos, by file stem
GROUPS = (("all", None), ("children", True), ("adults", False))
FIELDS = [
    Field("model", "model"),
    Field("photos", "photos"),
    Field("n", "n", "images"),
    Field("accuracy", "accuracy", "fraction", "{:.4f}"),
    Field("ece", "ECE", "fraction", "{:.4f}"),
    Field("confident_share", "confident: share", "fraction", "{:.1%}"),
    Field("confident_precision", "confident: precision", "fraction", "{:.1%}", absent="-"),
    Field("confident_bound", "confident: 95% lower bound", "fraction", "{:.1%}"),
    Field("test_accuracy", "test accuracy", "fraction", "{:.4f}"),
]


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str
    child: bool


@dataclass
class Scored:
    """Photos scored by a served model: calibrated probabilities, true labels, and which answers were confident."""

    photos: list[Photo]
    probabilities: np.ndarray
    labels: np.ndarray
    confident: np.ndarray


def sample_photos(sample: Path) -> list[Photo]:
    children = set((sample / CHILDREN).read_text().split()) if (sample / CHILDREN).is_file() else set()
    return [
        Photo(path, folder.name, path.stem in children)
        for folder in sorted(d for d in sample.iterdir() if d.is_dir())
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def folds(photos: list[Photo], k: int) -> list[list[Photo]]:
    """k folds, each class dealt round in sha256 order: the same folds on every machine."""
    dealt: list[list[Photo]] = [[] for _ in range(k)]
    for label in sorted({p.label for p in photos}):
        mine = sorted(
            (p for p in photos if p.label == label), key=lambda p: hashlib.sha256(p.path.read_bytes()).digest()
        )
        for n, photo in enumerate(mine):
            dealt[n % k].append(photo)
    return dealt


def trained_and_converted(out: Path, flags: list[str], reviewed: Path | None) -> tuple[Path, dict]:
    """make run in this process: train (with the reviewed-labels file), then convert float32 (proving on it)."""
    from convert.convert import convert
    from train.config import parse_args
    from train.train import train

    with_reviewed = ["--reviewed", str(reviewed)] if reviewed else []
    train(parse_args([*flags, "--out", str(out / "run"), *with_reviewed]))
    summary = convert(out / "run", out / "bundle", variants=["float32"], reviewed=reviewed)
    return out / "bundle" / "float32", summary["float32"]


def scored(variant: Path, photos: list[Photo]) -> Scored:
    """Each photo's bytes through the Lambda's path and interpreter, calibrated by the bundle's temperature."""
    model = Model(variant)
    logits = np.array(
        [model.logits(model.input.model_input(p.path.read_bytes(), DEFAULT_MAX_DECODED_BYTES))[0] for p in photos]
    )
    probabilities = calibrated(logits.reshape(len(photos), len(model.labels)), model.temperature)
    labels = np.array([model.labels.index(p.label) for p in photos], int)
    return Scored(photos, probabilities, labels, probabilities.max(1, initial=0) >= model.min_confidence)


def pooled(parts: list[Scored]) -> Scored:
    return Scored(
        [p for s in parts for p in s.photos],
        np.concatenate([s.probabilities for s in parts]),
        np.concatenate([s.labels for s in parts]),
        np.concatenate([s.confident for s in parts]),
    )


def figures(s: Scored, children: bool | None) -> dict:
    """Accuracy, ECE, the confident share, precision and its lower bound, of the group (children: None for all)."""
    mine = np.array([children is None or p.child == children for p in s.photos], bool)
    p, labels, confident = s.probabilities[mine], s.labels[mine], s.confident[mine]
    right = p.argmax(1) == labels
    return {
        "n": int(mine.sum()),
        "accuracy": float(right.mean()) if len(labels) else None,
        "ece": expected_calibration_error(p, labels) if len(labels) else None,
        "confident_share": float(confident.mean()) if len(labels) else None,
        "confident_precision": float(right[confident].mean()) if confident.any() else None,
        "confident_bound": float(precision_bound(right[confident].sum(), confident.sum())),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", type=Path, default=SAMPLE, help="the shop's labelled photos: class folders")
    p.add_argument("--folds", type=int, default=3, help="k: each fold is scored by a model trained on the others")
    p.add_argument("--train-flags", default="", help="flags for every training run (python -m train.train --help)")
    p.add_argument("--out", type=Path, default=ARTIFACTS / "bench-shop", help="runs, bundles and reviewed files")
    p.add_argument("--results", type=Path, default=RESULTS, help="where shop.json is written")
    p.add_argument("--key", help="a name for these results: shop.<key>.json (several recipes side by side)")
    p.add_argument("--score", type=Path, metavar="VARIANT", help="score this bundle variant only (no training)")
    args = p.parse_args(argv)
    if args.folds < 2:
        p.error("--folds must be at least 2: a fold is scored by a model trained on the others")
    if args.score is not None:
        if not (args.score / "model.json").is_file():
            p.error(f"--score {args.score}: not a bundle variant (no model.json there; e.g. artifacts/bundle/float32)")
        return score_only(args, argv)
    flags, photos = shlex.split(args.train_flags), sample_photos(args.sample)
    dealt = folds(photos, args.folds)
    before_variant, before_gate = trained_and_converted(args.out / "before", flags, None)
    before = scored(before_variant, photos)
    after, gates, notes = [], [], []
    for k, fold in enumerate(dealt):
        reviewed = args.out / f"fold-{k}" / "reviewed.jsonl"
        reviewed.parent.mkdir(parents=True, exist_ok=True)
        reviewed.unlink(missing_ok=True)
        for photo in (p for other in dealt if other is not fold for p in other):
            decide(reviewed, str(photo.path.relative_to(args.sample)), photo.path, photo.label)
        variant, gate = trained_and_converted(args.out / f"fold-{k}", flags, reviewed)
        after.append(scored(variant, fold))
        gates.append(gate)
        calibration = json.loads((variant / "model.json").read_text())["calibration"]
        proof, fallback = calibration["proof"], calibration["fallback"]
        proven = (
            f"the promise proven on {proof['images']} {proof['photos']} photos (lower bound {proof['bound']:.4f}, "
            f"coverage {proof['coverage']:.1%})"
            if proof["proven"]
            else "no promise proven"
        )
        notes.append(f"fold {k}: {proven}" + (f"; {fallback}" if fallback else ""))
    after_test = statistics.mean(g["test_accuracy"] for g in gates)
    records = [
        {"model": name, "photos": group, **figures(s, children), "test_accuracy": test}
        for name, s, test in (("before", before, before_gate["test_accuracy"]), ("after", pooled(after), after_test))
        for group, children in GROUPS
    ]
    record(
        __spec__.name,
        argv,
        f"The shop's loop: {args.folds}-fold over the shop sample, reviewed labels in, the promise re-proven",
        [Table("folds", FIELDS, records)],
        notes,
        folder=args.results,
        key=args.key,
    )


def score_only(args, argv) -> None:
    """One bundle's figures on every photo of the sample: no model of this run saw them (unless it trained on them)."""
    meta = json.loads((args.score / "model.json").read_text())
    s, test = scored(args.score, sample_photos(args.sample)), meta["parity"]["test_accuracy"]
    records = [{"model": "served", "photos": g, **figures(s, c), "test_accuracy": test} for g, c in GROUPS]
    reviewed = ((meta.get("shop_photos") or {}).get("training") or {}).get("trained_on", 0)
    note = f"{args.score}: trained on {reviewed} reviewed photos" + (
        " (some may be in this sample)" if reviewed else ""
    )
    key = args.key or "served"  # never over the loop's own shop.json
    title = "A served bundle on the shop sample" + ("" if key == "served" else f": {key}")
    record(__spec__.name, argv, title, [Table("folds", FIELDS, records)], [note], folder=args.results, key=key)


if __name__ == "__main__":
    main()
