"""The review page (catalog/review.py) as a reviewer works it: its command on a free port in its own process, and
the page in headless Chromium (harness/browser.py), read and keyed through Selenium."""

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import servers


@dataclass
class Reviewing:
    url: str
    process: subprocess.Popen
    lines: list[str]


@contextlib.contextmanager
def reviewing(results: Path, out: Path, *flags: str) -> Iterator[Reviewing]:
    """python -m catalog.review on a free port in its own process, until the block ends (or the test kills it)."""
    command = [sys.executable, "-m", "catalog.review", str(results), "--out", str(out), "--port", "0", *flags]
    with servers.started(command, "reviewing on ") as (process, lines):
        yield Reviewing(lines[-1].split()[2].rstrip("/"), process, lines)


def on_screen(driver, index: int, total: int) -> str:
    """Wait until the page shows photo `index` (0-based) of the queue, loaded or refused; its caption."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        caption = d.find_element(By.ID, "source").get_attribute("textContent")
        loaded = d.find_element(By.ID, "photo").get_attribute("src") or d.find_element(By.ID, "photo-error").text
        return caption.startswith(f"{index + 1} of {total}: ") and loaded and caption

    return WebDriverWait(driver, 60).until(shown)


def press(driver, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def text_of(driver, element: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element).text


def wait_for_text(driver, element: str, expected: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: expected in text_of(d, element))
