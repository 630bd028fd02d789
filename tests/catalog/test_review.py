"""The review page (catalog/review.py): its server in its own process, driven with the keyboard in headless
Chromium; photos from files and from a server on 127.0.0.1, a hostile one among them; a review killed and resumed."""

import hashlib
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from catalog import review
from catalog.results import COLUMNS, row
from harness import REPO, servers
from harness.browser import not_blank
from harness.review_page import on_screen, press, reviewing, text_of, wait_for_text
from lambda_fn.confidence import answer
from lambda_fn.errors import RequestError
from lambda_fn.fetch import FetchLimits
from project import reviewed

SCREENSHOTS = REPO / "artifacts" / "review"
# a ten-class model's labels (the course's), as its model.json or --labels gives them: ten keys, 1 to 0
LABELS = ["dress", "hat", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts", "skirt", "t-shirt"]
THRESHOLD = 0.9  # min_confidence of the rows: every answer below it is unsure


def tagged(source: str, probabilities: dict[str, float], threshold: float = THRESHOLD) -> dict:
    """The row catalog.tag writes for an answer of the function (lambda_fn.confidence.answer, as it answers)."""
    odds = np.array([probabilities.get(label, 0.0) for label in LABELS])
    prediction = answer(LABELS, odds / odds.sum(), threshold)
    model = {"name": "test-model", "sha256": "0" * 64, "min_confidence": threshold, "target_precision": 0.98}
    return row(source, {**prediction, "model": model}, 1)


def write_results(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def request(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET, or of a POST of this JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    sent = {"Content-Type": "application/json", **(headers or {})} if data is not None else headers or {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=sent), timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def decisions(out: Path) -> list[reviewed.Decision]:
    """Every line of the reviewed-labels file, each a whole decision."""
    lines = out.read_text().splitlines()
    parsed = [reviewed.parse(line) for line in lines]
    assert None not in parsed, lines
    return [p for p in parsed if p is not None]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def queue(tmp_path, image_files, image_server) -> tuple[Path, list[dict], dict[str, bytes]]:
    """A results file: four unsure photos (two files, one URL on 127.0.0.1, one that is not a photo), one
    confident answer and one error (neither queued); and the bytes behind each queued source."""
    photos = {
        str(image_files["hat.jpg"]): {"hat": 0.5, "dress": 0.3, "t-shirt": 0.2},
        str(image_files["rgba.png"]): {"shirt": 0.45, "t-shirt": 0.4, "longsleeve": 0.15},
        f"{image_server}/images/pants.jpg": {"shorts": 0.6, "pants": 0.35, "skirt": 0.05},
        str(image_files["text.jpg"]): {"shoes": 0.7, "hat": 0.3},
    }
    rows = [tagged(source, odds) for source, odds in photos.items()]
    rows.insert(1, tagged(str(image_files["pants.jpg"]), {"pants": 0.99, "shorts": 0.01}))
    rows.append(
        row(
            str(image_files["bomb.png"]),
            {"error": {"status": 413, "code": "image_too_large", "message": "too large"}},
            1,
        )
    )
    queued = [r for r in rows if r["confident"] is False]
    assert [r["source"] for r in queued] == list(photos)
    served = {source: (image_files[Path(source).name]).read_bytes() for source in photos}
    return write_results(tmp_path / "review.jsonl", rows), queued, served


@pytest.fixture
def bundle_dir(tmp_path) -> Path:
    """A bundle's folder as far as the review reads it: model.json and its labels."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"labels": LABELS}))
    return folder


# -- in Chromium, with the keyboard ----------------------------------------------------------------------------


@pytest.mark.browser
def test_a_reviewer_decides_the_queue_with_the_keyboard(browser, queue, bundle_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    results, rows, served = queue
    out = tmp_path / "reviewed.jsonl"
    with reviewing(results, out, "--model-dir", str(bundle_dir), "--allow-private-urls") as server:
        browser.set_window_size(1100, 860)
        browser.get(f"{server.url}/")
        on_screen(browser, 0, 4)
        assert text_of(browser, "count") == "0 / 4 decided"
        assert text_of(browser, "model-label") == "hat" and text_of(browser, "model-probability") == "50.0%"
        candidates = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#candidates button")]
        assert candidates == ["q\nhat\n50.0%", "w\ndress\n30.0%", "e\nt-shirt\n20.0%"]
        keys = [b.text.split("\n") for b in browser.find_elements(By.CSS_SELECTOR, "#labels button")]
        assert keys == [[key, label] for key, label in zip("1234567890", LABELS, strict=True)]

        press(browser, "w")  # the second candidate: dress
        on_screen(browser, 1, 4)
        assert text_of(browser, "count") == "1 / 4 decided"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "review.png"))  # docs/review.png
        assert not_blank(SCREENSHOTS / "review.png")
        press(browser, "5")  # pants, by its number: not a candidate
        on_screen(browser, 2, 4)  # the URL's photo, fetched by the server
        assert not text_of(browser, "photo-error")
        press(browser, "n")  # not one of these classes
        on_screen(browser, 3, 4)  # not a photo: its error, and the keys still work
        assert "not an image" in text_of(browser, "photo-error")
        assert "You can still decide or skip it" in text_of(browser, "photo-error")
        press(browser, Keys.BACKSPACE)  # back to the URL's photo, shown as decided
        on_screen(browser, 2, 4)
        assert "Decided before: not one of these classes" in text_of(browser, "before")
        press(browser, "8")  # shorts after all: a new line supersedes
        on_screen(browser, 3, 4)
        press(browser, "s")  # skip the one that is not a photo
        wait_for_text(browser, "finished-text", f"All 4 photos are decided. The decisions are in {out}.")
        assert text_of(browser, "count") == "4 / 4 decided"
        press(browser, "u")  # back from the end, and the same decision again
        on_screen(browser, 3, 4)
        press(browser, "s")
        wait_for_text(browser, "finished-text", "All 4 photos are decided")

    lines = decisions(out)
    assert [(d.source, d.decision, d.label) for d in lines] == [
        (rows[0]["source"], "label", "dress"),
        (rows[1]["source"], "label", "pants"),
        (rows[2]["source"], "none", None),
        (rows[2]["source"], "label", "shorts"),
        (rows[3]["source"], "skip", None),
        (rows[3]["source"], "skip", None),
    ]
    for line, source in zip(lines, [0, 1, 2, 2, 3, 3], strict=True):
        result = rows[source]
        assert line.sha256 == sha256(served[result["source"]])  # the bytes the server got, hostile ones too
        assert line.location == result["source"]  # an absolute path, or the URL
        assert (line.model_label, line.model_probability) == (result["label"], result["probability"])
        assert line.problem(LABELS) is None and line.decided_at.endswith("Z")
    latest = reviewed.latest(out)
    assert latest[rows[2]["source"]].label == "shorts" and len(latest) == 4


@pytest.mark.browser
def test_a_review_killed_mid_way_resumes_at_the_first_undecided_photo(browser, queue, tmp_path):
    results, rows, _ = queue
    out = tmp_path / "reviewed.jsonl"
    flags = ("--labels", ",".join(LABELS), "--allow-private-urls")
    with reviewing(results, out, *flags) as server:
        browser.get(f"{server.url}/")
        on_screen(browser, 0, 4)
        press(browser, "q")
        on_screen(browser, 1, 4)
        press(browser, "1")
        on_screen(browser, 2, 4)
        server.process.kill()  # no goodbye: what was decided is on disk already
        server.process.wait()
    assert [(d.source, d.label) for d in decisions(out)] == [(rows[0]["source"], "hat"), (rows[1]["source"], "dress")]

    with reviewing(results, out, *flags) as server:
        assert "(2 of 4 decided;" in server.lines[-1]
        browser.get(f"{server.url}/")
        on_screen(browser, 2, 4)  # the first photo not decided
        assert text_of(browser, "count") == "2 / 4 decided"
        press(browser, "u")  # a photo decided before the restart, shown with its decision
        on_screen(browser, 1, 4)
        assert "Decided before: dress" in text_of(browser, "before")
        press(browser, "6")
        on_screen(browser, 2, 4)
    assert [d.label for d in decisions(out)] == ["hat", "dress", "shirt"]


@pytest.mark.browser
def test_the_taggers_review_file_is_the_queue(browser, tiny_bundle, image_files, tmp_path):
    """catalog.tag against the local server (no answer clears a threshold of 1: all go to --review, as CSV), then
    the review of that file, with the labels of the bundle's model.json."""
    from selenium.webdriver.common.by import By

    from catalog import tag

    photos = [str(image_files["hat.jpg"]), str(image_files["pants.jpg"])]
    tags, queue_file, out = tmp_path / "tags.csv", tmp_path / "review.csv", tmp_path / "reviewed.jsonl"
    with servers.local_server(tiny_bundle, settings={"MIN_CONFIDENCE": "1"}) as function:
        flags = ["--endpoint", function.url, "--out", str(tags), "--review", str(queue_file), "--format", "csv"]
        assert tag.main([*photos, *flags]) == 0
    rows = review.read_results(queue_file)
    queued = [r["source"] for r in rows]  # in the order the answers came
    assert sorted(queued) == sorted(photos) and not any(r["confident"] for r in rows)
    labels = json.loads((tiny_bundle / "model.json").read_text())["labels"]
    with reviewing(queue_file, out, "--model-dir", str(tiny_bundle)) as server:
        browser.get(f"{server.url}/")
        on_screen(browser, 0, 2)
        assert [b.text.split("\n")[1] for b in browser.find_elements(By.CSS_SELECTOR, "#labels button")] == labels
        press(browser, "q")  # the first candidate: the model's own label
        on_screen(browser, 1, 2)
        press(browser, "n")
        wait_for_text(browser, "finished-text", "All 2 photos are decided")
    first, second = decisions(out)
    assert (first.source, first.decision, first.label) == (queued[0], "label", rows[0]["label"])
    assert (second.source, second.decision, second.label) == (queued[1], "none", None)
    assert first.sha256 == sha256(Path(queued[0]).read_bytes())


# -- the server's answers, without a browser ------------------------------------------------------------------


def test_the_page_loads_nothing_from_elsewhere_and_photos_come_re_encoded(queue, tmp_path, image_files):
    results, _, served = queue
    with reviewing(
        results, tmp_path / "reviewed.jsonl", "--labels", ",".join(LABELS), "--allow-private-urls"
    ) as server:
        status, headers, page = request(f"{server.url}/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "img-src blob:;" in policy and "connect-src 'self'" in policy
        assert b"http://" not in page and b"https://" not in page
        for index in (0, 1, 2):  # the files, and the URL's photo
            status, headers, photo = request(f"{server.url}/photo/{index}")
            assert status == 200 and headers["Content-Type"] == "image/jpeg"
            shown = Image.open(io.BytesIO(photo))
            assert shown.format == "JPEG" and shown.mode == "RGB" and max(shown.size) <= review.DISPLAY_SIDE
            assert photo not in served.values()  # the browser never gets the catalog's own bytes
        status, _, body = request(f"{server.url}/photo/3")
        assert status == 422 and json.loads(body)["error"]["code"] == "not_an_image"
        for path in ("/photo/4", "/photo/-1", "/photo/x", "/tags.jsonl", f"/photo/0/{image_files['hat.jpg']}"):
            status, _, body = request(f"{server.url}{path}")
            message = json.loads(body)["error"]["message"]
            assert status == 404 and ("this server answers" in message or "this queue's are 0 to 3" in message)


def test_decisions_the_server_refuses_write_nothing(queue, tmp_path):
    results, rows, _ = queue
    out = tmp_path / "reviewed.jsonl"
    good = {"index": 0, "source": rows[0]["source"], "decision": "label", "label": "hat"}
    with reviewing(results, out, "--labels", ",".join(LABELS)) as server:
        decide = f"{server.url}/decide"
        status, _, body = request(decide, {**good, "label": "blouse"})
        message = json.loads(body)["error"]["message"]
        assert status == 400 and message == f"label 'blouse' is not one of the accepted labels: {', '.join(LABELS)}"
        assert request(decide, {**good, "source": rows[1]["source"]})[0] == 400  # a page from another queue
        assert request(decide, {**good, "index": 9})[0] == 400
        assert request(decide, {**good, "decision": "maybe"})[0] == 400
        assert request(decide, {**good, "decision": "skip"})[0] == 400  # a skip names no label
        assert request(decide, {**good, "extra": 1})[0] == 400
        assert request(decide, good, {"Content-Type": "text/plain"})[0] == 415  # what a form could send
        assert request(decide, good, {"Origin": "http://shop.example"})[0] == 403
        assert request(decide, good, {"Sec-Fetch-Site": "cross-site"})[0] == 403
        assert request(f"{server.url}/queue", headers={"Host": "review.example:80"})[0] == 403  # DNS rebinding
        assert request(f"{server.url}/", good)[0] == 405
        assert not out.exists()
        status, _, body = request(decide, good)
        assert status == 200 and json.loads(body) == {
            "decided": {"decision": "label", "label": "hat"},
            "done": 1,
            "total": 4,
        }
    assert [d.label for d in decisions(out)] == ["hat"]


def test_a_url_photo_on_a_private_address_needs_the_flag(queue, tmp_path):
    results, rows, _ = queue
    out = tmp_path / "reviewed.jsonl"
    with reviewing(results, out, "--labels", ",".join(LABELS)) as server:
        status, _, body = request(f"{server.url}/photo/2")
        error = json.loads(body)["error"]
        assert status == 403 and error["code"] == "url_not_allowed" and "127.0.0.1" in error["message"]
        # the switch this tool's user has, not the function's environment variable
        assert "(--allow-private-urls allows private ones)" in error["message"]
        status, _, _ = request(
            f"{server.url}/decide", {"index": 2, "source": rows[2]["source"], "decision": "skip", "label": None}
        )
    (skipped,) = decisions(out)
    assert status == 200 and skipped.sha256 == sha256(b"")  # no bytes were seen: the digest of none


def test_a_decision_that_cannot_be_written_says_so(queue, tmp_path):
    results, rows, _ = queue
    out = tmp_path / "reviewed.jsonl"
    with reviewing(results, out, "--labels", ",".join(LABELS)) as server:
        out.mkdir()  # the file cannot be appended to now
        body = {"index": 0, "source": rows[0]["source"], "decision": "skip", "label": None}
        status, _, answer = request(f"{server.url}/decide", body)
        error = json.loads(answer)["error"]
        assert status == 500 and error["code"] == "not_written" and str(out) in error["message"]
        assert request(f"{server.url}/queue")[0] == 200  # and the server goes on


# -- what the command refuses, before it serves --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("just some notes\n", "is not a results file of catalog.tag: no row has its columns"),
        ('{"url": "https://example.com/a.jpg"}\n', "is not a results file of catalog.tag: no line has its columns"),
        ("sku,url\n1,https://example.com/a.jpg\n", "is not a results file of catalog.tag: no row has its columns"),
    ],
)
def test_a_file_that_is_not_a_results_file_is_named_as_such(tmp_path, capsys, content, expected):
    given = tmp_path / "given.txt"
    given.write_text(content)
    assert review.main([str(given), "--out", str(tmp_path / "out.jsonl"), "--labels", ",".join(LABELS)]) == 2
    assert expected in capsys.readouterr().err


def test_an_out_file_or_port_that_cannot_be_used_is_refused(queue, tmp_path, capsys):
    results, _, _ = queue
    with pytest.raises(SystemExit):
        review.parse_args([str(results), "--out", str(tmp_path / "missing" / "o.jsonl")])
    assert "must be a file in a folder that exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        review.parse_args([str(results), "--out", str(results)])
    assert "--out needs a file of its own" in capsys.readouterr().err
    with reviewing(results, tmp_path / "o.jsonl", "--labels", ",".join(LABELS)) as server:
        taken = server.url.rsplit(":", 1)[1]
        flags = ["--out", str(tmp_path / "o.jsonl"), "--labels", ",".join(LABELS), "--port", taken]
        assert review.main([str(results), *flags]) == 2
    assert f"cannot listen on 127.0.0.1:{taken}" in capsys.readouterr().err


def test_labels_the_queue_names_must_be_among_the_labels(queue, tmp_path, capsys):
    results, _, _ = queue
    assert review.main([str(results), "--out", str(tmp_path / "o.jsonl"), "--labels", "dress,hat"]) == 2
    err = capsys.readouterr().err
    assert "names labels ['longsleeve', 'pants', 'shirt', 'shoes', 'shorts', 'skirt', 't-shirt']" in err
    assert "give the model's labels with --labels or --model-dir" in err
    assert review.main([str(results), "--out", str(tmp_path / "o.jsonl"), "--model-dir", str(tmp_path)]) == 2
    assert "holds no model.json" in capsys.readouterr().err


def test_without_a_bundle_or_labels_the_command_asks_for_one(queue, tmp_path, capsys, monkeypatch):
    """The labels come from the model that tagged (its model.json) or the reviewer: no list of the review's own."""
    results, _, _ = queue
    monkeypatch.setattr(review, "DEFAULT_MODEL_DIR", tmp_path / "no-bundle")
    assert review.main([str(results), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"no bundle at {tmp_path / 'no-bundle'}" in err and "--model-dir" in err and "--labels" in err


def test_nothing_to_review_says_so(tmp_path, capsys, image_files):
    confident = write_results(tmp_path / "tags.jsonl", [tagged(str(image_files["hat.jpg"]), {"hat": 1.0})])
    assert review.main([str(confident), "--out", str(tmp_path / "o.jsonl"), "--labels", ",".join(LABELS)]) == 0
    assert "0 to review" in capsys.readouterr().err
    empty_csv = tmp_path / "review.csv"
    empty_csv.write_text(",".join(COLUMNS) + "\n")  # what catalog.tag --review --format csv writes for none
    assert review.main([str(empty_csv), "--out", str(tmp_path / "o.jsonl"), "--labels", ",".join(LABELS)]) == 0


def test_all_queues_every_labelled_row_and_csv_is_read_too(queue, tmp_path, capsys):
    from catalog.results import Table

    _, rows, _ = queue
    table_path = tmp_path / "tags.csv"
    table = Table(table_path, "csv")
    for result in [*rows, tagged("https://shop.example/sure.jpg", {"hat": 1.0})]:
        table.write(result)
    table.close()
    args = review.parse_args([str(table_path), "--out", str(tmp_path / "o.jsonl"), "--labels", ",".join(LABELS)])
    assert len(review.prepare(args).items) == 4
    args.all = True
    assert [i.source for i in review.prepare(args).items] == [
        *(r["source"] for r in rows),
        "https://shop.example/sure.jpg",
    ]


# -- properties --------------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)


def decision_bodies(source: str):
    """Bodies near a good decision for photo 0 of a queue of one: each field right, or anything at all."""
    return st.fixed_dictionaries(
        {
            "index": st.just(0) | JSON,
            "source": st.just(source) | JSON,
            "decision": st.sampled_from(reviewed.DECISIONS) | JSON,
            "label": st.sampled_from([None, "hat", "blouse"]) | JSON,
        },
        optional={"other": JSON},
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_posted_json_is_written_whole_or_refused_with_a_reason(tmp_path_factory, image_files, data):
    """Whatever a page posts: a decision on disk that training can use, or a RequestError that says why."""
    out = tmp_path_factory.mktemp("decide") / "reviewed.jsonl"
    source = str(image_files["hat.jpg"])
    state = review.Review([review.item_of(tagged(source, {"hat": 0.6, "dress": 0.4}))], LABELS, out, FetchLimits())
    body = data.draw(decision_bodies(source) | JSON)
    try:
        state.decide(body)
    except RequestError as err:
        assert err.status == 400 and err.message
        assert not out.exists()
        return
    (decided,) = decisions(out)
    assert decided.problem(LABELS) is None and decided.sha256 == sha256(image_files["hat.jpg"].read_bytes())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400) | st.sampled_from([",".join(COLUMNS) + "\n", "{}\n", '{"source": 1}\n']))
def test_any_file_is_read_as_results_or_refused_by_name(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("results") / "given"
    path.write_text(text, errors="surrogatepass")
    try:
        rows = review.read_results(path)
    except review.NotReviewable as err:
        assert str(path) in str(err)
        return
    assert all(r.keys() == COLUMNS.keys() for r in rows)
