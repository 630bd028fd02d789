"""The page at GET /: served by the handler, and used for real in headless Chromium."""

import json
import re

import pytest

from harness import REPO, servers
from harness.browser import not_blank
from harness.servers import post

SCREENSHOTS = REPO / "artifacts" / "page"


def test_get_root_is_the_page_with_a_policy_that_loads_nothing_else(app, load_event):
    response = app.lambda_handler(load_event("page.json"), None)
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response["headers"]["Content-Security-Policy"]
    page = response["body"]
    assert 'fetch("predict"' in page and 'id="file"' in page and 'id="url"' in page
    assert re.findall(r"""(?:src|href|import)\s*=?\s*["'(]?(?:https?:)?//""", page) == []  # nothing from elsewhere


def test_only_get_opens_the_page(app, load_event):
    event = load_event("page.json")
    event["requestContext"]["http"]["method"] = "POST"
    response = app.lambda_handler(event, None)
    assert response["statusCode"] == 405 and "GET it" in json.loads(response["body"])["error"]["message"]


def answer_on_page(driver) -> dict:
    """Wait for the page to show a label or an error; return what it shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        label, error = (d.find_element(By.ID, i).get_attribute("textContent") for i in ("label", "error"))
        return (label or error) and {"label": label, "error": error}

    found = WebDriverWait(driver, 60).until(shown)
    rows = driver.find_elements(By.CSS_SELECTOR, "#bars .row")
    found["bars"] = [row.get_attribute("textContent") for row in rows]
    return found


def headline(answer: dict) -> str:
    """What the page's big line says of an answer."""
    return answer["label"] if answer["confident"] else f"Not sure: maybe {' or '.join(answer['candidates'])}"


@pytest.mark.browser
def test_a_photo_chosen_on_the_page_is_classified_as_the_api_does(browser, local_server, image_files, image_server):
    from selenium.webdriver.common.by import By

    expected = post(f"{local_server}/predict", image_files["hat.jpg"].read_bytes(), "image/jpeg")[1]
    browser.get(f"{local_server}/")
    browser.find_element(By.ID, "file").send_keys(str(image_files["hat.jpg"]))
    shown = answer_on_page(browser)
    assert shown["label"] == headline(expected) and not shown["error"]
    assert len(shown["bars"]) == len(expected["probabilities"])  # every class, as a bar
    assert shown["bars"][0].startswith(expected["label"])  # highest first
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "upload.png"))
    assert not_blank(SCREENSHOTS / "upload.png")

    browser.get(f"{local_server}/")  # a URL pasted instead
    browser.find_element(By.ID, "url").send_keys(f"{image_server}/images/hat.jpg")
    browser.find_element(By.CSS_SELECTOR, "#by-url button").click()
    assert answer_on_page(browser)["label"] == headline(expected)


@pytest.mark.browser
@pytest.mark.parametrize("min_confidence", ["0", "1"])
def test_the_page_says_when_the_model_is_not_sure(browser, tiny_bundle, image_files, min_confidence):
    """Every answer clears a threshold of 0 and none clears 1: the page names the label, or says it is not sure
    and names the candidates."""
    from selenium.webdriver.common.by import By

    with servers.local_server(tiny_bundle, settings={"MIN_CONFIDENCE": min_confidence}) as server:
        expected = post(f"{server.url}/predict", image_files["hat.jpg"].read_bytes(), "image/jpeg")[1]
        assert expected["confident"] is (min_confidence == "0")
        browser.get(f"{server.url}/")
        browser.find_element(By.ID, "file").send_keys(str(image_files["hat.jpg"]))
        shown = answer_on_page(browser)["label"]
    if min_confidence == "0":
        assert shown == expected["label"]
    else:
        candidates = expected["candidates"]
        assert shown == f"Not sure: maybe {' or '.join(candidates)}" and 2 <= len(candidates) <= 3
        browser.save_screenshot(str(SCREENSHOTS / "not-sure.png"))


@pytest.mark.browser
def test_the_page_shows_the_apis_error_message(browser, local_server, tmp_path):
    from selenium.webdriver.common.by import By

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    browser.get(f"{local_server}/")
    browser.find_element(By.ID, "file").send_keys(str(notes))
    shown = answer_on_page(browser)
    assert not shown["label"] and "Content-Type 'text/plain' is not accepted" in shown["error"]
    assert not browser.find_element(By.ID, "photo").is_displayed()  # no empty photo box after an error
    browser.save_screenshot(str(SCREENSHOTS / "error.png"))
