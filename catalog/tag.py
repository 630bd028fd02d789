"""Tag a whole catalog through the function: many requests at once, retries, a file of results, resume.

    python -m catalog.tag --api "$API_URL" photos/ urls.txt catalog.csv --column image_url --out tags.jsonl
    python -m catalog.tag --api "$API_URL" photos/ urls.txt catalog.csv --column image_url --out tags.jsonl --resume
    python -m catalog.tag --endpoint http://127.0.0.1:9000 photos/ --jobs 4 --format csv --out tags.csv

Sources, in any mix (catalog/sources.py): image files; folders (every .jpg, .jpeg, .png and .webp below them);
text files of URLs; CSV files whose --column holds a URL or a path inside the CSV's own folder. Each source gets
one row (catalog/results.py): its label, calibrated probability, whether the model is confident of it, the
threshold it was held to and the precision that threshold promises, the top 3, or its error (code and message),
the model's name and sha256, and the attempts it took. Rows are written as they arrive and flushed, so a run that
is stopped keeps every answer it had; --resume skips the sources the output file already answers (and, with
--skip-failed, those it holds an error for), and writes each of the others once; it refuses a file that holds
no row it can read back (another --format's, or not this tool's) and leaves it as it is. --review FILE also
writes the answers the model is not sure of to FILE: the queue a person works through (python -m
catalog.review); the rest can be published unread. --out and --review must be files of their own (not each
other, nor an input, under any name). The whole manual: docs/catalog.md.

Every answer is checked for the shape it must have (lambda_fn/answers.py) before it is used: one of another
shape, over 1 MiB, or slower than the request's deadline becomes its sources' error row, and the run goes on.

URLs go in {"urls": [...]} batches of up to --batch (the function's MAX_URLS; 10 by default); files go as
raw bodies over the API, as {"image": base64} to a function (catalog/calls.py). Throttling (429), the gateway's
502/503/504 and broken connections are retried with exponential backoff and jitter, honouring Retry-After, up to
--attempts; an error that another try would not change (a 422: the photo's fault) is written at once. --rate
caps the requests a second, to stay under the API stage's throttle (20 a second, bursts of 40, by default).
"""

import argparse
import logging
import os
import stat
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from catalog.calls import RateLimit, classify, requests_of
from catalog.client import add_target_arguments, check_target, is_url, target_of
from catalog.results import FORMATS, Output, Unreadable, resumed_rows, row, summary
from catalog.sources import read_sources
from project.progress import Progress


def terminal_log() -> logging.Logger:
    """Progress on stderr: redrawn in place on a terminal, a line at a time in a log."""
    log = logging.getLogger("catalog.tag")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.terminator = "\r" if sys.stderr.isatty() else "\n"
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        kept = resumed_rows(args.out, args.format) if args.resume and args.out else []
    except Unreadable as err:  # before any file is opened for writing: nothing is lost
        print(f"--resume: {err}", file=sys.stderr)
        return 2
    kept = [r for r in kept if r["error_code"] is None or args.skip_failed]
    done = {r["source"] for r in kept}
    sources = [s for s in read_sources(args.inputs, args.column) if s.name not in done]
    output = Output(args.out, args.format, kept, args.review)
    target = target_of(args)
    rate = RateLimit(args.rate)
    progress = Progress(terminal_log(), "tagging", len(sources), "sources", args.progress_every)
    written: list[dict] = []

    def record(results: list[dict]) -> None:
        for result in results:
            output.write(result)
        written.extend(results)
        progress.advance(len(results), errors=sum(r["error_code"] is not None for r in results))

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
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    print(summary(written, time.monotonic() - started), file=sys.stderr)
    return 1 if any(r["error_code"] is not None for r in written) else 0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files, folders, URLs, .txt lists of URLs, .csv files")
    add_target_arguments(p)
    p.add_argument("--out", type=Path, help="the results file (default: standard output)")
    p.add_argument("--review", type=Path, help="also write the rows the model is not sure of here (same format)")
    p.add_argument("--format", choices=list(FORMATS), default="jsonl")
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
    check_target(p, args)
    if args.review and same_file(args.review, args.out):
        out = args.out or "standard output"
        p.error(f"--review {args.review} is the same file as --out ({out}): give it a file of its own")
    for given in (g for g in args.inputs if not is_url(g)):
        for flag, path in (("--out", args.out), ("--review", args.review)):
            if path and same_file(path, Path(given)):
                p.error(f"{flag} {path} is the input {given}: writing the results would overwrite it")
    return args


def same_file(path: Path, other: Path | None) -> bool:
    """Whether two names reach one file (other None: standard output): the same device and inode where both are
    files (a hard link, a symlink, another spelling), else the same path once links and .. are resolved."""

    def identity(name: Path | None):
        try:
            found = os.stat(name) if name else os.fstat(sys.stdout.fileno())
        except (OSError, ValueError):  # not there yet; standard output not a file (a test's capture)
            return name.resolve() if name else None
        return (found.st_dev, found.st_ino) if stat.S_ISREG(found.st_mode) else None  # a terminal, a pipe, /dev/null

    mine = identity(path)
    return mine is not None and mine == identity(other)


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
