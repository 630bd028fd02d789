"""Fit what lambda_fn/confidence.py applies, and measure how far the answers can be trusted.

Everything here reads served logits (the candidate .tflite on the Lambda's own interpreter, over images
made by the Lambda's own preprocessing) and the true labels, in numpy alone:

- fit_temperature: T minimising the validation split's negative log-likelihood. The NLL is convex in 1/T,
  so a golden-section search over log T finds its one minimum.
- min_confidence_for: the lowest threshold at which the validation answers that clear it are right at least
  `precision` of the time, i.e. the widest coverage that keeps the promise on validation.
- report: expected calibration error (15 equal-width bins of the top probability, as Guo et al.), accuracy
  over every image, the confident share's accuracy and coverage, and accuracy at fixed coverages.

ECE measured on a few hundred images is biased upwards: even a perfectly calibrated model scores well above
zero, its bins holding few images. report() says how far, by simulation (ece_noise_floor): the ECE a model
whose every answer is right with exactly its stated probability would score on the same confidences.
"""

import math

import numpy as np

from lambda_fn.confidence import calibrated

TARGET_PRECISION = 0.98  # the share of accepted ("confident") answers that must be right, on validation
ECE_BINS = 15
COVERAGES = (0.8, 0.9)  # accuracy of the most confident 80% and 90% of the answers
NOISE_DRAWS = 1000  # simulated label sets behind the noise floor
LOG_T_RANGE = (math.log(0.05), math.log(20.0))  # far beyond any temperature a trained network needs
GOLDEN = (math.sqrt(5) - 1) / 2


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probabilities = calibrated(logits, temperature)
    return float(-np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-300)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 60) -> float:
    """The temperature that minimises the NLL of labels under softmax(logits / T)."""
    low, high = LOG_T_RANGE
    nll = lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t))  # noqa: E731
    a, b = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(steps):  # the bracket shrinks by 0.618 a step: 60 steps are far below float precision in T
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - GOLDEN * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + GOLDEN * (high - low)
            fb = nll(b)
    return round(math.exp((low + high) / 2), 6)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-width bins of the top probability: the bin's share of images x |accuracy - confidence|."""
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def ece_noise_floor(probabilities: np.ndarray, draws: int = NOISE_DRAWS, seed: int = 0) -> float:
    """The mean ECE of a perfectly calibrated model with these top probabilities: each answer drawn right with
    exactly its confidence, binned as expected_calibration_error bins it."""
    confidence = probabilities.max(1)
    which = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    correct = np.random.default_rng(seed).random((draws, len(confidence))) < confidence
    floor = np.zeros(draws)
    for b in range(ECE_BINS):
        inside = which == b
        if inside.any():
            floor += inside.mean() * np.abs(correct[:, inside].mean(1) - confidence[inside].mean())
    return float(floor.mean())


def min_confidence_for(probabilities: np.ndarray, labels: np.ndarray, precision: float = TARGET_PRECISION) -> float:
    """The lowest top probability whose accepted answers (top probability >= it) are right >= precision of
    the time; above every answer (nothing accepted) when no threshold keeps the promise."""
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    order = np.argsort(-confidence, kind="stable")
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # a threshold accepts every answer at or above it: only the last of a run of equal confidences is a cut
    cuts = np.flatnonzero(np.append(np.diff(confidence[order]) != 0, True))
    keeping = cuts[running[cuts] >= precision]
    if not len(keeping):
        return 1.0 if confidence.max() < 1.0 else float(np.nextafter(1.0, 2.0))
    return float(confidence[order][keeping.max()])


def accuracy_at_coverage(probabilities: np.ndarray, labels: np.ndarray, coverage: float) -> float:
    """Accuracy of the most confident `coverage` share of the answers."""
    order = np.argsort(-probabilities.max(1), kind="stable")
    kept = order[: max(1, round(coverage * len(order)))]
    return float((probabilities[kept].argmax(1) == labels[kept]).mean())


def report(probabilities: np.ndarray, labels: np.ndarray, min_confidence: float | None = None) -> dict:
    """How far one split's answers can be trusted (and, given a threshold, the share that clears it)."""
    correct = probabilities.argmax(1) == labels
    figures: dict[str, float | None] = {
        "images": int(len(labels)),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(probabilities, labels),
        "ece_noise_floor": ece_noise_floor(probabilities),
        **{f"accuracy_at_{round(c * 100)}": accuracy_at_coverage(probabilities, labels, c) for c in COVERAGES},
    }
    if min_confidence is not None:
        confident = probabilities.max(1) >= min_confidence
        figures["confident_coverage"] = float(confident.mean())
        figures["confident_accuracy"] = float(correct[confident].mean()) if confident.any() else None
    return figures


def calibrate(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray, test_labels: np.ndarray):
    """model.json's "calibration": the temperature and threshold fitted on validation, and both splits' figures
    before (raw softmax) and after."""
    temperature = fit_temperature(val_logits, val_labels)
    min_confidence = min_confidence_for(calibrated(val_logits, temperature), val_labels)
    splits = {"validation": (val_logits, val_labels), "test": (test_logits, test_labels)}
    return {
        "method": "temperature",
        "temperature": temperature,
        "min_confidence": min_confidence,
        "target_precision": TARGET_PRECISION,
        "fitted_on": "validation",
        **{
            name: {
                "raw": report(calibrated(logits, 1.0), labels),
                "calibrated": report(calibrated(logits, temperature), labels, min_confidence),
            }
            for name, (logits, labels) in splits.items()
        },
    }
