"""Debian's headless Chromium, driven by Debian's chromedriver through Selenium: the pages' tests (the function's
page at GET /, the catalog's review page) use it for real."""

from pathlib import Path

import numpy as np
from PIL import Image

from harness.needs import need_program

# Chromium as root in a closed network: no sandbox (root), no GPU, none of its own calls home
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,760",
]


def chromium(profile: Path):
    """A Selenium driver of headless Chromium with its profile in this folder (quit it when done)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = need_program("chromium", "chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(need_program("chromedriver", "chromium-driver")), options=options)


def not_blank(png: Path) -> bool:
    """A screenshot that shows something: not one flat colour."""
    pixels = np.asarray(Image.open(png).convert("L"), np.float32)
    return pixels.std() > 10 and len(np.unique(pixels)) > 50
