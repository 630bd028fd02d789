"""CloudWatch's side of the alarms and the dashboard, for the tests: the series each one reads, and what a metric
math expression computes from given sums (the subset of the expression language infra/template.yaml uses)."""

import json
import math
import re

import numpy as np

Series = tuple[str, str, frozenset]  # namespace, metric, dimensions as (name, value) pairs


def series_of(stat: dict) -> Series:
    """An alarm's metric (its MetricStat's Metric, or the alarm's own properties) as a series."""
    return stat["Namespace"], stat["MetricName"], frozenset((d["Name"], d["Value"]) for d in stat["Dimensions"])


def alarm_series(properties: dict) -> list[Series]:
    stats = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
    return [series_of(s) for s in stats + ([properties] if "MetricName" in properties else [])]


def widget_series(metrics: list[list]) -> list[Series]:
    """A metric widget's rows, CloudWatch's "." (same as the row above) and "..." (all of it) shorthand expanded.
    Rows that are expressions are left to search_queries."""
    found: list[Series] = []
    previous: list = []
    for row in metrics:
        if isinstance(row[0], dict):
            continue
        items = [item for item in row if not isinstance(item, dict)]
        if items[0] == "...":
            items = previous
        items = [previous[k] if item == "." else item for k, item in enumerate(items)]
        previous = items
        pairs = zip(items[2::2], items[3::2], strict=True)
        found.append((items[0], items[1], frozenset(pairs)))
    return found


SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\} (?P<terms>[^']*)'")


def search_queries(metrics: list[list]) -> list[tuple[str, frozenset, dict[str, str]]]:
    """(namespace, dimension names of the schema, the name="value" terms) of each SEARCH expression row."""
    found = []
    for row in metrics:
        if isinstance(row[0], dict) and "expression" in row[0]:
            match = SEARCH.search(row[0]["expression"])
            assert match, row[0]["expression"]
            namespace, *names = match["schema"].split(",")
            terms = dict(re.findall(r'(\w+)="([^"]*)"', match["terms"]))
            found.append((namespace, frozenset(names), terms))
    return found


def dashboard_widgets(body: str) -> list[dict]:
    return json.loads(body)["widgets"]


def metric_math(expression: str, **values: float | None) -> float:
    """The expression's value for one period, each metric id's statistic given (None: no data point). Both
    branches of IF are computed, as CloudWatch does: a division by zero is a value, not an error."""
    python = " ".join(expression.split()).replace(" AND ", " and ").replace(" OR ", " or ")
    names = {
        "IF": lambda condition, yes, no: yes if condition else no,
        "FILL": lambda value, fill: fill if value is None else value,
        "SQRT": lambda x: np.sqrt(np.float64(x)),
        **{k: None if v is None else np.float64(v) for k, v in values.items()},
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        result = eval(python, {"__builtins__": {}}, names)  # noqa: S307 - the template's own expressions
    return float(result) if not math.isnan(result) else math.nan
