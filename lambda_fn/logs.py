"""Logs the way Lambda writes them with LoggingConfig LogFormat JSON, for the local server too.

In Lambda, awslambdaric formats every record as one JSON object a line:
timestamp, level, message, logger, requestId, and the record's `extra`
fields at top level, where CloudWatch Logs Insights can filter on them
(`filter status >= 500`). The handler logs its per-request record that
way; JsonLines prints the same shape outside Lambda.
"""

import json
import logging
import time

# Lambda's ApplicationLogLevel names (TRACE is DEBUG in Python, as in awslambdaric), and Python's own
LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}
METRICS_LOGGER = "fashion.metrics"  # the records that carry EMF blocks: always INFO, never filtered out
# What every LogRecord carries: anything else on a record came in through `extra`
STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object a line, as Lambda's JSON log format has it."""

    converter = staticmethod(time.gmtime)  # UTC, as Lambda stamps its records

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        line.update((k, v) for k, v in vars(record).items() if k not in STANDARD_FIELDS)
        if record.exc_info:
            line["stackTrace"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_json_lines(level: int) -> None:
    """Outside Lambda: every record to stderr as JsonLines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def apply_level(level: int) -> logging.Logger:
    """LOG_LEVEL filters the function's own records and every library's, here in the process; the metrics'
    records go out at INFO on a logger of their own whatever it says. In AWS, Lambda's ApplicationLogLevel
    filters again by each JSON line's level (a line without one counts as INFO), so the template keeps it
    at INFO or below (DEBUG): a WARN there would drop every metric. Returns the metrics' logger."""
    logging.getLogger().setLevel(level)  # awslambdaric set it from ApplicationLogLevel; LOG_LEVEL decides
    logging.getLogger("fashion").setLevel(level)
    metrics_log = logging.getLogger(METRICS_LOGGER)
    metrics_log.setLevel(logging.INFO)
    return metrics_log
