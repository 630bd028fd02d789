"""The tiny run converted, with each decoding of its images counted (the real decoder's calls, recorded)."""

from collections.abc import Callable
from pathlib import Path

import pytest

from convert import convert as conv
from train.data import Item


@pytest.fixture(scope="module")
def convert_counted(tiny_run, tmp_path_factory) -> Callable[[list[str]], tuple[Path, dict, list[list[Item]]]]:
    """convert.convert on the tiny run for these variants: (the bundle folder, its summary, the item lists of
    training images it decoded, one per call of the real read_images)."""
    _, meta = conv.resolve_checkpoint(tiny_run, None)
    train = {item.path for item in conv.scan_for(meta, Path(meta["config"]["data"]))["train"]}

    def run(variants: list[str]) -> tuple[Path, dict, list[list[Item]]]:
        decoded: list[list[Item]] = []
        real = conv.read_images

        def counted(items: list[Item], *args):
            if items and all(item.path in train for item in items):
                decoded.append(list(items))
            return real(items, *args)

        out = tmp_path_factory.mktemp("bundle")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(conv, "read_images", counted)
            summary = conv.convert(tiny_run, out, variants=variants)
        return out, summary, decoded

    return run
