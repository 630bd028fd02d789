"""Tagging a catalog (catalog/tag.py) against the local server: real files, a loopback image server, a
target that throttles, a run killed mid-way and resumed."""

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from catalog import results, tag
from harness import REPO
from harness.servers import Quiet, reply, serving


@pytest.fixture
def catalog(tmp_path, image_files, image_server) -> tuple[list[str], dict[str, str | None]]:
    """(the inputs, every source they name -> the error code its row must carry, None for a label)."""
    photos = tmp_path / "photos"
    (photos / "tops").mkdir(parents=True)
    shutil.copy(image_files["hat.jpg"], photos / "hat.jpg")
    shutil.copy(image_files["rgba.png"], photos / "tops" / "shirt.png")
    shutil.copy(image_files["text.jpg"], photos / "not-a-photo.jpg")
    (photos / "notes.txt").write_text("not an image suffix: not a source")
    (photos / "album.jpg").mkdir()  # a folder with an image's suffix: not a source, but what it holds is
    shutil.copy(image_files["pants.jpg"], photos / "album.jpg" / "inside.jpg")
    urls = tmp_path / "urls.txt"
    good, missing = f"{image_server}/images/pants.jpg", f"{image_server}/images/missing.jpg"
    urls.write_text(f"# the shop's URLs\n{good}\n\n{missing}\n{good}\n")
    table = tmp_path / "catalog.csv"
    shutil.copy(image_files["gray.png"], tmp_path / "gray.png")
    table.write_text(f"sku,url\n1,{image_server}/images/hat.jpg\n2,gray.png\n3,\n4,{good},extra\n")
    inputs = [str(photos), str(urls), str(table), str(tmp_path / "gone.jpg")]
    expected = {
        str(photos / "hat.jpg"): None,
        str(photos / "tops" / "shirt.png"): None,
        str(photos / "album.jpg" / "inside.jpg"): None,
        str(photos / "not-a-photo.jpg"): "not_an_image",
        good: None,
        missing: "upstream_error",  # the image server answers 404
        f"{image_server}/images/hat.jpg": None,
        str(tmp_path / "gray.png"): None,
        f"{table}:4": "invalid_input",  # the empty cell
        f"{table}:5": "invalid_input",  # more cells than the header
        str(tmp_path / "gone.jpg"): "not_found",
    }
    return inputs, expected


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("where", ["--endpoint", "--api"])
def test_every_source_gets_one_row(catalog, local_server, tmp_path, app, capsys, where):
    inputs, expected = catalog
    out = tmp_path / "tags.jsonl"
    status = tag.main([*inputs, where, local_server, "--jobs", "4", "--out", str(out)])
    rows = read_rows(out)
    assert status == 1  # some sources failed
    assert Counter(r["source"] for r in rows) == Counter(list(expected))  # each once
    for r in rows:
        assert r["error_code"] == expected[r["source"]], r
        if r["error_code"] is None:
            assert r["label"] in app.MODEL.labels and len(r["top3"]) == 3 and r["attempts"] == 1
            assert r["model"] == app.MODEL_ID["name"] and r["model_sha256"] == app.MODEL_ID["sha256"]
        else:
            assert r["error_message"] and r["label"] is None
    err = capsys.readouterr().err
    assert f"{len(expected)} sources in" in err and "error invalid_input: 2" in err and "images/s" in err


def test_csv_output_holds_the_same_rows(catalog, local_server, tmp_path):
    inputs, expected = catalog
    out = tmp_path / "tags.csv"
    tag.main([*inputs, "--api", local_server, "--format", "csv", "--out", str(out)])
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(results.COLUMNS) and {r["source"] for r in rows} == set(expected)
    assert all(
        len(json.loads(r["top3"])) == 3 and r["confident"] in ("true", "false") for r in rows if not r["error_code"]
    )


class Throttling(Quiet):
    """API Gateway in front of the local server, throttling: each distinct body is answered 429 (Retry-After: 0),
    then 503, then passed on."""

    upstream: str
    seen: Counter

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        key = hashlib.sha256(body).hexdigest()
        self.seen[key] += 1
        if self.seen[key] <= 2:
            status, data = (429, b'{"message":"Too Many Requests"}') if self.seen[key] == 1 else (503, b"{}")
            return reply(self, status, data, headers={"Retry-After": "0"})
        request = urllib.request.Request(self.upstream + self.path, data=body, method="POST")
        request.add_header("Content-Type", self.headers["Content-Type"])
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, data = err.code, err.read()
        reply(self, status, data)


def test_throttling_and_gateway_errors_are_retried_a_photos_fault_is_not(local_server, image_files, tmp_path):
    handler = type("Handler", (Throttling,), {"upstream": local_server, "seen": Counter()})
    out = tmp_path / "tags.jsonl"
    photos = [str(image_files[name]) for name in ("hat.jpg", "pants.jpg", "text.jpg")]
    with serving(handler) as api:
        status = tag.main([*photos, "--api", api, "--backoff", "0.01", "--out", str(out), "--jobs", "2"])
    # the server is gone now: a refused connection, retried until the attempts run out (below)
    rows = {r["source"]: r for r in read_rows(out)}
    assert status == 1 and rows[photos[2]]["error_code"] == "not_an_image"  # answered on the 3rd try, not retried
    assert [rows[p]["attempts"] for p in photos] == [3, 3, 3]
    assert rows[photos[0]]["label"] and rows[photos[1]]["label"]
    gone = tmp_path / "gone.jsonl"
    assert tag.main([photos[0], "--api", api, "--attempts", "2", "--backoff", "0.01", "--out", str(gone)]) == 1
    (failed,) = read_rows(gone)
    assert failed["error_code"] == "unavailable" and failed["attempts"] == 2 and "2 attempts" in failed["error_message"]


def test_a_killed_run_resumes_with_nothing_lost_or_doubled(local_server, image_server, image_files, tmp_path):
    urls = tmp_path / "urls.txt"
    sources = [f"{image_server}/images/hat.jpg?copy={k}" for k in range(24)] + [str(image_files["text.jpg"])]
    urls.write_text("\n".join(sources[:-1]) + "\n")
    inputs = [str(urls), sources[-1], "--endpoint", local_server]
    clean = tmp_path / "clean.jsonl"
    tag.main([*inputs, "--out", str(clean)])
    out = tmp_path / "tags.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "catalog.tag", *inputs, "--out", str(out), "--jobs", "1", "--batch", "1"]
    slow = subprocess.Popen([*command, "--rate", "4"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 6):
        time.sleep(0.05)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    stopped = out.read_text().count("\n")
    assert 6 <= stopped < len(sources)  # killed mid-way
    tag.main([*inputs, "--out", str(out), "--resume"])
    assert sorted(out.read_text().splitlines()) == sorted(clean.read_text().splitlines())
    assert len(read_rows(out)) == len(sources)


def test_bad_arguments_are_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        tag.parse_args(["x.jpg", "--endpoint", "http://127.0.0.1:1", "--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tag.parse_args(["x.jpg", "--endpoint", "http://127.0.0.1:1", "--resume"])
    assert "--resume needs --out" in capsys.readouterr().err


@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_a_file_cut_mid_row_resumes_to_the_clean_runs_rows(catalog, local_server, tmp_path, form):
    """A stop can cut the last row short: it is dropped and its source asked again; failed rows are asked again
    too, and replaced, not doubled."""
    inputs, expected = catalog
    clean, out = tmp_path / f"clean.{form}", tmp_path / f"cut.{form}"
    arguments = [*inputs, "--endpoint", local_server, "--format", form]
    tag.main([*arguments, "--out", str(clean)])
    lines = clean.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])
    tag.main([*arguments, "--out", str(out), "--resume"])
    assert sorted(out.read_text().splitlines()) == sorted(clean.read_text().splitlines())
    assert len(out.read_text().splitlines()) == len(expected) + (form == "csv")


def test_the_functions_own_502_is_an_answer_not_retried(local_server, image_server, tmp_path):
    """Over the API a URL whose server fails comes back 502 with the function's error: the photo's fault."""
    out = tmp_path / "tags.jsonl"
    unreachable = "http://127.0.0.1:9/shirt.jpg"  # nothing listens on the discard port
    status = tag.main([unreachable, "--api", local_server, "--out", str(out), "--backoff", "5"])
    (row,) = read_rows(out)
    assert status == 1 and row["error_code"] == "upstream_error" and row["attempts"] == 1
