"""A catalog's results: one row per source (COLUMNS), written as UTF-8 JSON Lines or CSV as they arrive, flushed,
so a run that is stopped keeps every answer it had; read back by --resume, which keeps only rows of the right shape
and refuses a file it cannot read back as rows. CSV cells that a spreadsheet could run as a formula are written
behind a ' (FORMULA POLICY below).
"""

import csv
import io
import json
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from lambda_fn.answers import is_number, is_probability, is_text, is_unicode

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
# FORMULA POLICY (docs/catalog.md). Excel, LibreOffice Calc and Google Sheets run a CSV cell that starts with
# = + - or @ as a formula; OWASP's "CSV Injection" adds tab, CR and (since 2025) LF. What else they evaluate is
# documented by no vendor and differs by version, locale and import path: importers and converters are reported to
# strip leading whitespace first (so " =1+1" and NBSP + "=1+1" run), and locales to take full-width signs (＝
# U+FF1D) for ASCII ones. So the rule is wider than any one spreadsheet: a cell is written behind a ' when its
# first character, read as its NFKC form (full-width, small, superscript and subscript look-alikes as the plain
# sign), is
#   - a formula sign: = + - @ or the minus sign U+2212, or any dash (Unicode category Pd);
#   - whitespace or invisible: any category C or Z (space, tab, CR, LF, NBSP, U+3000, the BOM U+FEFF, zero-width
#     and bidi marks, controls), since what follows it may be what a spreadsheet sees first;
#   - or a ' itself (the raw character), so that reading a cell back drops exactly the one ' written: lossless.
# Labels, numbers, URLs and paths seldom start so; an escape that was not needed costs a ', a miss runs code.
# JSON Lines is not a spreadsheet's format: its text is written as it is.
FORMULA_SIGNS = "=+-@\N{MINUS SIGN}"


def is_pair(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and is_probability(value[1])


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


def spreadsheet_could_run(cell: str) -> bool:
    """Whether a spreadsheet opening the CSV could take this cell for a formula (FORMULA POLICY)."""
    if not cell:
        return False
    first = unicodedata.normalize("NFKC", cell[0])[:1]  # a full-width or other look-alike as its plain form
    kind = unicodedata.category(first)
    return cell[0] == "'" or kind[0] in "CZ" or kind == "Pd" or first in FORMULA_SIGNS


def spreadsheet_safe(value):
    return "'" + value if isinstance(value, str) and spreadsheet_could_run(value) else value


class Table:
    """One results file: JSON Lines or CSV, a row at a time, flushed."""

    def __init__(self, path: Path | None, form: str):
        self.form = form
        self.file = path.open("w", encoding="utf-8", newline="") if path else sys.stdout
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


class Unreadable(Exception):
    """A file --resume would rewrite that holds no row it can read back: it is left as it is."""


FORMATS = {"jsonl": "JSON Lines", "csv": "CSV"}
# How every file of each format starts: csv.DictWriter's header line (its lines end in CRLF), and json.dumps of a row
FIRST_WRITTEN = {"csv": ",".join(COLUMNS) + "\r\n", "jsonl": '{"source": '}


def previous_rows(path: Path, form: str) -> list[dict]:
    """The rows a stopped run wrote. A row of any other shape (cut off by the stop, or not this tool's) is
    dropped and its source asked again."""
    return rows_in(text_of(path), form) if path.is_file() else []


def resumed_rows(path: Path, form: str) -> list[dict]:
    """previous_rows, of a file --resume is about to rewrite. One that holds no row at all is not this tool's in
    this format (another --format's, or someone else's): Unreadable, so that it is never rewritten, and so lost."""
    found = previous_rows(path, form)
    if found or not path.is_file():
        return found
    text = text_of(path)
    if started(text, form):  # empty, or cut before its first row was whole
        return found
    other = next(name for name in FORMATS if name != form)
    if rows_in(text, other) or started(text, other):
        raise Unreadable(f"{path} holds {FORMATS[other]} rows, not {FORMATS[form]}: resume it with --format {other}")
    raise Unreadable(
        f"{path} holds no row of this tool's ({len(text)} characters of something else); it is left as it is: "
        "name another --out, or move this file away"
    )


def rows_of_either(path: Path) -> list[dict]:
    """The rows of a results file in whichever format it was written (the review page takes both): Unreadable when
    it holds none and is not the start of either (empty, or cut before its first row was whole)."""
    text = text_of(path)
    for form in FORMATS:
        if found := rows_in(text, form):
            return found
    if any(started(text, form) for form in FORMATS):
        return []
    unit = "line" if text.lstrip().startswith("{") else "row"
    raise Unreadable(
        f"{path} is not a results file of catalog.tag: no {unit} has its columns ({', '.join(COLUMNS)}), "
        "as JSON Lines or CSV"
    )


def text_of(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace", newline="") as f:  # as written: a CR inside a cell stays
        return f.read()


def started(text: str, form: str) -> bool:
    """Whether the text is what a run of this format writes first, whole or cut short (an empty file included)."""
    text, first = text.replace("\r\n", "\n"), FIRST_WRITTEN[form].replace("\r\n", "\n")  # a CSV saved again
    return text.startswith(first) or first.startswith(text)


def rows_in(text: str, form: str) -> list[dict]:
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
    return all(holds(result[name]) for name, holds in COLUMNS.items()) and is_unicode(result)


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
            + (f", proven right >= {promise * 100:g}% of the time at the conversion" if promise else "")
            for bar, promise in sorted(bars, key=str)
            if bar is not None
        ]
    return "\n".join(lines)
