"""Review the queue: a page on this machine where a person decides, photo by photo, what the model was unsure of.

    python -m catalog.tag --api "$API_URL" photos/ --out tags.jsonl --review review.jsonl
    python -m catalog.review review.jsonl --out reviewed.jsonl          # then open http://127.0.0.1:8765/
    python -m catalog.review tags.csv --all --out reviewed.jsonl --labels dress,hat,shoes

It reads a results file of catalog.tag (JSON Lines or CSV; its --review file is one) and queues the rows the
model was not confident of (--all: every row with a label), less those the --out file has decided already: a
review stopped at any point starts again at the first photo not decided. The page shows each photo large, the
model's label and probability, the candidates a person chooses from (lambda_fn.confidence.candidates, as the
function names them), every label on a key, "not one of these classes" and "skip". Each decision is written to
the reviewed-labels file (project/reviewed.py: one line, appended and synced) before the page moves on.

The labels are --labels, else the labels in --model-dir's model.json (default: the bundle make convert writes);
with neither, the command says so. The results file's labels must be among them.

Photos are the results file's own sources, nothing else: files are read as catalog.tag sends them (a regular file,
up to its size limit), URLs fetched as the function fetches them (lambda_fn/fetch.py: public addresses only,
unless --allow-private-urls). Their bytes are digested (the sha256 written with a decision), decoded as the
function decodes them (bombs and non-images refused) and shown re-encoded as a JPEG, so the browser never parses
a catalog's bytes. The server listens on 127.0.0.1 alone and answers only its own page (lambda_fn/local_server.py's
Host and Origin checks): it writes files.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from catalog.client import Refused, is_url, read_photo
from catalog.results import Unreadable, rows_of_either
from lambda_fn.confidence import candidates
from lambda_fn.errors import RequestError, echo
from lambda_fn.events import JSON_POLICY, SECURITY_HEADERS, page_policy, parse_json
from lambda_fn.fetch import FetchLimits, fetch
from lambda_fn.local_server import Handler, Server
from lambda_fn.orientation import upright
from lambda_fn.preprocess import decode_image, to_rgb
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from project import reviewed
from project.paths import DEFAULT_MODEL_DIR

PAGE = (Path(__file__).parent / "review.html").read_text()
POLICY = page_policy(PAGE, "blob:")  # the photos arrive through fetch() from this server, as blobs
LABEL_KEYS = "1234567890"  # the labels in order, one key each (labels past the tenth are buttons alone)
CANDIDATE_KEYS = "qwe"  # the candidates, likeliest first (confidence.MOST_CANDIDATES of them at most)
DISPLAY_SIDE = 1000  # pixels: the longest side of a photo as the page gets it
SHOWN_PHOTOS = 32  # re-encoded photos kept for going back and for the page's look-ahead
MAX_DECISION_BYTES = 64 * 1024  # a decision is a few hundred bytes


class NotReviewable(Exception):
    """The review cannot start: the message says why and what would do."""


@dataclass(frozen=True)
class Item:
    """One queued photo: the results file's row for it, and where its bytes are."""

    source: str
    location: str  # the URL, or the file's absolute path
    label: str
    probability: float | None
    top3: list[list]  # [label, probability], likeliest first
    candidates: list[str]


def read_results(path: Path) -> list[dict]:
    """The results file's rows, one per source (the last, as catalog.tag --resume keeps), or NotReviewable."""
    if not path.is_file():
        raise NotReviewable(f"{path} is not a file: give the results file catalog.tag wrote (--out or --review)")
    try:
        rows = rows_of_either(path)
    except Unreadable as err:
        raise NotReviewable(str(err)) from None
    return list({r["source"]: r for r in rows}.values())


def queued(rows: list[dict], everything: bool) -> list[dict]:
    """The rows to review: those the model was not confident of (everything: every row with a label)."""
    return [r for r in rows if r["label"] is not None and (everything or r["confident"] is False)]


def item_of(result: dict) -> Item:
    ranked = [(label, probability) for label, probability in result["top3"]]
    threshold = result["min_confidence"] if result["min_confidence"] is not None else 1.0  # unknown: all three
    source = result["source"]
    return Item(
        source=source,
        location=source if is_url(source) else os.path.abspath(source),
        label=result["label"],
        probability=result["probability"],
        top3=result["top3"],
        candidates=candidates(ranked, threshold) or [result["label"]],
    )


def labels_of(given: str | None, model_dir: Path, model_dir_given: bool) -> tuple[list[str], str]:
    """(the labels, where they came from): --labels, else the bundle's model.json (the classes its training found:
    the dataset's folders, sorted), the one place that knows which labels the model that tagged has."""
    if given is not None:
        labels = [label.strip() for label in given.split(",")]
        if not all(labels) or len(set(labels)) != len(labels):
            raise NotReviewable(f"--labels {given!r} must name each label once, comma-separated, none empty")
        return labels, "--labels"
    meta = model_dir / "model.json"
    if meta.is_file():
        try:
            labels = json.loads(meta.read_text())["labels"]
        except (ValueError, KeyError, TypeError) as err:
            raise NotReviewable(f"{meta} has no list of labels ({err!r}): give --labels") from None
        if not (isinstance(labels, list) and labels and all(isinstance(label, str) and label for label in labels)):
            raise NotReviewable(f"{meta}'s labels are not a list of names: give --labels")
        return labels, str(meta)
    if model_dir_given:
        raise NotReviewable(f"--model-dir {model_dir} holds no model.json: give a bundle's folder, or --labels")
    raise NotReviewable(
        f"no bundle at {model_dir} (make convert writes one) names the model's labels: give the bundle that tagged "
        "with --model-dir, or its labels in its order with --labels"
    )


def check_labels(items: list[Item], labels: list[str], where: str) -> None:
    """Every label the queue names must be one a reviewer can choose."""
    named = {label for item in items for label in [item.label, *(pair[0] for pair in item.top3)]}
    unknown = sorted(named - set(labels))
    if unknown:
        raise NotReviewable(
            f"the results file names labels {unknown} that are not among the labels ({where}: {labels}): "
            "give the model's labels with --labels or --model-dir"
        )


@dataclass(frozen=True)
class Shown:
    """A photo as the page got it: the digest of its original bytes, and the JPEG made of them or the error."""

    sha256: str
    jpeg: bytes | None
    error: dict | None


def original_bytes(location: str, limits: FetchLimits) -> bytes:
    """The photo's bytes, as the function would get them; RequestError (or Refused) when there are none."""
    if is_url(location):
        return fetch(location, limits)
    try:
        return read_photo(Path(location))
    except OSError as err:
        raise RequestError("not_found", f"the file could not be read ({err.strerror or err})") from None


def for_the_page(data: bytes) -> bytes:
    """Bytes decoded as the function decodes them (RequestError if they are not a photo it takes), upright, as
    a JPEG of at most DISPLAY_SIDE a side: the browser parses this, never the catalog's own bytes."""
    image = to_rgb(upright(decode_image(data, DEFAULT_MAX_DECODED_BYTES, at_least=DISPLAY_SIDE)))
    image.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def show(location: str, limits: FetchLimits) -> Shown:
    try:
        data = original_bytes(location, limits)
    except RequestError as err:
        return Shown(hashlib.sha256(b"").hexdigest(), None, err.body())  # no bytes: the digest of none
    except Refused as err:
        return Shown(hashlib.sha256(b"").hexdigest(), None, err.answer)
    try:
        return Shown(hashlib.sha256(data).hexdigest(), for_the_page(data), None)
    except RequestError as err:
        return Shown(hashlib.sha256(data).hexdigest(), None, err.body())


class Review:
    """The queue, the photos as shown, and the decisions: what the page's requests read and write."""

    def __init__(self, items: list[Item], labels: list[str], out: Path, limits: FetchLimits):
        self.items, self.labels, self.out, self.limits = items, labels, out, limits
        self.decided = reviewed.latest(out)
        self.lock = threading.Lock()
        self.photo_locks = [threading.Lock() for _ in items]  # one fetch of a photo at a time
        self.digests: dict[int, str] = {}  # the sha256 of the bytes last shown for each photo
        self.shown: OrderedDict[int, Shown] = OrderedDict()  # the last SHOWN_PHOTOS, for going back

    def done(self) -> int:
        return sum(item.source in self.decided for item in self.items)

    def queue(self) -> dict:
        return {
            "total": len(self.items),
            "out": str(self.out),
            "labels": [{"label": label, "key": key} for label, key in zip(self.labels, LABEL_KEYS, strict=False)]
            + [{"label": label, "key": None} for label in self.labels[len(LABEL_KEYS) :]],
            "candidate_keys": list(CANDIDATE_KEYS),
            "items": [
                {
                    "source": item.source,
                    "label": item.label,
                    "probability": item.probability,
                    "top3": item.top3,
                    "candidates": item.candidates,
                    "decided": self.decision_of(item.source),
                }
                for item in self.items
            ],
        }

    def decision_of(self, source: str) -> dict | None:
        found = self.decided.get(source)
        return {"decision": found.decision, "label": found.label} if found else None

    def photo(self, index: int) -> Shown:
        """The photo as the page gets it, fetched again unless it is among the last shown."""
        with self.photo_locks[index]:
            with self.lock:
                if index in self.shown:
                    self.shown.move_to_end(index)
                    return self.shown[index]
            found = show(self.items[index].location, self.limits)
            with self.lock:
                self.digests[index] = found.sha256
                if found.jpeg is not None:  # an error is tried again when the page asks again
                    self.shown[index] = found
                while len(self.shown) > SHOWN_PHOTOS:
                    self.shown.popitem(last=False)
            return found

    def decide(self, request) -> dict:
        """A decision the page posted, on disk before this returns; RequestError for one that cannot be."""
        index, decision, label = self.parse(request)
        item = self.items[index]
        sha256 = self.digests.get(index) or self.photo(index).sha256  # decided before the photo arrived
        written = reviewed.Decision(
            source=item.source,
            location=item.location,
            sha256=sha256,
            decision=decision,
            label=label,
            model_label=item.label,
            model_probability=item.probability,
            decided_at=reviewed.now(),
        )
        with self.lock:
            reviewed.append(self.out, written)
            self.decided[item.source] = written
            return {"decided": self.decision_of(item.source), "done": self.done(), "total": len(self.items)}

    def parse(self, request) -> tuple[int, str, str | None]:
        expected = {"index", "source", "decision", "label"}
        if not isinstance(request, dict) or set(request) != expected:
            given = sorted(request) if isinstance(request, dict) else type(request).__name__
            raise RequestError("invalid_request", f"a decision is a JSON object of {sorted(expected)}; got {given}")
        index, source, decision, label = (request[k] for k in ("index", "source", "decision", "label"))
        if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(self.items)):
            raise RequestError(
                "invalid_request", f"index {echo(index)} is not a photo of this queue (0 to {len(self.items) - 1})"
            )
        if source != self.items[index].source:
            raise RequestError(
                "invalid_request",
                f"photo {index} of this queue is {echo(self.items[index].source)}, not {echo(source)}: reload the page",
            )
        if decision not in reviewed.DECISIONS:
            raise RequestError("invalid_request", f"decision {echo(decision)} is not one of {list(reviewed.DECISIONS)}")
        if decision == "label" and label not in self.labels:
            raise RequestError(
                "invalid_request", f"label {echo(label)} is not one of the accepted labels: {', '.join(self.labels)}"
            )
        if decision != "label" and label is not None:
            raise RequestError("invalid_request", f"the decision {decision!r} takes no label (null); got {echo(label)}")
        return index, decision, label


ROUTES = {"/": "GET", "/queue": "GET", "/photo/": "GET", "/decide": "POST"}


class ReviewHandler(Handler):
    """The local server's request handling (framing, deadlines, caps, Host and Origin checks), with these routes."""

    server: "ReviewServer"

    def respond(self, method: str, path: str, body: bytes):
        route = path if not path.startswith("/photo/") else "/photo/"
        if route not in ROUTES:
            error = RequestError("not_found", f"no route {echo(path)}; this server answers {', '.join(ROUTES)}")
            return self.reply(error.status, error.body())
        if method not in (ROUTES[route], "HEAD" if ROUTES[route] == "GET" else None):
            error = RequestError("method_not_allowed", f"{echo(method)} {route}: {ROUTES[route]} it")
            return self.reply(error.status, error.body())
        try:
            if route == "/":
                return self.send(200, PAGE.encode(), self.headers_for("text/html; charset=utf-8", POLICY))
            if route == "/queue":
                return self.reply(200, self.server.review.queue())
            if route == "/photo/":
                return self.photo(path.removeprefix("/photo/"))
            return self.reply(200, self.server.review.decide(self.decision(body)))
        except RequestError as err:
            return self.reply(err.status, err.body())
        except OSError as err:  # the reviewed-labels file could not be written: the page says so and stays
            message = f"the decision was not written to {self.server.review.out} ({err.strerror or err})"
            return self.reply(500, RequestError("not_written", message).body())

    def decision(self, body: bytes):
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":  # a form on another site cannot send this one without asking first (CORS)
            raise RequestError("unsupported_media_type", f"a decision is application/json, not {echo(kind)}")
        if len(body) > MAX_DECISION_BYTES:
            raise RequestError("payload_too_large", f"a decision is at most {MAX_DECISION_BYTES} bytes")
        return parse_json(body)

    def photo(self, number: str):
        items = self.server.review.items
        if not (number.isascii() and number.isdigit() and int(number) < len(items)):
            raise RequestError("not_found", f"no photo {echo(number)}: this queue's are 0 to {len(items) - 1}")
        shown = self.server.review.photo(int(number))
        if shown.error is not None:
            return self.reply(shown.error["error"]["status"], shown.error)
        assert shown.jpeg is not None  # a Shown holds one or the other
        self.send(200, shown.jpeg, self.headers_for("image/jpeg", JSON_POLICY))

    @staticmethod
    def headers_for(content_type: str, policy: str) -> dict:
        # no-store: what the page shows is what this server digested, never a copy from an earlier run
        return {
            "Content-Type": content_type,
            "Content-Security-Policy": policy,
            "Cache-Control": "no-store",
            **SECURITY_HEADERS,
        }


class ReviewServer(Server):
    review: Review


def prepare(args: argparse.Namespace) -> Review:
    rows = read_results(args.results)
    chosen = queued(rows, args.all)
    items = [item_of(r) for r in chosen]
    labels, where = labels_of(args.labels, args.model_dir or DEFAULT_MODEL_DIR, args.model_dir is not None)
    check_labels(items, labels, where)
    left_out = len(rows) - len(chosen)
    print(
        f"{args.results}: {len(rows)} rows, {len(items)} to review"
        + (f" ({left_out} left out: {'errors' if args.all else 'confident answers and errors'})" if left_out else "")
        + f"; labels from {where}",
        file=sys.stderr,
    )
    limits = FetchLimits(allow_private=args.allow_private_urls, private_opt_in="--allow-private-urls")
    return Review(items, labels, args.out, limits)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="a results file of catalog.tag (its --review file, or its --out)")
    p.add_argument("--out", type=Path, required=True, help="the reviewed-labels file (appended to; resumed from)")
    p.add_argument("--port", type=int, default=8765, help="the page's port on 127.0.0.1 (default: 8765; 0: any)")
    p.add_argument("--all", action="store_true", help="queue every row with a label, not only the unsure ones")
    p.add_argument("--labels", help="the model's labels, comma-separated, in its order")
    p.add_argument(
        "--model-dir", type=Path, help=f"a bundle whose model.json names the labels (default: {DEFAULT_MODEL_DIR})"
    )
    p.add_argument("--allow-private-urls", action="store_true", help="fetch photos from private addresses too")
    args = p.parse_args(argv)
    if args.out.resolve() == args.results.resolve():
        p.error("--out needs a file of its own: the reviewed labels are not a results file")
    if not args.out.parent.is_dir() or (args.out.exists() and not args.out.is_file()):
        p.error(f"--out {args.out} must be a file in a folder that exists")
    if not 0 <= args.port <= 65535:
        p.error(f"--port {args.port} is not a port (0 to 65535; 0: any free one)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        review = prepare(args)
    except NotReviewable as err:
        print(f"catalog.review: {err}", file=sys.stderr)
        return 2
    if not review.items:
        print("nothing to review", file=sys.stderr)
        return 0
    try:
        server = ReviewServer(("127.0.0.1", args.port), ReviewHandler)
    except OSError as err:
        print(
            f"catalog.review: cannot listen on 127.0.0.1:{args.port} ({err.strerror}): try another --port",
            file=sys.stderr,
        )
        return 2
    server.review = review
    print(
        f"reviewing on http://127.0.0.1:{server.server_port}/  ({review.done()} of {len(review.items)} decided; "
        f"decisions go to {args.out})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
