"""bench.shop on the tiny dataset: a tiny shop sample cut into two folds, a model before and one per fold after,
every photo scored through the served bundle, children's and adults' apart."""

import json
import shlex

import numpy as np
import pytest

from bench import shop
from harness.dataset import TINY_COLOURS, tiny_training_flags, write_image

PER_CLASS = 4


def test_the_loop_is_measured_fold_by_fold_before_and_after(tmp_path):
    sample, rng = tmp_path / "sample", np.random.default_rng(3)
    for name, colour in TINY_COLOURS.items():
        for k in range(PER_CLASS):
            write_image(sample / name / f"{name}-{k}.jpg", colour, rng)
    (sample / "children.txt").write_text("hat-0\ndress-1\nt-shirt-2\n")
    flags = tiny_training_flags(tmp_path / "tiny", "--preset", "frozen", "--head-epochs", "2", "--views", "1")
    argv = ["--sample", str(sample), "--folds", "2", "--train-flags", shlex.join(flags)]
    shop.main([*argv, "--out", str(tmp_path / "out"), "--results", str(tmp_path / "results")])

    dealt = shop.folds(shop.sample_photos(sample), 2)
    assert sorted(len(f) for f in dealt) == [6, 6] and all(len({p.label for p in f}) == 3 for f in dealt)
    for k in range(len(dealt)):  # each fold's model trained on the other fold's photos, as reviewed labels
        others = {str(p.path.relative_to(sample)) for p in dealt[1 - k]}
        lines = (tmp_path / "out" / f"fold-{k}" / "reviewed.jsonl").read_text().splitlines()
        assert {json.loads(line)["source"] for line in lines} == others
        run = json.loads((tmp_path / "out" / f"fold-{k}" / "run" / "run.json").read_text())
        assert run["reviewed"]["trained_on"] + run["reviewed"]["held_out_for_calibration"] == len(others)
    result = json.loads((tmp_path / "results" / "shop.json").read_text())
    rows = {(r["model"], r["photos"]): r for r in result["records"]["folds"]["items"]}
    assert set(rows) == {(m, g) for m in ("before", "after") for g in ("all", "children", "adults")}
    for model in ("before", "after"):
        assert rows[model, "all"]["n"] == 3 * PER_CLASS and rows[model, "children"]["n"] == 3
        assert rows[model, "adults"]["n"] == 3 * PER_CLASS - 3
        assert 0 <= rows[model, "all"]["accuracy"] <= 1 and 0 <= rows[model, "all"]["test_accuracy"] <= 1
        assert 0 <= rows[model, "all"]["confident_bound"] <= (rows[model, "all"]["confident_precision"] or 1)
    assert [note.split(":")[0] for note in result["notes"]] == ["fold 0", "fold 1"]
    assert all(("the promise proven on" in note) != ("no promise proven" in note) for note in result["notes"])


def test_a_served_bundle_is_scored_on_the_sample_without_training(tmp_path, tiny_bundle):
    sample, rng = tmp_path / "sample", np.random.default_rng(4)
    for name, colour in TINY_COLOURS.items():
        write_image(sample / name / f"{name}-0.jpg", colour, rng)
    (sample / "children.txt").write_text("hat-0\n")
    shop.main(["--sample", str(sample), "--score", str(tiny_bundle), "--results", str(tmp_path / "results")])

    result = json.loads((tmp_path / "results" / "shop.served.json").read_text())
    rows = {r["photos"]: r for r in result["records"]["folds"]["items"]}
    expected = shop.scored(tiny_bundle, shop.sample_photos(sample))
    right = expected.probabilities.argmax(1) == expected.labels
    assert rows["all"]["n"] == len(TINY_COLOURS) and rows["children"]["n"] == 1
    assert rows["all"]["accuracy"] == right.mean()
    assert rows["all"]["confident_share"] == expected.confident.mean()
    model = json.loads((tiny_bundle / "model.json").read_text())
    assert rows["all"]["test_accuracy"] == model["parity"]["test_accuracy"]


def test_score_refuses_a_folder_that_is_not_a_bundle(tmp_path, capsys):
    with pytest.raises(SystemExit):
        shop.main(["--score", str(tmp_path), "--results", str(tmp_path / "results")])
    assert "not a bundle variant" in capsys.readouterr().err
