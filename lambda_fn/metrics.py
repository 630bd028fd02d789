"""Metrics through the log stream: CloudWatch's Embedded Metric Format (EMF) on each request's one log record.

CloudWatch Logs extracts metrics from any JSON log event that carries an `_aws` block naming them, with no
API call and no agent: the request's record (lambda_fn/app.py) gets that block, so the log stays one JSON
line per request and its fields become metrics. Written here rather than with Powertools' Metrics: this is
the whole of it (one dict), and the image needs no new package.

Dimensions are kept few (function and model variant: a new model shows as a new series); the label and the
error code stay properties of the record (searchable in Logs Insights), not dimensions, so a caller cannot
multiply the metrics CloudWatch bills for. infra/template.yaml's alarms and dashboard read these names.
"""

import os
import time

NAMESPACE = "FashionClassifier"
DIMENSIONS = ("FunctionName", "ModelVariant")
# metric (a top-level number of the request's record) -> its CloudWatch unit
UNITS = {
    "duration_ms": "Milliseconds",  # the whole request, as the function sees it
    "fetch_ms": "Milliseconds",
    "preprocess_ms": "Milliseconds",
    "inference_ms": "Milliseconds",
    "bytes": "Bytes",
    "images": "Count",  # classified: 1 a request, or a urls batch's successes
    "confident": "Count",  # of those, answers that cleared min_confidence
    "not_sure": "Count",  # ... and those that did not: the review queue's growth
    "client_errors": "Count",  # 1 for a 4xx answer: a sudden rise means callers send something new
    "server_errors": "Count",  # 1 for a 5xx answer (the image's server failing, or a bug)
    "failed_entries": "Count",  # urls entries that got an error
}
FUNCTION_NAME = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")  # Lambda's own variable, not a setting


def outcome_counts(status: int, answers: list[dict], batch: bool) -> dict[str, int]:
    """The counts a request adds: its status's class, and its answers' confidence (a urls batch: each entry's)."""
    classified = [a for a in answers if "label" in a]
    counts = {
        "images": len(classified),
        "confident": sum(a.get("confident") is True for a in classified),
        "not_sure": sum(a.get("confident") is False for a in classified),
        "client_errors": int(400 <= status < 500),
        "server_errors": int(status >= 500),
    }
    return counts | ({"failed_entries": len(answers) - len(classified)} if batch else {})


def embedded(record: dict, variant: str, now: float | None = None) -> dict:
    """The record with its EMF block: every metric of UNITS that the record holds as a number."""
    present = [name for name in UNITS if type(record.get(name)) in (int, float)]
    return {
        **record,
        "FunctionName": FUNCTION_NAME,
        "ModelVariant": variant,
        "_aws": {
            "Timestamp": int((time.time() if now is None else now) * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [list(DIMENSIONS)],
                    "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in present],
                }
            ],
        },
    }
