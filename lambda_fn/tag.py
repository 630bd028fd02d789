"""Tag a whole catalog through the function: many requests at once, retries, a file of results, resume.

    python -m lambda_fn.tag --api "$API_URL" photos/ urls.txt catalog.csv --column image_url --out tags.jsonl
    python -m lambda_fn.tag --api "$API_URL" photos/ urls.txt catalog.csv --column image_url --out tags.jsonl --resume
    python -m lambda_fn.tag --endpoint http://127.0.0.1:9000 photos/ --jobs 4 --format csv --out tags.csv

Sources, in any mix: image files; folders (every .jpg, .jpeg, .png and .webp below them); text files of
URLs (one a line; # starts a comment); CSV files whose --column holds a URL or a path. Each source gets one
row: its label, probability and top 3, or its error (code and message), the model's name and sha256, and
the attempts it took. Rows are written as they arrive and flushed, so a run that is stopped keeps every
answer it had; --resume skips the sources the output file already answers (and, with --skip-failed, those
it holds an error for), and writes each of the others once.

URLs go in {"urls": [...]} batches of up to --batch (the function's MAX_URLS; 10 by default); files go as
raw bodies over the API, as {"image": base64} to a function. Throttling (429), the gateway's 502/503/504 and
broken connections are retried with exponential backoff and jitter, honouring Retry-After, up to --attempts;
an error that another try would not change (a 422: the photo's fault) is written at once. --rate caps the
requests a second, to stay under the API stage's throttle (20 a second, bursts of 40, by default).
"""

import argparse
import csv
import io
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from lambda_fn.client import Target, Transient, add_target_arguments, error, is_url, target_of

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
COLUMNS = ["source", "label", "probability", "top3", "error_code", "error_message", "model", "model_sha256", "attempts"]


@dataclass(frozen=True)
class Source:
    """One thing to classify: a URL or a file, or an input that could not be read (its error set)."""

    name: str  # the URL, or the path as given: the row's key, for resume
    problem: dict | None = None


def read_sources(inputs: list[str], column: str) -> Iterator[Source]:
    """Every source the inputs name, in order, each once."""
    seen: set[str] = set()
    for found in expand(inputs, column):
        if found.name not in seen:
            seen.add(found.name)
            yield found


def expand(inputs: list[str], column: str) -> Iterator[Source]:
    for given in inputs:
        path = Path(given)
        if is_url(given):
            yield Source(given)
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            yield from (Source(str(p)) for p in found)
        elif path.suffix.lower() == ".txt" and path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    yield Source(line.strip())
        elif path.suffix.lower() == ".csv" and path.is_file():
            yield from csv_sources(path, column)
        elif path.is_file():
            yield Source(given)
        else:
            yield Source(given, error(404, "not_found", "neither an http(s) URL nor a file or folder that exists"))


def csv_sources(path: Path, column: str) -> Iterator[Source]:
    with path.open(newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            message = f"no column {column!r} (it has {reader.fieldnames}); name the URL or path column with --column"
            yield Source(str(path), error(400, "invalid_input", message))
            return
        for row in reader:
            value = (row.get(column) or "").strip()
            if value and None not in row:
                yield Source(value if is_url(value) else str(path.parent / value))
            else:  # an empty cell, or more cells than the header has
                where = f"{path}:{reader.line_num}"
                yield Source(where, error(400, "invalid_input", f"row {reader.line_num} has no usable {column!r}"))


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
                return error(503, "unavailable", f"gave up after {attempts} attempts: {err}"), attempt
            delay = backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)  # jitter: clients do not move in step
            time.sleep(max(delay, err.retry_after or 0.0))
    raise AssertionError("unreachable")


def row(source: str, answer: dict, attempts: int) -> dict:
    model = answer.get("model") or {}
    err = answer.get("error") or {}
    top = answer.get("probabilities") or []
    return {
        "source": source,
        "label": answer.get("label"),
        "probability": answer.get("probability"),
        "top3": [[p["label"], p["probability"]] for p in top[:3]],
        "error_code": err.get("code"),
        "error_message": err.get("message"),
        "model": model.get("name"),
        "model_sha256": model.get("sha256"),
        "attempts": attempts,
    }


def classify(target: Target, batch: list[Source], attempts: int, rate: RateLimit, backoff: float) -> list[dict]:
    """The rows of one request: a file, or a batch of URLs."""
    if not is_url(batch[0].name):
        path = Path(batch[0].name)
        try:
            answer, tries = with_retries(lambda: target.file(path), attempts, rate, backoff)
        except OSError as err:  # gone or unreadable since it was listed: its row says so, the run goes on
            answer, tries = error(404, "not_found", f"the file could not be read ({err.strerror or err})"), 0
        return [row(batch[0].name, answer, tries)]
    answer, tries = with_retries(lambda: target.urls([s.name for s in batch]), attempts, rate, backoff)
    if len(batch) == 1 or "results" not in answer:  # one URL, or the whole batch refused
        return [row(s.name, answer, tries) for s in batch]
    results = zip(batch, answer["results"], strict=True)
    return [row(s.name, {**result, "model": answer.get("model")}, tries) for s, result in results]


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


class Output:
    """The results file: JSON Lines or CSV, a row per source, flushed as each arrives."""

    def __init__(self, path: Path | None, form: str, keep: list[dict]):
        self.form = form
        self.file = path.open("w", newline="") if path else sys.stdout
        if form == "csv":
            self.writer = csv.DictWriter(self.file, COLUMNS)
            self.writer.writeheader()
        for kept in keep:
            self.write(kept)

    def write(self, result: dict) -> None:
        if self.form == "csv":
            self.writer.writerow({**result, "top3": ";".join(f"{label}:{p}" for label, p in result["top3"])})
        else:
            self.file.write(json.dumps(result) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not sys.stdout:
            self.file.close()


def previous_rows(path: Path, form: str) -> list[dict]:
    """The rows a stopped run wrote (a line cut off by the stop is dropped)."""
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    if form == "csv":
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(io.StringIO(complete)))
        for r in rows:
            r["top3"] = [[label, float(p)] for label, p in (t.rsplit(":", 1) for t in r["top3"].split(";") if t)]
            r["attempts"] = int(r["attempts"])
            r["probability"] = float(r["probability"]) if r["probability"] else None
            for key in ("label", "error_code", "error_message", "model", "model_sha256"):
                r[key] = r[key] or None
        return rows
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


class Progress:
    """On stderr: a bar redrawn in place on a terminal, else a line every `every` seconds."""

    def __init__(self, total: int, every: float):
        self.total, self.every, self.done, self.errors = total, every, 0, 0
        self.started = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()

    def add(self, rows: list[dict]) -> None:
        self.done += len(rows)
        self.errors += sum(r["error_code"] is not None for r in rows)
        now = time.monotonic()
        if self.tty or now - self.last >= self.every or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate if rate else float("inf")
            bar = "#" * (30 * self.done // max(self.total, 1))
            line = f"[{bar:<30}] {self.done}/{self.total} {rate:.1f} images/s, {self.errors} errors, {left:.0f} s left"
            sys.stderr.write(("\r" + line) if self.tty else line + "\n")
            sys.stderr.flush()


def summary(rows: list[dict], seconds: float) -> str:
    labels = Counter(r["label"] for r in rows if r["error_code"] is None)
    errors = Counter(r["error_code"] for r in rows if r["error_code"] is not None)
    lines = [f"{len(rows)} sources in {seconds:.1f} s ({len(rows) / max(seconds, 1e-9):.1f} images/s)"]
    lines += [f"  {label}: {count}" for label, count in labels.most_common()]
    lines += [f"  error {code}: {count}" for code, count in errors.most_common()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    kept = previous_rows(args.out, args.format) if args.resume and args.out else []
    kept = [r for r in kept if r["error_code"] is None or args.skip_failed]
    done = {r["source"] for r in kept}
    sources = [s for s in read_sources(args.inputs, args.column) if s.name not in done]
    output = Output(args.out, args.format, kept)
    target = target_of(args)
    rate = RateLimit(args.rate)
    progress = Progress(len(sources), args.progress_every)
    written: list[dict] = []
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            pending: set[Future] = set()
            for batch in requests_of(iter(sources), args.batch):
                if batch[0].problem is not None:
                    results = [row(batch[0].name, batch[0].problem, 0)]
                else:
                    pending.add(pool.submit(classify, target, batch, args.attempts, rate, args.backoff))
                    results = []
                    if len(pending) >= 2 * args.jobs:  # keep the pool fed, not the whole catalog in memory
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        results = [r for f in finished for r in f.result()]
                for result in results:
                    output.write(result)
                written += results
                progress.add(results)
            for future in pending:
                results = future.result()
                for result in results:
                    output.write(result)
                written += results
                progress.add(results)
    finally:
        output.close()
        if progress.tty:
            sys.stderr.write("\n")
    print(summary(written, time.monotonic() - started), file=sys.stderr)
    return 1 if any(r["error_code"] is not None for r in written) else 0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files, folders, URLs, .txt lists of URLs, .csv files")
    add_target_arguments(p)
    p.add_argument("--out", type=Path, help="the results file (default: standard output)")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--column", default="url", help="the CSV column holding a URL or a path (default: url)")
    p.add_argument("--jobs", type=int, default=8, help="requests at once (default: 8)")
    p.add_argument("--batch", type=int, default=10, help="URLs a request, up to the function's MAX_URLS (10)")
    p.add_argument("--rate", type=float, help="the most requests a second (the API's throttle: 20)")
    p.add_argument("--attempts", type=int, default=6, help="tries a request gets (default: 6)")
    p.add_argument("--backoff", type=float, default=0.5, help="seconds before the first retry, doubling after")
    p.add_argument("--resume", action="store_true", help="skip the sources --out already answers")
    p.add_argument("--skip-failed", action="store_true", help="with --resume: skip its failed sources too")
    p.add_argument("--progress-every", type=float, default=10, help="seconds between progress lines off a terminal")
    args = p.parse_args(argv)
    for name in ("jobs", "batch", "attempts"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.resume and not args.out:
        p.error("--resume needs --out: the file to resume")
    return args


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
