"""CloudWatch's Embedded Metric Format, checked against its specification (what CloudWatch Logs requires of a
log event before it extracts metrics from it; an event that breaks a rule is kept as a log, its metrics lost)."""

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip
MOST_METRICS, MOST_DIMENSIONS = 100, 30


def emf_problems(event: dict) -> list[str]:
    """What makes this log event not valid EMF (empty: valid)."""
    aws = event.get("_aws")
    if not isinstance(aws, dict):
        return ["no _aws object"]
    problems = []
    if not isinstance(aws.get("Timestamp"), int) or aws["Timestamp"] <= 0:
        problems.append("_aws.Timestamp is not a positive integer of milliseconds")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*problems, "_aws.CloudWatchMetrics is not a non-empty list"]
    for directive in directives:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
            problems.append(f"namespace {namespace!r}")
        for dimension_set in directive.get("Dimensions", []):
            if len(dimension_set) > MOST_DIMENSIONS:
                problems.append(f"{len(dimension_set)} dimensions in a set (at most {MOST_DIMENSIONS})")
            problems += [
                f"dimension {d!r} has no string value" for d in dimension_set if not isinstance(event.get(d), str)
            ]
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list) or len(metrics) > MOST_METRICS:
            problems.append(f"Metrics is not a list of at most {MOST_METRICS}")
            continue
        for metric in metrics:
            name, value = metric.get("Name"), event.get(metric.get("Name"))
            if not isinstance(name, str) or not 1 <= len(name) <= 1024:
                problems.append(f"metric name {name!r}")
            if metric.get("Unit", "None") not in UNITS:
                problems.append(f"metric {name!r} has unit {metric.get('Unit')!r}")
            if type(value) not in (int, float) and not (isinstance(value, list) and len(value) <= 100):
                problems.append(f"metric {name!r} has no numeric value ({value!r})")
    return problems


def published_series(event: dict) -> set[tuple[str, str, frozenset]]:
    """(namespace, metric, dimensions as (name, value) pairs) of every series this valid EMF event adds a value to."""
    return {
        (directive["Namespace"], metric["Name"], frozenset((d, event[d]) for d in dimension_set))
        for directive in event["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
        for dimension_set in directive["Dimensions"]
    }
