"""The shape of every answer the function gives, declared once: the function builds its answers as these
types, and the catalog tools (catalog/), which import this package (never the reverse), check what comes
back against the same declaration before they use it.

A prediction (confidence.answer, plus the model that made it), a list of them for a urls batch (each with its
url, or that URL's error), or an error body (errors.error_body).
"""

import json
import math
from typing import NotRequired, TypedDict

from lambda_fn.errors import has_lone_surrogate


class ModelId(TypedDict):
    """Which model answered, and the bar its confident answers were held to (app.MODEL_ID)."""

    name: str
    sha256: str
    min_confidence: float
    target_precision: float | None  # None under a MIN_CONFIDENCE override: only the model's own bar was measured


class Ranked(TypedDict):
    label: str
    probability: float


class Prediction(TypedDict):
    label: str
    probability: float  # calibrated
    confident: bool
    candidates: NotRequired[list[str]]  # only when not confident: the labels a reviewer chooses from
    probabilities: list[Ranked]  # every class, highest first
    model: NotRequired[ModelId]  # on a single answer; a urls batch names it once, beside its results


class ErrorDetail(TypedDict):
    status: int
    code: str  # one of errors.STATUS
    message: str
    request_id: NotRequired[str]  # on internal errors


class ErrorAnswer(TypedDict):
    error: ErrorDetail


class BatchAnswer(TypedDict):
    results: list[dict]  # each a Prediction or an ErrorAnswer, with its "url"
    model: ModelId


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_probability(value) -> bool:
    return is_number(value) and 0 <= value <= 1


def is_text(value) -> bool:
    return isinstance(value, str) and value != ""


def is_unicode(value) -> bool:
    """No string in this JSON value holds a lone surrogate (what a \\ud800 escape decodes to): UTF-8 cannot write
    it, so no results file could hold it."""
    return not has_lone_surrogate(json.dumps(value, ensure_ascii=False))


def model_problem(model) -> str | None:
    fine = (
        isinstance(model, dict)
        and all(isinstance(model.get(k), str | None) for k in ("name", "sha256"))
        and all(is_number(model.get(k)) or model.get(k) is None for k in ("min_confidence", "target_precision"))
    )
    return None if fine else "its model is not an object with a name and a sha256"


def shape_problem(answer) -> str | None:
    """What is wrong with the shape of one answer (a Prediction or an ErrorAnswer), or None. A proxy, a
    misconfigured stage or a compromised endpoint can answer anything: a client checks before it uses."""
    if not isinstance(answer, dict):
        return f"it is a JSON {type(answer).__name__}, not an object"
    if not is_unicode(answer):
        return "it holds text that is not Unicode (a lone surrogate)"
    if answer.get("model") is not None and (problem := model_problem(answer["model"])):
        return problem
    if "error" in answer:
        err = answer["error"]
        fine = isinstance(err, dict) and is_text(err.get("code")) and isinstance(err.get("message"), str)
        return None if fine else "its error is not an object with a code and a message"
    if not is_text(answer.get("label")) or not is_probability(answer.get("probability")):
        return "it has no label with a probability between 0 and 1"
    if not isinstance(answer.get("confident"), bool | None):
        return "its confident is not true or false"
    candidates = answer.get("candidates")
    if candidates is not None and not (isinstance(candidates, list) and all(is_text(c) for c in candidates)):
        return "its candidates are not a list of labels"
    top = answer.get("probabilities")
    if not isinstance(top, list) or not all(
        isinstance(p, dict) and isinstance(p.get("label"), str) and is_probability(p.get("probability")) for p in top
    ):
        return "its probabilities are not a list of labels with probabilities"
    return None
