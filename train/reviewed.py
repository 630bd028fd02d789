"""The shop's reviewed photos (the reviewed-labels file, project/reviewed.py) as training data, and as the photos
conversion proves the promise on.

    python -m train.train --reviewed reviewed.jsonl         # make run REVIEWED=reviewed.jsonl

Each source's last decision counts. A "label" decision's photo is fetched once (a URL through the Lambda's own
SSRF-safe fetcher, lambda_fn/fetch.py, with the limits its environment variables set: ALLOW_PRIVATE_URLS=true for
a shop's own network; a file read directly) and kept in the cache folder as reviewed/<sha256>.<ext>, after its
bytes are checked against the sha256 the reviewer saw: a photo changed since is refused by name, as the label
was given to other bytes. Cached there, it is read as any dataset photo is (train/data.py: the Lambda's pixels)
and its activations are cached by the same sha256 (train/features.py).

Half of the labelled photos, chosen by their sha256 (project/reviewed.py for_calibration), are held out of
training: conversion fits the temperature and proves the threshold on them (convert/calibrate.py).

Refused, each by name with the reason, and counted: a decision that does not fit the model's classes; a photo
that cannot be fetched, read or decoded, or whose bytes changed; a photo identical (by sha256) to one of the
dataset's (a validation or test photo trained on would flatter the figures that choose and judge the model; a
training photo would be counted twice, and a held-out one would not be unseen); the same photo labelled two ways.
The run goes on without them: the report lists them.

"Not one of these classes" ("none") is kept and counted but trains nothing: the model has no class for it, and
teaching it a uniform answer would change what its probabilities mean, which the promise rests on. Nor is it
calibration data, as a proof checks answers against labels; conversion measures instead how many of those photos
the model would answer "confident" (necessarily wrongly): what the promise, made about the ten classes, does
not cover. "skip" is counted.
"""

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from lambda_fn.errors import RequestError
from lambda_fn.fetch import FetchLimits, fetch
from lambda_fn.preprocess import decode_image
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES, read
from project.reviewed import Decision, for_calibration, latest
from train.data import Item, file_digest

log = logging.getLogger(__name__)

FOLDER = "reviewed"  # under the cache folder: the photos, as <sha256>.<ext>
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}  # the formats decoded


class ReviewedError(ValueError):
    """The reviewed-labels file cannot be used at all; the message says why."""


class Refused(Exception):
    """One reviewed photo that is not used; the message says why."""


@dataclass
class ShopPhotos:
    """A reviewed-labels file's decisions, sorted: what trains, what proves the promise, what does neither."""

    file: Path
    decisions: int = 0
    train: list[Item] = field(default_factory=list)
    held_out: int = 0  # labelled photos held out of training for the proof (for_calibration) ...
    calibration: list[Item] = field(default_factory=list)  # ... those fetched (where asked for) and usable
    none: int = 0  # "not one of these classes" ...
    not_these: list[Path] = field(default_factory=list)  # ... their photos (where asked for): what the model says
    skipped: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # source -> why

    def record(self) -> dict:
        """What run.json, the report and model.json say of them (the digests: what conversion must not prove on)."""
        return {
            "file": str(self.file),
            "decisions": self.decisions,
            "trained_on": len(self.train),
            "held_out_for_calibration": self.held_out,
            "none": self.none,
            "skipped": self.skipped,
            "refused": self.refused,
            "trained_sha256": sorted(item.path.stem for item in self.train),
        }


def fetch_limits() -> FetchLimits:
    """The fetcher's limits as the Lambda reads them from the environment (lambda_fn/settings.py)."""
    return read(os.environ).fetch


def photo_bytes(decision: Decision, limits: FetchLimits) -> bytes:
    """The bytes at the decision's location: a URL through the SSRF-safe fetcher, or an absolute path."""
    location = decision.location
    if location.startswith(("http://", "https://")):
        try:
            return fetch(location, limits)
        except RequestError as err:
            raise Refused(f"cannot fetch {location}: {err.message}") from None
    path = Path(location)
    if not path.is_absolute():
        raise Refused(f"its location {location!r} is neither an http(s) URL nor an absolute path")
    try:
        if not path.exists():
            raise Refused(f"no file at {location}")
        if not path.is_file():  # a device or a pipe would be read without end
            raise Refused(f"{location} is not a regular file")
        with path.open("rb") as f:
            data = f.read(limits.max_bytes + 1)
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        raise Refused(f"cannot read {location}: {getattr(err, 'strerror', None) or err}") from None
    if len(data) > limits.max_bytes:
        raise Refused(f"{location} is over {limits.max_bytes} bytes (MAX_IMAGE_BYTES), as the service refuses")
    return data


def cached_photo(decision: Decision, folder: Path, limits: FetchLimits) -> Path:
    """The decision's photo in the cache folder, fetched the first time, its bytes those the reviewer saw."""
    for earlier in folder.glob(f"{decision.sha256}.*"):
        if file_digest(earlier) == decision.sha256:
            return earlier
        earlier.unlink()  # damaged since: fetched again
    data = photo_bytes(decision, limits)
    digest = hashlib.sha256(data).hexdigest()
    if digest != decision.sha256:
        raise Refused(f"its bytes changed since it was reviewed (sha256 {digest}, reviewed {decision.sha256})")
    try:  # the smallest decode says whether the service would read it, and its format
        image = decode_image(data, DEFAULT_MAX_DECODED_BYTES, at_least=1)
    except RequestError as err:
        raise Refused(f"not a photo the service reads: {err.message}") from None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{decision.sha256}{SUFFIXES[str(image.format)]}"
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)  # whole or absent
    return path


def fetch_or_refuse(decision: Decision, folder: Path, limits: FetchLimits, shop: ShopPhotos) -> Path | None:
    """cached_photo, or None with the refusal written down."""
    try:
        return cached_photo(decision, folder, limits)
    except Refused as err:
        shop.refused[decision.source] = str(err)
        return None


def dataset_digests(items: dict[str, list[Item]]) -> dict[str, str]:
    """Each dataset photo's sha256 -> its split and path, as a refusal names it."""
    return {file_digest(i.path): f"{split} photo {i.path}" for split, split_items in items.items() for i in split_items}


def shop_photos(
    file: Path, classes: list[str], items: dict[str, list[Item]], cache: Path, sides=("train", "calibration")
) -> ShopPhotos:
    """Sort the file's decisions (module docstring) and bring the photos of `sides` into the cache."""
    if not Path(file).is_file():
        raise ReviewedError(f"no reviewed-labels file at {file} (python -m catalog.review writes one)")
    decided = latest(Path(file))
    shop, limits, known = ShopPhotos(Path(file), len(decided)), fetch_limits(), dataset_digests(items)
    labelled: dict[str, Decision] = {}  # sha256 -> the first source labelled with it
    for decision in decided.values():
        problem = decision.problem(classes)
        if problem:
            shop.refused[decision.source] = problem
        elif decision.decision == "none":
            shop.none += 1
            if "none" in sides:
                fetched = fetch_or_refuse(decision, Path(cache) / FOLDER, limits, shop)
                shop.not_these += [fetched] if fetched else []
        elif decision.decision == "skip":
            shop.skipped += 1
        elif decision.sha256 in known:
            shop.refused[decision.source] = f"it is identical to the dataset's {known[decision.sha256]}"
        elif decision.sha256 in labelled and labelled[decision.sha256].label != decision.label:
            first = labelled[decision.sha256]
            shop.refused[decision.source] = f"the same photo as {first.source}, labelled {first.label} there"
        else:
            labelled.setdefault(decision.sha256, decision)
    for decision in labelled.values():
        side = "calibration" if for_calibration(decision) else "train"
        shop.held_out += side == "calibration"
        if side not in sides:
            continue
        path = fetch_or_refuse(decision, Path(cache) / FOLDER, limits, shop)
        if path:
            getattr(shop, side).append(Item(path, classes.index(str(decision.label))))
    for source, why in shop.refused.items():
        log.warning("reviewed photo %s refused: %s", source, why)
    log.info(
        "%s: %d decisions; %d photos to train on, %d held out to prove the promise on, %d refused, %d not one of "
        "these classes, %d skipped",
        file,
        shop.decisions,
        len(shop.train),
        shop.held_out,
        len(shop.refused),
        shop.none,
        shop.skipped,
    )
    return shop
