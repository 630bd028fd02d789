"""The function called for a catalog: files one by one, URLs in batches, each request under a rate limit and
retried with exponential backoff and jitter when the failure is transient; every answer checked for its shape
(lambda_fn/answers.py) before it becomes rows."""

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from catalog.client import Refused, Target, Transient, is_url
from catalog.results import row
from catalog.sources import Source
from lambda_fn.answers import shape_problem
from lambda_fn.errors import error_body


class RateLimit:
    """At most `rate` request starts a second, across every thread (None: no limit)."""

    def __init__(self, rate: float | None):
        self.interval = 1 / rate if rate else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> None:
        with self.lock:
            now = time.monotonic()
            start, self.next = max(now, self.next), max(now, self.next) + self.interval
        time.sleep(max(0.0, start - now))


def with_retries(call, attempts: int, rate: RateLimit, backoff: float) -> tuple[dict, int]:
    """(the answer, the attempts it took); the last transient failure becomes an error answer."""
    for attempt in range(1, attempts + 1):
        rate.take()
        try:
            return call(), attempt
        except Transient as err:
            if attempt == attempts:
                return error_body(503, "unavailable", f"gave up after {attempts} attempts: {err}"), attempt
            delay = backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)  # jitter: clients do not move in step
            time.sleep(max(delay, err.retry_after or 0.0))  # retry_after is at most client.MAX_RETRY_AFTER
    raise AssertionError("unreachable")


def bad_answer(problem: str) -> dict:
    return error_body(502, "bad_answer", f"the function's answer is not of the shape it must have: {problem}")


def checked(answer) -> dict:
    """The answer if its shape is right, else an error answer saying what is wrong with it."""
    problem = shape_problem(answer)
    return answer if problem is None else bad_answer(problem)


def classify(target: Target, batch: list[Source], attempts: int, rate: RateLimit, backoff: float) -> list[dict]:
    """The rows of one request: a file, or a batch of URLs."""
    if not is_url(batch[0].name):
        path = Path(batch[0].name)
        try:
            answer, tries = with_retries(lambda: target.file(path), attempts, rate, backoff)
        except Refused as err:  # not a regular file, or too large: not sent
            answer, tries = err.answer, 0
        except OSError as err:  # gone or unreadable since it was listed: its row says so, the run goes on
            answer, tries = error_body(404, "not_found", f"the file could not be read ({err.strerror or err})"), 0
        return [row(batch[0].name, checked(answer), tries)]
    answer, tries = with_retries(lambda: target.urls([s.name for s in batch]), attempts, rate, backoff)
    if len(batch) == 1 or (isinstance(answer, dict) and "error" in answer):  # one URL, or the whole batch refused
        return [row(s.name, checked(answer), tries) for s in batch]
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(batch):
        return [row(s.name, bad_answer(f"it is not a list of {len(batch)} results"), tries) for s in batch]
    return [
        row(s.name, checked({**result, "model": answer.get("model")} if isinstance(result, dict) else result), tries)
        for s, result in zip(batch, results, strict=True)
    ]


def requests_of(sources: Iterator[Source], batch: int) -> Iterator[list[Source]]:
    """Files one by one, URLs in batches, unreadable inputs alone (answered without a request)."""
    urls: list[Source] = []
    for source in sources:
        if source.problem is None and is_url(source.name):
            urls.append(source)
            if len(urls) == batch:
                yield urls
                urls = []
        else:
            yield [source]
    if urls:
        yield urls
