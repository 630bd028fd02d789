"""Where a request's time goes for a phone-sized photo, and what decoding it reduced saves.

    python -m bench.request_split --bundles artifacts/bundle artifacts/bundle-efficientnet-lite2 [--photos 20]

Real test photos upscaled 3x (Lanczos; 1200x1600, about 1.9 MP, JPEG quality 90: a phone photo's size) are
served on 127.0.0.1 and taken through the Lambda's own steps, each timed apart: the fetch (lambda_fn.fetch),
the decode (lambda_fn.preprocess.decode_image), the pixels (upright, RGB, stretched to the input size), and
inference (LiteRT, all cores). The decode is timed both ways: in full, and reduced in the DCT domain to no
less than the input size (what serving and training do since PIXELS_VERSION 4). With a model ten times cheaper
than Xception, the full decode and its resize cost as much as the inference; reduced, a fraction. Also
counted: the answers the reduced decode changes on these photos.
"""

import argparse
import statistics
import time
from pathlib import Path

from PIL import Image

from bench.common import DATA
from bench.results import Field, Table, record
from harness.servers import file_server
from lambda_fn.fetch import FetchLimits, fetch
from lambda_fn.model import Model
from lambda_fn.preprocess import decode_image
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES

UPSCALE = 3


def phone_photos(n: int, folder: Path) -> list[Path]:
    """n test photos, 3x upscaled and saved as JPEGs under folder."""
    originals = sorted((DATA / "test").rglob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for k, path in enumerate(originals[:: max(1, len(originals) // n)][:n]):
        photo = Image.open(path)
        big = photo.resize((photo.width * UPSCALE, photo.height * UPSCALE), Image.Resampling.LANCZOS)
        big.save(folder / f"{k}.jpg", quality=90)
        made.append(folder / f"{k}.jpg")
    return made


def ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def steps(model: Model, url: str, reduced: bool) -> tuple[dict, int]:
    """One request's steps, timed apart, and its answer (the top class index)."""
    spec, times = model.input, {}
    started = time.perf_counter()
    data = fetch(url, FetchLimits(allow_private=True))
    times["fetch"] = ms(started)
    started = time.perf_counter()
    image = decode_image(data, DEFAULT_MAX_DECODED_BYTES, at_least=spec.size if reduced else None)
    times["decode"] = ms(started)
    started = time.perf_counter()
    x = spec.of_image(image)
    times["pixels"] = ms(started)
    started = time.perf_counter()
    top = int(model.logits(x).argmax())
    times["inference"] = ms(started)
    return times, top


STEPS = ("fetch", "decode", "pixels", "inference")  # in the order steps() times them
FIELDS = [Field("backbone", "backbone"), Field("input", "input", "px"), Field("decode", "decode")]
FIELDS += [Field(f"{step}_ms", f"{step} (ms)", "ms") for step in STEPS]
FIELDS += [
    Field("total_ms", "total (ms)", "ms"),
    Field("decode_share", "decode and pixels' share", "fraction", "{:.0%}"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundles", type=Path, nargs="+", required=True, help="bundle folders (their float32 is timed)")
    p.add_argument("--photos", type=int, default=20)
    p.add_argument("--work", type=Path, default=Path("artifacts/request-split"), help="where the photos are made")
    args = p.parse_args(argv)
    photos = phone_photos(args.photos, args.work)
    size = Image.open(photos[0]).size
    records, changed = [], []
    with file_server(args.work) as base:
        for bundle in args.bundles:
            model = Model(bundle / "float32")
            answers = {}
            for reduced in (False, True):
                runs = [steps(model, f"{base}/{photo.name}", reduced) for photo in photos for _ in range(2)][1::2]
                answers[reduced] = [top for _, top in runs]
                split = {k: statistics.median(t[k] for t, _ in runs) for k in runs[0][0]}
                total = sum(split.values())
                decode = "reduced to the input size" if reduced else "in full"
                records.append(
                    {"backbone": model.meta["backbone"], "input": model.input.size, "decode": decode}
                    | {f"{step}_ms": round(ms, 1) for step, ms in split.items()}
                    | {"total_ms": round(total, 1), "decode_share": (split["decode"] + split["pixels"]) / total}
                )
            changed.append(f"{model.meta['backbone']}: {sum(a != b for a, b in zip(*answers.values(), strict=True))}")
    notes = [
        f"{len(photos)} test photos upscaled {UPSCALE}x to {size[0]}x{size[1]}, JPEG quality 90, served on "
        "127.0.0.1; median of each step (each photo's second request)",
        "answers the reduced decode changes, of these photos: " + ", ".join(changed),
    ]
    record(__spec__.name, argv, "A phone photo's request, step by step", [Table("steps", FIELDS, records)], notes)


if __name__ == "__main__":
    main()
