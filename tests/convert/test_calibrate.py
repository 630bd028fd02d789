"""Fitting the temperature and the threshold (convert/calibrate.py), on logits whose truth is known."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convert import calibrate as cal
from lambda_fn.confidence import calibrated


def sampled(temperature: float, images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn so that softmax(logits / temperature) is the true chance of each label."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, size=(images, 10))
    p = calibrated(logits, temperature)
    labels = np.array([rng.choice(10, p=row) for row in p])
    return logits, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with(temperature):
    logits, labels = sampled(temperature, 6000, seed=1)
    assert cal.fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.08)


def test_temperature_scaling_removes_most_of_an_over_confident_models_error():
    logits, labels = sampled(2.0, 4000, seed=2)  # the raw softmax (T=1) is over-confident
    raw = cal.expected_calibration_error(calibrated(logits, 1.0), labels)
    fitted = cal.expected_calibration_error(calibrated(logits, cal.fit_temperature(logits, labels)), labels)
    assert raw > 0.1 and fitted < 0.03


def test_ece_by_hand():
    # two images at 0.9 (one right), two at 0.6 (both right): bins 13 and 9 of 15
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    assert cal.expected_calibration_error(p, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.1, 1.0), st.booleans()), min_size=1, max_size=60),
    st.sampled_from([0.8, 0.9, 0.98, 1.0]),
)
def test_the_threshold_keeps_the_promise_with_the_widest_coverage(answers, precision):
    confidence = np.array([c for c, _ in answers])
    correct = np.array([ok for _, ok in answers])
    # two classes: class 0 holds the top probability (>= 0.5 after mapping); the label is 0 when right
    top = 0.5 + confidence / 2
    p = np.stack([top, 1 - top], axis=1)
    labels = np.where(correct, 0, 1)
    bar = cal.min_confidence_for(p, labels, precision)
    accepted = top >= bar
    if accepted.any():
        assert correct[accepted].mean() >= precision
    lower = top[top < bar]
    if len(lower):  # the next lower bar would break the promise (or it would have been chosen)
        wider = top >= lower.max()
        assert correct[wider].mean() < precision


def test_report_and_calibrate_hold_the_figures_model_json_needs():
    val, test = sampled(2.0, 800, seed=3), sampled(2.0, 800, seed=4)
    fitted = cal.calibrate(*val, *test)
    assert fitted["temperature"] == pytest.approx(2.0, rel=0.15) and fitted["target_precision"] == 0.98
    for split in ("validation", "test"):
        raw, after = fitted[split]["raw"], fitted[split]["calibrated"]
        assert after["ece"] < raw["ece"] and raw["accuracy"] == after["accuracy"]
        assert "confident_coverage" not in raw and 0 <= after["confident_coverage"] <= 1
        assert after["accuracy_at_80"] >= after["accuracy"]
    validation = fitted["validation"]["calibrated"]
    if validation["confident_coverage"]:
        assert validation["confident_accuracy"] >= 0.98  # the promise holds where it was made


def test_the_noise_floor_is_what_a_perfectly_calibrated_model_scores():
    """On 400 images drawn from the model's own probabilities, the measured ECE sits near its floor, not near 0."""
    logits, labels = sampled(1.0, 400, seed=5)
    p = calibrated(logits, 1.0)
    floor = cal.ece_noise_floor(p)
    assert 0.01 < floor < 0.08 and abs(cal.expected_calibration_error(p, labels) - floor) < 0.03
    assert cal.ece_noise_floor(np.repeat(p, 50, axis=0)) < floor / 3  # more images, a lower floor
