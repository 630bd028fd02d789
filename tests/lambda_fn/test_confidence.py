"""Calibrated probabilities and the "not sure" answer (lambda_fn/confidence.py), over the whole input space."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lambda_fn.confidence import MOST_CANDIDATES, answer, calibrated

LABELS = ["dress", "hat", "pants", "shirt", "t-shirt"]
logits = arrays(np.float32, len(LABELS), elements=st.floats(-60, 60, width=32))
temperatures = st.floats(0.05, 20)


@given(logits, temperatures)
def test_calibrated_probabilities_sum_to_one_and_keep_the_order(z, temperature):
    p = calibrated(z, temperature)
    assert abs(p.sum() - 1) < 1e-9 and (p >= 0).all()
    assert p.argmax() == calibrated(z, 1.0).argmax()  # the label never changes
    order = np.argsort(-z, kind="stable")
    assert (np.diff(p[order]) <= 1e-12).all()


def test_a_higher_temperature_is_less_sure():
    z = np.array([3.0, 1.0, 0.0])
    assert calibrated(z, 2.0).max() < calibrated(z, 1.0).max() < calibrated(z, 0.5).max()
    assert np.allclose(calibrated(np.stack([z, z]), 2.0), calibrated(z, 2.0))  # a batch: row by row


@given(logits, temperatures, st.floats(0, 1))
def test_every_answer_says_whether_it_is_confident_and_below_the_bar_names_candidates(z, temperature, bar):
    p = calibrated(z, temperature)
    body = answer(LABELS, p, bar)
    assert body["label"] == LABELS[int(p.argmax())] and body["confident"] is bool(p.max() >= bar)
    assert [row["label"] for row in body["probabilities"]][0] == body["label"]
    if body["confident"]:
        assert "candidates" not in body
    else:
        candidates = body["candidates"]
        assert 2 <= len(candidates) <= MOST_CANDIDATES and candidates[0] == body["label"]
        assert candidates == [row["label"] for row in body["probabilities"]][: len(candidates)]


def test_candidates_stop_once_they_reach_the_bar():
    p = np.array([0.5, 0.45, 0.03, 0.01, 0.01])
    assert answer(LABELS, p, 0.9)["candidates"] == ["dress", "hat"]
    assert answer(LABELS, p, 0.99)["candidates"] == ["dress", "hat", "pants"]  # never more than three
    assert answer(LABELS, p, 0.5)["confident"] is True
