"""Tag a whole catalog through the function: many requests at once, retries, a file of results, resume.

    python -m lambda_fn.tag --api "$API_URL" photos/ urls.txt catalog.csv --column image_url --out tags.jsonl
    python -m lambda_fn.tag --api "$API_URL" photos/ urls.txt catalog.csv --column image_url --out tags.jsonl --resume
    python -m lambda_fn.tag --endpoint http://127.0.0.1:9000 photos/ --jobs 4 --format csv --out tags.csv

Sources, in any mix: image files; folders (every .jpg, .jpeg, .png and .webp below them); text files of
URLs (one http(s) URL a line; # starts a comment); CSV files whose --column holds a URL or a path inside the
CSV's own folder (a catalog from someone else cannot send this machine's other files anywhere). Each source
gets one row: its label, calibrated probability, whether the model is confident of it, the threshold it was
held to and the precision that threshold promises, the top 3, or its error (code and message), the model's
name and sha256, and the attempts it took. Rows are written as they arrive and flushed, so a run that is
stopped keeps every answer it had; --resume skips the sources the output file already answers (and, with
--skip-failed, those it holds an error for), and writes each of the others once. --review FILE also writes
the answers the model is not sure of to FILE: the queue a person looks at; the rest can be published unread.

Every answer is checked for the shape it must have before it is used: one of another shape, over 1 MiB, or
slower than the request's deadline becomes its sources' error row, and the run goes on. CSV cells that a
spreadsheet would run as a formula (=, +, -, @, tab, CR) are written behind a ' (OWASP's advice).

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
import math
import mimetypes
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from lambda_fn.client import Refused, Target, Transient, add_target_arguments, is_url, target_of
from lambda_fn.errors import echo, error_body
from lambda_fn.events import IMAGE_TYPES, MAX_URL_CHARS

# what a folder's photos may be: the types the API takes as a raw body (events.IMAGE_TYPES), by file suffix
IMAGE_SUFFIXES = {suffix for kind in IMAGE_TYPES for suffix in mimetypes.guess_all_extensions(kind)}
MAX_CSV_LINE_CHARS = 1024 * 1024  # a catalog's row is a few hundred characters; the csv module caps a cell at 128 KiB
# A row's columns and what each holds (a row restored by --resume must have these, or it is asked again)
COLUMNS: dict[str, Callable[[object], bool]] = {
    "source": lambda v: is_text(v),
    "label": lambda v: v is None or is_text(v),
    "probability": lambda v: v is None or is_probability(v),
    "confident": lambda v: v is None or isinstance(v, bool),
    "min_confidence": lambda v: v is None or is_number(v),
    "target_precision": lambda v: v is None or is_number(v),
    "top3": lambda v: isinstance(v, list) and all(is_pair(p) for p in v),
    "error_code": lambda v: v is None or is_text(v),
    "error_message": lambda v: v is None or is_text(v),
    "model": lambda v: v is None or is_text(v),
    "model_sha256": lambda v: v is None or is_text(v),
    "attempts": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
}
# A spreadsheet runs a cell that starts with these as a formula (OWASP, "CSV Injection"): such a cell is written
# behind a ', and so is one that starts with ' itself, so that reading a cell back only drops the first '
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_probability(value) -> bool:
    return is_number(value) and 0 <= value <= 1


def is_text(value) -> bool:
    return isinstance(value, str) and value != ""


def is_pair(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and is_probability(value[1])


@dataclass(frozen=True)
class Source:
    """One thing to classify: a URL or a file, or an input that could not be read (its error set)."""

    name: str  # the URL, or the path as given: the row's key, for resume
    problem: dict | None = None


def invalid(where: str, message: str) -> Source:
    return Source(where, error_body(400, "invalid_input", message))


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
            yield from url_list(path)
        elif path.suffix.lower() == ".csv" and path.is_file():
            yield from csv_sources(path, column)
        elif path.is_file():
            yield Source(given)
        else:
            yield Source(given, error_body(404, "not_found", "neither an http(s) URL nor a file or folder that exists"))


def url_list(path: Path) -> Iterator[Source]:
    """A list of URLs holds http(s) URLs, one a line: a path or any other line is its own error row."""
    with path.open(errors="replace") as f:
        for number, line in enumerate(bounded_lines(f, MAX_URL_CHARS), 1):
            text = line.strip() if line is not None else None
            if text is None:
                yield invalid(f"{path}:{number}", f"line {number} is over {MAX_URL_CHARS} characters: not a URL")
            elif text and not text.startswith("#"):
                yield Source(text) if is_url(text) else invalid(text, f"not an http(s) URL: {echo(text)}")


def bounded_lines(f, most: int) -> Iterator[str | None]:
    """The file's lines, each read no further than `most` characters (None for a longer one, skipped whole)."""
    while line := f.readline(most + 2):
        if len(line) > most + 1 and not line.endswith("\n"):
            while (rest := f.readline(most)) and not rest.endswith("\n"):
                pass
            yield None
        else:
            yield line


def csv_sources(path: Path, column: str) -> Iterator[Source]:
    """The column's URLs, and its paths inside the CSV's own folder; an unreadable row is its own error row."""
    folder, too_long = path.parent.resolve(), []

    def lines(f) -> Iterator[str]:  # what the csv module reads: a line over the limit becomes a blank (skipped)
        for number, line in enumerate(bounded_lines(f, MAX_CSV_LINE_CHARS), 1):
            if line is None:
                too_long.append(number)
            yield line or "\n"

    with path.open(newline="", errors="replace") as f:
        reader = csv.DictReader(lines(f))
        try:
            names = reader.fieldnames or []
        except csv.Error as err:
            yield invalid(str(path), f"the CSV's header cannot be read ({err})")
            return
        if column not in names:
            message = f"no column {column!r} (it has {names}); name the URL or path column with --column"
            yield invalid(str(path), message)
            return
        while True:
            try:
                found = next(reader)
            except StopIteration:
                found = None
            except csv.Error as err:  # a cell over the csv module's limit (128 KiB) ...: the reader goes on after it
                yield invalid(f"{path}:{reader.line_num}", f"row {reader.line_num} cannot be read ({err})")
                continue
            while too_long:
                number = too_long.pop(0)
                yield invalid(f"{path}:{number}", f"line {number} is over {MAX_CSV_LINE_CHARS} characters")
            if found is None:
                return
            yield csv_source(path, folder, reader.line_num, (found.get(column) or "").strip(), None in found)


def csv_source(path: Path, folder: Path, line: int, value: str, extra_cells: bool) -> Source:
    where = f"{path}:{line}"
    if not value or extra_cells:  # an empty cell, or more cells than the header has
        return invalid(where, f"row {line} has no usable value in its column")
    if is_url(value):
        return Source(value)
    inside = (path.parent / value).resolve()
    if not inside.is_relative_to(folder):
        return invalid(where, f"row {line} names {echo(value)}, outside the CSV's folder: only its own files are sent")
    return Source(str(path.parent / value))


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


def shape_problem(answer) -> str | None:
    """What is wrong with the shape of one answer (a prediction, or an error), or None: a proxy, a misconfigured
    stage or a compromised endpoint can answer anything, and one answer must not stop a catalog's run."""
    if not isinstance(answer, dict):
        return f"it is a JSON {type(answer).__name__}, not an object"
    model = answer.get("model")
    if model is not None and not (
        isinstance(model, dict)
        and all(isinstance(model.get(k), str | None) for k in ("name", "sha256"))
        and all(is_number(model.get(k)) or model.get(k) is None for k in ("min_confidence", "target_precision"))
    ):
        return "its model is not an object with a name and a sha256"
    if "error" in answer:
        err = answer["error"]
        fine = isinstance(err, dict) and is_text(err.get("code")) and isinstance(err.get("message"), str)
        return None if fine else "its error is not an object with a code and a message"
    if not is_text(answer.get("label")) or not is_probability(answer.get("probability")):
        return "it has no label with a probability between 0 and 1"
    if not isinstance(answer.get("confident"), bool | None):
        return "its confident is not true or false"
    top = answer.get("probabilities")
    if not isinstance(top, list) or not all(
        isinstance(p, dict) and isinstance(p.get("label"), str) and is_probability(p.get("probability")) for p in top
    ):
        return "its probabilities are not a list of labels with probabilities"
    return None


def bad_answer(problem: str) -> dict:
    return error_body(502, "bad_answer", f"the function's answer is not of the shape it must have: {problem}")


def checked(answer) -> dict:
    """The answer if its shape is right, else an error answer saying what is wrong with it."""
    problem = shape_problem(answer)
    return answer if problem is None else bad_answer(problem)


def row(source: str, answer: dict, attempts: int) -> dict:
    """One source's row, from an answer of the right shape (checked): a prediction's fields, or an error's."""
    model = answer.get("model") or {}
    err = answer.get("error")
    prediction = {} if err else answer
    return {
        "source": source,
        "label": prediction.get("label"),
        "probability": prediction.get("probability"),
        "confident": prediction.get("confident"),
        "min_confidence": model.get("min_confidence") if prediction else None,
        "target_precision": model.get("target_precision") if prediction else None,
        "top3": [[p["label"], p["probability"]] for p in (prediction.get("probabilities") or [])[:3]],
        "error_code": err["code"] if err else None,
        "error_message": (err["message"] or None) if err else None,  # text cells: empty is None, in CSV too
        "model": model.get("name") or None,
        "model_sha256": model.get("sha256") or None,
        "attempts": attempts,
    }


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


def spreadsheet_safe(value):
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


class Table:
    """One results file: JSON Lines or CSV, a row at a time, flushed."""

    def __init__(self, path: Path | None, form: str):
        self.form = form
        self.file = path.open("w", newline="") if path else sys.stdout
        if form == "csv":
            self.writer = csv.DictWriter(self.file, list(COLUMNS))
            self.writer.writeheader()

    def write(self, result: dict) -> None:
        if self.form == "csv":
            cells = {**result, "top3": json.dumps(result["top3"]), "confident": csv_bool(result["confident"])}
            self.writer.writerow({k: spreadsheet_safe(v) for k, v in cells.items()})
        else:
            self.file.write(json.dumps(result) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not sys.stdout:
            self.file.close()


class Output:
    """The results file, and the review file (--review) holding the rows the model is not sure of. Both are
    written anew from the rows a resumed run keeps, so the review file is always the out file's unsure rows."""

    def __init__(self, path: Path | None, form: str, keep: list[dict], review: Path | None):
        self.tables = [Table(path, form)]
        self.review = Table(review, form) if review else None
        for kept in keep:
            self.write(kept)

    def write(self, result: dict) -> None:
        self.tables[0].write(result)
        if self.review and result["confident"] is False:
            self.review.write(result)

    def close(self) -> None:
        for table in [*self.tables, *([self.review] if self.review else [])]:
            table.close()


def csv_bool(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


CSV_CELLS: dict[str, Callable[[str], object]] = {  # a CSV cell's text -> the row's value ("" is None for all)
    "probability": float,
    "confident": {"true": True, "false": False}.__getitem__,
    "min_confidence": float,
    "target_precision": float,
    "top3": json.loads,
    "attempts": int,
}


def from_csv(cells: dict) -> dict:
    restored = {}
    for name in COLUMNS:
        text = cells.get(name)
        text = text[1:] if isinstance(text, str) and text.startswith("'") else text  # spreadsheet_safe's '
        restored[name] = CSV_CELLS.get(name, str)(text) if text else ([] if name == "top3" else None)
    return restored


def previous_rows(path: Path, form: str) -> list[dict]:
    """The rows a stopped run wrote. A row of any other shape (cut off by the stop, or not this tool's) is
    dropped and its source asked again; nothing in the file stops the run."""
    if not path.is_file():
        return []
    with path.open(errors="replace", newline="") as f:  # as written: a CR inside a cell stays a CR
        text = f.read()
    found: list = []
    if form == "csv":
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(complete))
        try:
            for cells in reader:
                try:
                    found.append(from_csv(cells))
                except (ValueError, KeyError, TypeError):
                    continue
        except csv.Error:  # the stop fell inside a quoted cell: what came before is kept
            pass
    else:
        for line in text.split("\n"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return [r for r in found if isinstance(r, dict) and r.keys() == COLUMNS.keys() and fits(r)]


def fits(result: dict) -> bool:
    return all(holds(result[name]) for name, holds in COLUMNS.items())


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
    answered = [r for r in rows if r["confident"] is not None]
    if answered:
        accepted = sum(r["confident"] for r in answered)
        lines.append(f"  {accepted} of {len(answered)} answers confident, {len(answered) - accepted} to review")
        bars = {(r["min_confidence"], r["target_precision"]) for r in answered}
        lines += [
            f"  confident: a calibrated probability >= {bar:g}"
            + (f", which was right >= {promise:.0%} of the time on validation" if promise else "")
            for bar, promise in sorted(bars, key=str)
            if bar is not None
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    kept = previous_rows(args.out, args.format) if args.resume and args.out else []
    kept = [r for r in kept if r["error_code"] is None or args.skip_failed]
    done = {r["source"] for r in kept}
    sources = [s for s in read_sources(args.inputs, args.column) if s.name not in done]
    output = Output(args.out, args.format, kept, args.review)
    target = target_of(args)
    rate = RateLimit(args.rate)
    progress = Progress(len(sources), args.progress_every)
    written: list[dict] = []

    def record(results: list[dict]) -> None:
        for result in results:
            output.write(result)
        written.extend(results)
        progress.add(results)

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            pending: set[Future] = set()
            for batch in requests_of(iter(sources), args.batch):
                if batch[0].problem is not None:
                    record([row(batch[0].name, batch[0].problem, 0)])
                    continue
                pending.add(pool.submit(classify, target, batch, args.attempts, rate, args.backoff))
                if len(pending) >= 2 * args.jobs:  # keep the pool fed, not the whole catalog in memory
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    record([r for f in finished for r in f.result()])
            for future in pending:
                record(future.result())
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
    p.add_argument("--review", type=Path, help="also write the rows the model is not sure of here (same format)")
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
    if args.review and args.review == args.out:
        p.error("--review needs a file of its own, not --out's")
    return args


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
