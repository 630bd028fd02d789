"""Metrics through the log stream: CloudWatch's Embedded Metric Format (EMF) on each request's one log record.

CloudWatch Logs extracts metrics from any JSON log event that carries an `_aws` block naming them, with no
API call and no agent: the request's record (lambda_fn/app.py) gets that block, so the log stays one JSON
line per request and its fields become metrics. Written here rather than with Powertools' Metrics: this is
the whole of it (one dict), and the image needs no new package.

Each dimension's value has one source, which the template reads too (tests/infra walks every combination):
FunctionName and FunctionVersion are Lambda's own (AWS_LAMBDA_FUNCTION_NAME and _VERSION; the template's
`!Ref Function` and `!GetAtt Function.Version.Version`), so the alarms watch exactly the series the function
writes, whatever parameters built or deployed it. A new image is a new version, so a retrained model is its
own series; the model itself (ModelVariant, ModelDigest) is named in every record for Logs Insights. The
label is a dimension of `images` alone (the model's labels: a few values no caller chooses); error codes stay
properties of the record, so a caller cannot multiply the metrics CloudWatch bills for.
"""

import itertools
import time
from dataclasses import dataclass

NAMESPACE = "FashionClassifier"
FUNCTION = ("FunctionName",)  # the whole function, every version: the heartbeat, drift, the dashboard
VERSION = ("FunctionName", "FunctionVersion")  # one published version: the rollback alarms of a deployment
LABEL = ("FunctionName", "label")  # `images` per answered label
# metric (a top-level number of the request's record) -> its CloudWatch unit
UNITS = {
    "duration_ms": "Milliseconds",  # the whole request, as the function sees it (its SampleCount: requests)
    "fetch_ms": "Milliseconds",
    "preprocess_ms": "Milliseconds",
    "inference_ms": "Milliseconds",  # the model's own time: what a rollback may blame on a new model
    "bytes": "Bytes",
    "images": "Count",  # classified: 1 a request, or a urls batch's successes
    "confident": "Count",  # of those, answers that cleared min_confidence
    "not_sure": "Count",  # ... and those that did not: the review queue's growth
    "expected_not_sure": "Count",  # how many of `images` the model's measured share says would be not sure
    "client_errors": "Count",  # 1 for a 4xx answer: a sudden rise means callers send something new
    "server_errors": "Count",  # 1 for a 5xx that is ours (a bug: internal_error)
    "upstream_errors": "Count",  # 1 for a 502/504: the image's server failed or was slow, not the model
    "failed_entries": "Count",  # urls entries that got an error
    "cold_start": "Count",  # 1 for an instance's first request
}
PER_VERSION = ("duration_ms", "inference_ms", "not_sure", "server_errors")  # what the rollback alarms read
UPSTREAM_STATUSES = (502, 504)  # the image's server (or the time its fetches took), never the model


@dataclass(frozen=True)
class Series:
    """The dimension values of this instance's records, each from the one place that knows it."""

    function_name: str
    function_version: str
    model_variant: str
    model_digest: str  # the first 12 hex digits of model.tflite's sha256

    @classmethod
    def of(cls, env, meta: dict, declared_variant: str | None) -> "Series":
        """Lambda's environment and the bundle's model.json; refuses a bundle that is not the variant the stack
        declares (the template's ModelVariant builds the image and is passed as MODEL_VARIANT: a deploy given
        another value than the build would leave the stack naming a model it does not serve)."""
        if declared_variant and declared_variant != meta["variant"]:
            raise ValueError(
                f"MODEL_VARIANT={declared_variant!r} (the stack's ModelVariant) but the image's bundle is "
                f"{meta['variant']!r}: pass the same ModelVariant to sam build and sam deploy"
            )
        return cls(
            env.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
            env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            meta["variant"],
            meta["tflite_sha256"][:12],
        )

    def fields(self) -> dict[str, str]:
        return {
            "FunctionName": self.function_name,
            "FunctionVersion": self.function_version,
            "ModelVariant": self.model_variant,
            "ModelDigest": self.model_digest,
        }


def expected_not_sure_share(meta: dict, own_threshold: bool) -> float | None:
    """The share of answers the conversion measured below the model's threshold on the held-out test split
    (model.json's parity figures); unknown at another threshold, or for a bundle made without them."""
    try:
        coverage = meta["parity"]["calibration"]["test"]["calibrated"]["confident_coverage"]
    except (KeyError, TypeError):
        return None
    return 1 - coverage if own_threshold and isinstance(coverage, int | float) else None


_starts = itertools.chain([1], itertools.repeat(0))


def cold_start() -> int:
    """1 for this instance's first request, 0 after (Lambda runs one request at a time on an instance)."""
    return next(_starts)


def outcome_counts(status: int, answers: list[dict], batch: bool, not_sure_share: float | None) -> dict:
    """The counts a request adds: its status's class, and its answers' confidence (a urls batch: each entry's)."""
    classified = [a for a in answers if "label" in a]
    counts: dict[str, int | float] = {
        "images": len(classified),
        "confident": sum(a.get("confident") is True for a in classified),
        "not_sure": sum(a.get("confident") is False for a in classified),
        "client_errors": int(400 <= status < 500),
        "server_errors": int(status >= 500 and status not in UPSTREAM_STATUSES),
        "upstream_errors": int(status in UPSTREAM_STATUSES),
    }
    if not_sure_share is not None:
        counts["expected_not_sure"] = round(not_sure_share * len(classified), 4)
    return counts | ({"failed_entries": len(answers) - len(classified)} if batch else {})


def directive(names: list[str], *dimension_sets: tuple[str, ...]) -> dict:
    return {
        "Namespace": NAMESPACE,
        "Dimensions": [list(d) for d in dimension_sets],
        "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in names],
    }


def emf(record: dict, directives: list[dict], now: float | None) -> dict:
    timestamp = int((time.time() if now is None else now) * 1000)
    return {**record, "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [d for d in directives if d["Metrics"]]}}


def embedded(record: dict, series: Series, now: float | None = None) -> dict:
    """The request's record with its EMF block: every metric of UNITS that the record holds as a number, each in
    one directive (a name never repeats), by the dimension sets the alarms and the dashboard read."""
    record = {**record, **series.fields()}
    present = [name for name in UNITS if type(record.get(name)) in (int, float)]
    labelled = isinstance(record.get("label"), str)
    return emf(
        record,
        [
            directive([n for n in present if n in PER_VERSION], FUNCTION, VERSION),
            directive([n for n in present if n == "images"], FUNCTION, VERSION, *([LABEL] if labelled else [])),
            directive([n for n in present if n not in PER_VERSION and n != "images"], FUNCTION),
        ],
        now,
    )


def embedded_entry(record: dict, series: Series, now: float | None = None) -> dict:
    """A urls entry's record: its answer's label counted as one of `images` per label (the request's own record
    counts the batch's images as a whole, so no series counts an entry twice)."""
    if not isinstance(record.get("label"), str):
        return record
    return emf({**record, **series.fields(), "images": 1}, [directive(["images"], LABEL)], now)
