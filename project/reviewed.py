"""The reviewed-labels file: what a person decided about each photo the review page showed them. The review page
writes it; training (make run REVIEWED=FILE) and conversion (the promise re-proven on the shop's photos) read it.

JSON Lines, one decision a line, each appended with a single write to a file opened O_APPEND and synced before
the page moves on: a crash loses at most the line being written, never an earlier one, and a cut-off last line
is skipped when read. A reviewer may go back: the last decision for a source wins.

    {"source": "photos/a.jpg", "location": "/home/shop/photos/a.jpg", "sha256": "…", "decision": "label",
     "label": "pants", "model_label": "shorts", "model_probability": 0.62, "decided_at": "2026-12-07T17:02:11Z"}

source is the results file's name for the photo (the tagger's row key); location is where its bytes are (a URL,
or an absolute path); sha256 is the digest of the bytes the reviewer saw, so that a photo changed since is not
trained on under the reviewer's label. decision is "label" (label is one of the model's classes), "none" (it is
not one of these classes) or "skip" (not decided).
"""

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

DECISIONS = ("label", "none", "skip")
SHA256_HEX = 64
# The share of labelled photos held out of training to prove the promise on (for_calibration): half, as a proof
# of the default 98% at 95% needs at least 149 confident answers, and training gains less from each photo than
# the proof does
CALIBRATION_SHARE = 0.5


@dataclass(frozen=True)
class Decision:
    source: str
    location: str
    sha256: str
    decision: str
    label: str | None
    model_label: str | None = None
    model_probability: float | None = None
    decided_at: str = ""

    def problem(self, labels: Sequence[str]) -> str | None:
        """What makes this decision unusable with a model of these labels, or None."""
        if not (self.source and self.location):
            return "it names no photo"
        if len(self.sha256) != SHA256_HEX or not all(c in "0123456789abcdef" for c in self.sha256):
            return "its sha256 is not 64 hex digits"
        if self.decision not in DECISIONS:
            return f"its decision {self.decision!r} is not one of {DECISIONS}"
        if (self.decision == "label") != (self.label is not None):
            return "a label goes with the decision 'label', and only with it"
        if self.label is not None and self.label not in labels:
            return f"its label {self.label!r} is not one of the model's classes {list(labels)}"
        return None


def for_calibration(decision: Decision) -> bool:
    """Whether this labelled photo proves the promise (conversion) rather than trains (training skips it):
    decided by its sha256 alone, so the same bytes fall on the same side whoever reviewed them, in any order,
    in any run. "none" and "skip" decisions are neither: a proof needs a label to check the answer against."""
    return decision.decision == "label" and int(decision.sha256[:8], 16) < CALIBRATION_SHARE * 16**8


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def append(path: Path, decision: Decision) -> None:
    """One decision, on disk before this returns: one write of a whole line, O_APPEND, then fsync."""
    line = (json.dumps(asdict(decision), ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def parse(line: str) -> Decision | None:
    """A line as a Decision, or None when it is not one (cut off by a crash, or not this file's)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    names = {f.name for f in fields(Decision)}
    if not isinstance(data, dict) or not {"source", "location", "sha256", "decision", "label"} <= data.keys() <= names:
        return None
    texts = ("source", "location", "sha256", "decision", "decided_at")
    if not all(isinstance(data.get(k, ""), str) for k in texts):
        return None
    if not all(isinstance(data.get(k), str | None) for k in ("label", "model_label")):
        return None
    probability = data.get("model_probability")
    if probability is not None and (isinstance(probability, bool) or not isinstance(probability, int | float)):
        return None
    return Decision(**data)


def latest(path: Path) -> dict[str, Decision]:
    """Each source's last decision, in the order the sources were first decided (an absent file: none)."""
    decided: dict[str, Decision] = {}
    if path.is_file():
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                found = parse(line)
                if found is not None:
                    decided[found.source] = found
    return decided
