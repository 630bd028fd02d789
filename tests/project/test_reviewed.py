"""The reviewed-labels file (project/reviewed.py): decisions survive a crash mid-line, the last one wins, and a
decision that does not fit the model's classes says why."""

import hashlib
import json
import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from harness import REPO
from project import reviewed

LABELS = ("dress", "hat", "pants")
DIGEST = hashlib.sha256(b"photo").hexdigest()


def decision(source="a.jpg", **changes) -> reviewed.Decision:
    values = {"location": f"/shop/{source}", "sha256": DIGEST, "decision": "label", "label": "hat", **changes}
    return reviewed.Decision(source=source, **values)


def test_the_last_decision_for_a_source_wins_and_order_is_first_decided(tmp_path):
    path = tmp_path / "reviewed.jsonl"
    for d in (decision("a.jpg"), decision("b.jpg", decision="none", label=None), decision("a.jpg", label="pants")):
        reviewed.append(path, d)
    found = reviewed.latest(path)
    assert list(found) == ["a.jpg", "b.jpg"]
    assert found["a.jpg"].label == "pants" and found["b.jpg"].decision == "none"


def test_a_writer_killed_mid_line_loses_only_that_line(tmp_path):
    path = tmp_path / "reviewed.jsonl"
    reviewed.append(path, decision("a.jpg"))
    with path.open("a") as f:  # what a crash inside a write would leave: part of a line
        f.write(json.dumps(reviewed.Decision("b.jpg", "/b", DIGEST, "label", "hat").__dict__)[:40])
    # the next writer starts after the fragment; the fragment and nothing else is lost
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from project import reviewed; import sys; from pathlib import Path; "
            "reviewed.append(Path(sys.argv[1]), reviewed.Decision('c.jpg', '/c', '0' * 64, 'skip', None))",
            str(path),
        ],
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert list(reviewed.latest(path)) == ["a.jpg"]  # c.jpg's line was joined to the fragment: both unreadable
    reviewed.append(path, decision("d.jpg"))
    assert list(reviewed.latest(path)) == ["a.jpg", "d.jpg"]


@given(st.text(max_size=300))
def test_any_line_parses_to_a_decision_or_none(line):
    found = reviewed.parse(line)
    assert found is None or isinstance(found, reviewed.Decision)


@given(
    decision_kind=st.sampled_from([*reviewed.DECISIONS, "maybe"]),
    label=st.one_of(st.none(), st.sampled_from([*LABELS, "sock"])),
    sha=st.sampled_from([DIGEST, "xyz", DIGEST.upper()]),
)
def test_a_decision_that_cannot_train_says_why(decision_kind, label, sha):
    d = decision(decision=decision_kind, label=label, sha256=sha)
    fine = sha == DIGEST and decision_kind in reviewed.DECISIONS and (decision_kind == "label") == (label is not None)
    fine = fine and label in (*LABELS, None)
    assert (d.problem(LABELS) is None) is fine


@given(st.binary(min_size=1, max_size=64), st.sampled_from(LABELS), st.text(min_size=1, max_size=20))
def test_which_photos_prove_the_promise_depends_on_their_bytes_alone(photo, label, source):
    digest = hashlib.sha256(photo).hexdigest()
    held = reviewed.for_calibration(decision(source, sha256=digest, label=label))
    assert held == reviewed.for_calibration(decision("other.jpg", sha256=digest, label=LABELS[0]))
    assert not reviewed.for_calibration(decision(source, sha256=digest, decision="none", label=None))


def test_about_the_calibration_share_of_photos_is_held_out():
    digests = [hashlib.sha256(str(k).encode()).hexdigest() for k in range(2000)]
    held = sum(reviewed.for_calibration(decision(sha256=d)) for d in digests)
    assert abs(held / len(digests) - reviewed.CALIBRATION_SHARE) < 0.05
