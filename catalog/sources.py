"""What a catalog run classifies: image files; folders (every photo below them); text files of URLs (one http(s)
URL a line; # starts a comment); CSV files whose column holds a URL or a path inside the CSV's own folder (a
catalog from someone else cannot send this machine's other files anywhere). Each source is read once, in order;
an input that cannot be read is a source too, carrying its error, so that it gets its own row.
"""

import csv
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from catalog.client import is_url
from lambda_fn.errors import echo, error_body, has_lone_surrogate
from lambda_fn.events import IMAGE_TYPES, MAX_URL_CHARS

# what a folder's photos may be: the types the API takes as a raw body (events.IMAGE_TYPES), by file suffix
IMAGE_SUFFIXES = {suffix for kind in IMAGE_TYPES for suffix in mimetypes.guess_all_extensions(kind)}
MAX_CSV_LINE_CHARS = 1024 * 1024  # a catalog's row is a few hundred characters; the csv module caps a cell at 128 KiB


@dataclass(frozen=True)
class Source:
    """One thing to classify: a URL or a file, or an input that could not be read (its error set)."""

    name: str  # the URL, or the path as given: the row's key, for resume
    problem: dict | None = None


def invalid(where: str, message: str) -> Source:
    return Source(where, error_body(400, "invalid_input", message))


def read_sources(inputs: list[str], column: str) -> Iterator[Source]:
    """Every source the inputs name, in order, each once, named in text a results file can hold."""
    seen: set[str] = set()
    for found in map(as_text, expand(inputs, column)):
        if found.name not in seen:
            seen.add(found.name)
            yield found


def as_text(source: Source) -> Source:
    """A name that is not UTF-8 (a file's name in another encoding, which Python decodes to lone surrogates) cannot
    be a row's key in a UTF-8 results file: its row names it with those bytes escaped (x\\xff.jpg) and says so,
    and the file is not sent. The name is the same on every run, so --resume knows the row."""
    if not has_lone_surrogate(source.name):
        return source
    try:
        raw = source.name.encode("utf-8", "surrogateescape")  # the bytes the file system holds
    except UnicodeEncodeError:  # a surrogate no file system name decodes to
        raw = source.name.encode("utf-8", "surrogatepass")
    shown = raw.decode("utf-8", "backslashreplace")
    if source.problem is not None:
        return Source(shown, source.problem)
    return invalid(shown, f"the name {shown} is not UTF-8 text: rename the file (convmv -f latin1 -t utf8 ...)")


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
    with path.open(encoding="utf-8", errors="replace") as f:
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

    with path.open(encoding="utf-8-sig", newline="", errors="replace") as f:  # -sig: a spreadsheet's BOM is no cell
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
    try:
        inside = (path.parent / value).resolve()
    except (ValueError, OSError, RuntimeError) as err:  # a NUL byte; a loop of links (RuntimeError before 3.13)
        return invalid(where, f"row {line} names {echo(value)}, which names no file here ({err})")
    if not inside.is_relative_to(folder):
        return invalid(where, f"row {line} names {echo(value)}, outside the CSV's folder: only its own files are sent")
    return Source(str(path.parent / value))
