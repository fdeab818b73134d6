"""The search page at / in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)
against a real server process with the demo encoders and an API key: a typed caption finds the dog stamp,
an uploaded bark finds the caption "A dog.". Saves a screenshot (the README's) to $LATENT_BRIDGE_SCREENSHOT,
or into the test's temporary folder."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from encoder_bundle import BARK, DOG_IMAGE_ID, EncoderBundles
from serverprocess import Server, running_server

pytestmark = [pytest.mark.slow, pytest.mark.encoders, pytest.mark.browser]
KEY = "browser-test-key-0123456789"
WAIT_S = 60
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def server(encoder_bundles: EncoderBundles) -> Iterator[Server]:
    with running_server(encoder_bundles.with_encoders, env={"LATENT_BRIDGE_API_KEY": KEY}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver: make system-packages "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,660"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: str) -> None:
    """Until the page's JavaScript expression ``condition`` is true."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(f"return {condition};"))


def searched(driver: Any, count: int) -> list[dict[str, str]]:
    """The hits once the page has finished its ``count``-th search."""
    wait_for(driver, f"document.body.dataset.searches === '{count}'")
    return driver.execute_script(  # type: ignore[no-any-return]
        "return [...document.querySelectorAll('#results .hit')].map(h => Object.assign({}, h.dataset));"
    )


def save_screenshot(browser: Any, path: Path) -> None:
    """The page as PNG, reduced to 128 colours (a third of the size, the same look)."""
    from PIL import Image

    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    shot.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def test_caption_and_bark_search_in_a_real_browser(server: Server, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server.base}/")
    assert "401" in browser.find_element(By.ID, "error").text or not browser.find_element(By.ID, "error").text
    browser.find_element(By.ID, "key").send_keys(KEY, Keys.TAB)  # change event: the page reloads its modalities
    wait_for(browser, "document.body.dataset.ready === 'true'")

    browser.find_element(By.ID, "text").send_keys("a dog", Keys.ENTER)
    images = searched(browser, 1)
    assert all(hit["modality"] == "image" for hit in images)
    assert DOG_IMAGE_ID in [hit["id"] for hit in images[:5]], images[:5]
    wait_for(browser, "[...document.querySelectorAll('#results img')].filter(i => i.complete).length >= 5")
    save_screenshot(browser, Path(os.environ.get("LATENT_BRIDGE_SCREENSHOT") or tmp_path / "search_page.png"))

    Select(browser.find_element(By.ID, "target")).select_by_value("text")
    upload = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].hidden = false;", upload)  # a file dialog cannot be driven headless
    upload.send_keys(str(BARK))
    captions = searched(browser, 2)
    assert "A dog." in [hit["caption"] for hit in captions[:5]], captions[:5]
    assert "audio → text" in browser.find_element(By.ID, "route").text
