"""Fit what lambda_fn/confidence.py applies, and measure how far the answers can be trusted.

Everything here reads served logits (the candidate .tflite on the Lambda's own interpreter, over images
made by the Lambda's own preprocessing) and the true labels, in numpy alone:

- fit_temperature: T minimising the validation split's negative log-likelihood. The NLL is convex in 1/T,
  so a golden-section search over log T finds its one minimum.
- prove: the threshold the service may promise, by "learn then test": the lowest of a fixed sequence of
  thresholds, tested from the highest down, at which a one-sided 95% Clopper-Pearson lower bound on the
  precision of the answers that clear it is at least the target (98%, or the shop's choice: convert
  --target-precision); where none is proven, about how many more photos would prove one.
- calibrate: model.json's "calibration": the temperature and threshold proven on the shop's reviewed photos
  that training did not see where they prove one, else on the validation split, saying which and why.
- report: expected calibration error (15 equal-width bins of the top probability, as Guo et al.), accuracy
  over every image, the confident share's accuracy and coverage, and accuracy at fixed coverages.

ECE measured on a few hundred images is biased upwards: even a perfectly calibrated model scores well above
zero, its bins holding few images. report() says how far, by simulation (ece_noise_floor): the ECE a model
whose every answer is right with exactly its stated probability would score on the same confidences.
"""

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.stats import beta

from lambda_fn.confidence import calibrated

TARGET_PRECISION = 0.98  # the share of accepted ("confident") answers that must be right (a shop may choose) ...
CONFIDENCE = 0.95  # ... proven with this confidence: a one-sided lower bound at 95% (prove)
THRESHOLDS = 1 - np.logspace(-6, 0, 601)  # the thresholds prove tests, highest first: fixed before any data
NOTHING_CONFIDENT = float(np.nextafter(1.0, 2.0))  # a threshold over every probability: no promise was proven
MOST_PHOTOS = 10_000_000  # more_photos_needed gives up past this many
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


@dataclass(frozen=True)
class Proof:
    """What testing the thresholds on one set of photos established: the lowest threshold proven (None: none),
    the answers it accepts there, the lower bound on their precision and, where nothing was proven, about how
    many more photos a proof would take."""

    photos: str  # "validation" (the course's validation split) or "shop" (reviewed photos training did not see)
    images: int
    target_precision: float
    confidence: float
    temperature: float
    min_confidence: float | None
    confident: int = 0  # answers at or over min_confidence ...
    right: int = 0  # ... and how many of them are right
    bound: float | None = None  # the one-sided Clopper-Pearson lower bound on their precision, at `confidence`
    coverage: float = 0.0
    more_photos_needed: int | None = None  # no proof: an estimate at the observed error rate (None: no number)

    @property
    def proven(self) -> bool:
        return self.min_confidence is not None

    def to_json(self) -> dict:
        return {**asdict(self), "proven": self.proven}


def precision_bound(right, confident, confidence: float = CONFIDENCE):
    """The one-sided Clopper-Pearson lower bound on a precision: the lowest p at which `right` or more right
    answers out of `confident` would be seen at least 1 - confidence of the time, the alpha quantile of
    Beta(right, confident - right + 1); 0 where nothing is right (or nothing accepted). Numbers or arrays."""
    right, confident = np.asarray(right, np.float64), np.asarray(confident, np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - confidence, right, confident - right + 1)
    return np.where(right > 0, np.nan_to_num(bound), 0.0)


class BadTarget(ValueError):
    """A promised precision that cannot be promised; the message says what is accepted."""


def checked_target(target: float) -> float:
    """The precision a shop chooses to promise, or BadTarget: a share strictly between 0 and 1 (a promise of 1
    could never be proven on a finite number of photos, one of 0 promises nothing)."""
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
        raise BadTarget(
            f"--target-precision {target!r} is not a share strictly between 0 and 1: give e.g. 0.95 to promise that "
            f"95% of the confident answers are right (default {TARGET_PRECISION})"
        )
    return float(target)


def fewest_to_prove(target: float = TARGET_PRECISION, confidence: float = CONFIDENCE) -> int:
    """The fewest confident answers that can prove precision >= target, all of them right: n right of n bound
    it at (1 - confidence)^(1/n), so n >= log(1 - confidence) / log(target) (149 for 98% at 95%)."""
    return math.ceil(math.log(1 - confidence) / math.log(target))


def prove(
    probabilities: np.ndarray,
    labels: np.ndarray,
    photos: str,
    temperature: float,
    target: float = TARGET_PRECISION,
    confidence: float = CONFIDENCE,
) -> Proof:
    """Learn then test (Angelopoulos, Bates, Candes, Jordan, Lei 2021): the threshold the service may promise.

    The thresholds tested are THRESHOLDS, fixed before any photo is seen: 1 - 10^(-k/100) for k = 600 ... 0,
    from 0.999999 down to 0. Each threshold t carries the hypothesis "the answers whose calibrated top
    probability is >= t are right less than `target` of the time"; it is rejected (t is proven) when the
    one-sided Clopper-Pearson lower bound at `confidence` on the precision of the answers at or over t, on
    these photos, is >= target. Testing many thresholds at once would inflate the chance of proving a false
    one; a fixed-sequence test does not: the thresholds are tested from the highest down, each at the full
    level, and the scan stops at the first that fails. The one returned is the lowest proven before that
    stop (None: the first tested failed), and the chance that it was proven falsely is at most 1 - confidence.
    Thresholds that accept fewer answers than a proof needs with none wrong (149 for 98% at 95%) are passed
    over: they could not be proven whatever the answers, so testing them could only stop the scan early.
    Which thresholds they are depends on the confidences alone, not on which answers are right, so the
    sequence is still fixed before the test looks at correctness (the test is conditional on the confidences).

    The caveat: the temperature is fitted on the same photos. It is one number fitted by likelihood, not
    chosen for the threshold, so the 95% is nominal rather than exact.

    With no threshold proven, more_photos_needed estimates how many more photos like these would prove one
    (more_photos_needed); None where more photos alone would not, as their answers are right too rarely.
    """
    top, correct = probabilities.max(1), probabilities.argmax(1) == labels
    order = np.argsort(-top, kind="stable")
    ranked, right_so_far = top[order], np.concatenate([[0], np.cumsum(correct[order])])
    accepted = np.searchsorted(-ranked, -THRESHOLDS, side="right")  # answers with top >= each threshold
    right = right_so_far[accepted]
    base = Proof(photos, int(len(labels)), target, confidence, temperature, None)
    k = lowest_proven(accepted, right, target, confidence)
    if k is None:
        return replace(base, more_photos_needed=more_photos_needed(accepted, right, target, confidence))
    return replace(
        base,
        min_confidence=float(THRESHOLDS[k]),
        confident=int(accepted[k]),
        right=int(right[k]),
        bound=float(precision_bound(right[k], accepted[k], confidence)),
        coverage=float(accepted[k] / len(labels)),
    )


def lowest_proven(accepted: np.ndarray, right: np.ndarray, target: float, confidence: float) -> int | None:
    """The fixed-sequence test over THRESHOLDS given each one's accepted and right answers (prove): the index of
    the lowest threshold proven before the first failure, or None."""
    tested = np.flatnonzero(accepted >= fewest_to_prove(target, confidence))
    failed = tested[precision_bound(right[tested], accepted[tested], confidence) < target]
    passed = tested[tested < failed[0]] if len(failed) else tested
    return int(passed[-1]) if len(passed) else None


def more_photos_needed(accepted: np.ndarray, right: np.ndarray, target: float, confidence: float) -> int | None:
    """prove's estimate where it proved nothing: the fewest more photos, in steps of 10%, with which photos like
    these (each threshold's accepted and right answers scaled alike) would prove a threshold; None past
    MOST_PHOTOS photos; with no photos at all, the zero-error minimum."""
    images = int(accepted[-1])  # the last threshold, 0, accepts every answer
    if not images:
        return fewest_to_prove(target, confidence)
    scale = 1.0
    while scale * images <= MOST_PHOTOS:
        scale *= 1.1
        if lowest_proven(accepted * scale, right * scale, target, confidence) is not None:
            return math.ceil((scale - 1) * images)
    return None


def min_confidence_for(probabilities: np.ndarray, labels: np.ndarray, precision: float = TARGET_PRECISION) -> float:
    """prove's threshold on these (calibrated) probabilities; above every answer (nothing confident) where none
    was proven."""
    found = prove(probabilities, labels, "validation", 1.0, precision).min_confidence
    return NOTHING_CONFIDENT if found is None else found


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
        # how far the confident answers' precision on this split is known: its lower bound at CONFIDENCE
        figures["confident_accuracy_bound"] = float(precision_bound(correct[confident].sum(), confident.sum()))
    return figures


def calibrate(
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    shop: tuple[np.ndarray, np.ndarray] | None = None,
    not_these: np.ndarray | None = None,
    target: float = TARGET_PRECISION,
) -> dict:
    """model.json's "calibration": the temperature and threshold served, on which photos their promise was
    proven (prove), and every split's figures before (raw softmax) and after.

    With the shop's reviewed photos (`shop`: logits and labels of those training did not see) the temperature
    and the threshold are fitted and proven on them, as they are the photos the promise is made about. Where
    they prove no threshold, the validation split's pair is served and "fallback" says so, with how many more
    photos a proof on the shop's would take: the course's photos are not the shop's, but a shop that has
    reviewed too few photos is no worse off than one that reviewed none. Where validation proves none either,
    nothing is confident: the service still answers, every answer "not sure" with its candidates, and makes
    no promise nobody proved. `not_these`: logits of photos reviewed as none of the classes, of which the share
    answered "confident" is what the promise does not cover. `target`: the precision promised (checked_target)."""
    target = checked_target(target)
    val_temperature = fit_temperature(val_logits, val_labels)
    proofs = {
        "validation": prove(calibrated(val_logits, val_temperature), val_labels, "validation", val_temperature, target)
    }
    if shop is not None:
        shop_temperature = fit_temperature(*shop) if len(shop[1]) else 1.0
        proofs["shop"] = prove(calibrated(shop[0], shop_temperature), shop[1], "shop", shop_temperature, target)
    served, why = proofs.get("shop", proofs["validation"]), []
    if not served.proven and served is not proofs["validation"]:
        served = proofs["validation"]
        why.append(
            f"the {proofs['shop'].images} reviewed shop photos training did not see prove no threshold "
            f"({more_photos_text(proofs['shop'])}): the validation split's temperature and threshold are served"
        )
    if not served.proven:
        why.append(f"the validation split proves no threshold ({more_photos_text(served)}): no answer is confident")
    temperature = served.temperature
    min_confidence = NOTHING_CONFIDENT if served.min_confidence is None else served.min_confidence
    splits = {"validation": (val_logits, val_labels), "test": (test_logits, test_labels)}
    if shop is not None and len(shop[1]):
        splits["shop"] = shop
    outside = {}
    if not_these is not None:
        answered = calibrated(not_these, temperature).max(1, initial=0) >= min_confidence
        outside = {"not_these_classes": {"photos": len(answered), "answered_confident": int(answered.sum())}}
    return {
        "method": "temperature",
        "temperature": temperature,
        "min_confidence": min_confidence,
        "target_precision": target,
        "confidence": CONFIDENCE,
        "fitted_on": served.photos,
        "proof": served.to_json(),
        "fallback": "; and ".join(why) or None,
        "proofs": {photos: proof.to_json() for photos, proof in proofs.items()},
        **{
            name: {
                "raw": report(calibrated(logits, 1.0), labels),
                "calibrated": report(calibrated(logits, temperature), labels, min_confidence),
            }
            for name, (logits, labels) in splits.items()
        },
        **outside,
    }


def more_photos_text(proof: Proof) -> str:
    if proof.more_photos_needed is None:
        return f"its answers are right less than {proof.target_precision * 100:g}% of the time at every threshold"
    return f"about {proof.more_photos_needed} more photos like them would be needed"
