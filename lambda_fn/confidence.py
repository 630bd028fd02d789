"""Logits -> an answer a catalog can trust: calibrated probabilities, and whether to publish it unread.

A network's raw softmax is over-confident: it says 99% far more often than it is right 99% of the time.
Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides the logits by one
scalar T, fitted at conversion on served logits (convert/calibrate.py), so that a probability p is right about
p of the time; the argmax, so the label, is unchanged. The conversion also picks min_confidence, the lowest
calibrated top probability at which the answers that clear it are proven right at least the target share of
the time (98% unless the conversion was given another; a one-sided 95% bound), on the shop's reviewed photos
where they prove it, else on the validation split (model.json "calibration" says which); above every
probability where nothing was proven. An answer below it is "not sure": it keeps its label (no caller breaks)
and names its likeliest candidates for a person to choose from.

The Lambda and the conversion gate both call these functions: the gate checks what serves.
"""

import numpy as np

from lambda_fn.answers import Prediction

MOST_CANDIDATES = 3  # a person reviewing a "not sure" answer chooses among at most this many labels


def calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) along the last axis, in float64 (one image or a batch)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    exp = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def candidates(ranked: list[tuple[str, float]], min_confidence: float) -> list[str]:
    """The likeliest labels that together reach min_confidence: at least two, at most MOST_CANDIDATES."""
    chosen, total = [], 0.0
    for label, probability in ranked[:MOST_CANDIDATES]:
        chosen.append(label)
        total += probability
        if len(chosen) >= 2 and total >= min_confidence:
            break
    return chosen


def answer(labels: list[str], probabilities: np.ndarray, min_confidence: float) -> Prediction:
    """The label, its probability, whether it clears min_confidence, and every class's, highest first;
    below min_confidence also the candidates a reviewer would choose from."""
    ranked = sorted(zip(labels, probabilities.tolist(), strict=True), key=lambda pair: -pair[1])
    confident = ranked[0][1] >= min_confidence
    body: Prediction = {
        "label": ranked[0][0],
        "probability": round(ranked[0][1], 6),
        "confident": confident,
        "probabilities": [{"label": label, "probability": round(p, 6)} for label, p in ranked],
    }
    if not confident:
        body["candidates"] = candidates(ranked, min_confidence)
    return body
