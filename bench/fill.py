"""The activation cache's fill: the frozen layers on Keras (TensorFlow's predict) against LiteRT, same images.

    python -m bench.fill [--images 64] [train.train flags, e.g. --preset cpu]

`make run` on a CPU spends most of its first hour pushing every image-view through the frozen part of the base
(below the cut the preset fine-tunes from). Both rows fill a fresh cache with the same training images' first
augmented view, decoding and augmentation included, after one untimed warm-up call each, and report
image-views per second; the LiteRT row's one-off export of the frozen layers is timed apart (it is kept in the
cache folder and reused).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.results import Field, Table, record
from train import model as models
from train.config import parse_args
from train.data import scan_dataset
from train.features import CacheKey, FrozenLayers, cached_activations, frozen_layers, trunk_file


def views_per_second(frozen: FrozenLayers, config, net, items, classes, cache: Path) -> float:
    backbone = config.backbone_entry
    key = CacheKey(backbone.name, "bench", config.size, config.interpolation, net.cut, 1, 1, frozen.engine)
    frozen.run(backbone.preprocess(np.zeros((2, config.size, config.size, 3), np.float32)))  # tracing, thread pools
    started = time.perf_counter()
    cached_activations(frozen, items, classes, key, cache, backbone.preprocess)
    return len(items) / (time.perf_counter() - started)


FIELDS = [
    Field("engine", "engine"),
    Field("views_per_s", "image-views/s", "image-views/s"),
    Field("vs_keras", "vs Keras", "ratio", "{:.2f}x"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=64, help="training images pushed through each engine")
    own, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    config = parse_args(rest if "--preset" in rest else ["--preset", "cpu", *rest])
    classes, items = scan_dataset(config.data)
    train_items = items["train"][:: max(1, len(items["train"]) // own.images)][: own.images]
    net = models.build(config.backbone_entry, config, len(classes))
    trunk = net.trunk
    assert trunk is not None, "a preset that reads the cache (input=cache) has a trunk"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        keras_rate = views_per_second(
            FrozenLayers("keras-tensorflow", lambda x: trunk.predict(x, batch_size=config.batch_size, verbose=0)),
            config,
            net,
            train_items,
            classes,
            cache,
        )
        started = time.perf_counter()
        litert = frozen_layers(trunk, trunk_file(cache, "bench", "bench", config.size, net.cut), config.batch_size)
        export_s = time.perf_counter() - started
        litert_rate = views_per_second(litert, config, net, train_items, classes, cache)
    gflop = config.backbone_entry.gflop * (config.size / config.backbone_entry.size) ** 2
    engines = [
        {"engine": "Keras predict (TensorFlow)", "views_per_s": round(keras_rate, 2), "vs_keras": None},
        {"engine": "LiteRT, every core", "views_per_s": round(litert_rate, 2), "vs_keras": litert_rate / keras_rate},
    ]
    notes = [
        f"{len(train_items)} training images, one augmented view each, {config.size}x{config.size}, the frozen "
        f"layers below {net.cut} (of {gflop:.1f} GFLOP for the whole base); batch {config.batch_size} for Keras",
        f"the one-off export of the frozen layers for LiteRT: {export_s:.0f} s",
    ]
    table = Table("engines", FIELDS, engines)
    record(__spec__.name, argv, "The activation cache's fill: Keras against LiteRT", [table], notes)


if __name__ == "__main__":
    main()
