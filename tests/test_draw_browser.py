"""`colorstream draw` end to end: Debian's chromium, driven by selenium, draws a face with real pointer events.

Screenshots go to pytest's temporary directory, or to COLORSTREAM_SCREENSHOTS when it is set; the README's
screenshot is made with

    COLORSTREAM_SCREENSHOTS=docs .venv/bin/python -m pytest tests/test_draw_browser.py
"""

from __future__ import annotations

import base64
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def unavailable(reason: str) -> None:
    """Skip here; fail under .ci/run, which installs the browser so that this test runs."""
    if os.environ.get("COLORSTREAM_REQUIRE_BROWSER"):
        raise RuntimeError(f"COLORSTREAM_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason, allow_module_level=True)


try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    unavailable("selenium is not installed (pip install -e '.[test]')")
for program in (CHROMIUM, CHROMEDRIVER):
    if not os.access(program, os.X_OK):
        unavailable(f"{program} is not installed (apt-get install chromium chromium-driver; .ci/run does)")

pytestmark = pytest.mark.slow

DESKTOP, PHONE = (1000, 600), (390, 844)


def ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 360.0,
            steps: int = 24) -> list[tuple[float, float]]:
    angles = np.radians(np.linspace(start, end, steps))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Our own face, in canvas fractions, along the page's guide; the hair comes second so the photo must change.
FACE = [
    ellipse(0.5, 0.45, 0.29, 0.41, -15, 195, 30),  # jaw and cheeks
    ellipse(0.35, 0.415, 0.06, 0.024), ellipse(0.65, 0.415, 0.06, 0.024),  # eyes
    ellipse(0.35, 0.415, 0.012, 0.012, steps=8), ellipse(0.65, 0.415, 0.012, 0.012, steps=8),  # pupils
    [(0.28, 0.37), (0.35, 0.35), (0.42, 0.36)], [(0.58, 0.36), (0.65, 0.35), (0.72, 0.37)],  # brows
    [(0.48, 0.44), (0.46, 0.57), (0.5, 0.6), (0.54, 0.57)],  # nose
    [(0.4, 0.71), (0.45, 0.725), (0.5, 0.73), (0.55, 0.725), (0.6, 0.71)],  # mouth
    [(0.38, 0.85), (0.37, 1.0)], [(0.62, 0.85), (0.63, 1.0)],  # neck
]
HAIR = [ellipse(0.5, 0.42, 0.31 - 0.02 * i, 0.38 - 0.03 * i, 190, 350, 20) for i in range(4)] + [
    [(0.21, 0.35), (0.2, 0.55), (0.22, 0.7)], [(0.79, 0.35), (0.8, 0.55), (0.78, 0.7)],
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("COLORSTREAM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def viewport(driver, size: tuple[int, int], mobile: bool) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile})


def draw(driver, strokes: list, kind: str = interaction.POINTER_PEN) -> None:
    """Each stroke as one press-move-release of a pen (pressure rising along it), a mouse or a finger."""
    canvas = driver.find_element(By.ID, "sketch")
    width, height = canvas.size["width"], canvas.size["height"]
    for stroke in strokes:
        builder = ActionBuilder(driver, mouse=PointerInput(kind, kind), duration=16)  # ms a move takes
        pointer = builder.pointer_action
        offsets = [(round((x - 0.5) * (width - 2)), round((y - 0.5) * (height - 2))) for x, y in stroke]
        pointer.move_to(canvas, *offsets[0]).pointer_down(pressure=0.3)
        for i, (dx, dy) in enumerate(offsets[1:], 1):
            pointer.move_to(canvas, dx, dy, pressure=0.3 + 0.6 * i / len(offsets))
        pointer.pointer_up()
        builder.perform()


def wait_for_photo(driver, after: int) -> int:
    """The version of the first photo that answers a request after `after` and is not behind the sketch."""
    state = "const p = document.getElementById('photo');" \
            "return [Number(p.dataset.version || 0), p.dataset.busy, p.complete && p.naturalWidth > 0, p.hidden];"
    WebDriverWait(driver, 30, 0.1).until(
        lambda d: (lambda v, busy, loaded, hidden: v > after and busy == "false" and loaded and not hidden)(
            *d.execute_script(state)))
    return driver.execute_script(state)[0]


def read_photo(driver) -> np.ndarray:
    url = driver.execute_script(
        "const p = document.getElementById('photo'), c = document.createElement('canvas');"
        "c.width = p.naturalWidth; c.height = p.naturalHeight;"
        "c.getContext('2d').drawImage(p, 0, 0); return c.toDataURL('image/png');")
    photo = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert photo is not None
    return photo


def fits_without_scrolling(driver) -> bool:
    return driver.execute_script(
        "const d = document.documentElement, r = document.getElementById('photo').parentElement"
        ".getBoundingClientRect();"
        "return d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth && r.bottom <= innerHeight "
        "&& r.right <= innerWidth;")


def test_drawing_updates_a_colour_photo_on_desktop_and_phone(browser, draw_server, screenshots):
    viewport(browser, DESKTOP, mobile=False)
    browser.get("http://{}:{}/".format(*draw_server.server_address[:2]))
    draw(browser, FACE)
    first_version = wait_for_photo(browser, 0)
    first = read_photo(browser)
    assert first.shape == (512, 512, 3)
    assert (first.max(axis=2).astype(int) - first.min(axis=2)).mean() > 10  # colour, not a gray copy
    guide_only = "return [document.getElementById('{}').getContext('2d').getImageData(0, 0, 512, 24).data]"
    assert min(browser.execute_script(guide_only.format("guide"))[0]) < 255  # the guide shows the skull's top ...
    assert max(browser.execute_script(guide_only.format("sketch"))[0][3::4]) == 0  # ... and is not in the sketch

    draw(browser, HAIR, kind=interaction.POINTER_MOUSE)
    second_version = wait_for_photo(browser, first_version)
    assert np.abs(read_photo(browser).astype(int) - first).mean() > 2
    assert "ms on the server" in browser.find_element(By.ID, "status").text
    assert fits_without_scrolling(browser)
    browser.save_screenshot(str(screenshots / "draw_desktop.png"))

    viewport(browser, PHONE, mobile=True)
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    assert fits_without_scrolling(browser)
    draw(browser, [[(0.3, 0.5), (0.35, 0.6), (0.4, 0.65)]], kind=interaction.POINTER_TOUCH)
    third_version = wait_for_photo(browser, second_version)
    assert fits_without_scrolling(browser)
    browser.save_screenshot(str(screenshots / "draw_phone.png"))

    draw(browser, [[(0.6, 0.5), (0.65, 0.6)]], kind=interaction.POINTER_TOUCH)
    browser.find_element(By.ID, "clear").click()  # while that stroke's photo may be on its way: it must not show
    WebDriverWait(browser, 30, 0.1).until(
        lambda d: d.execute_script("return document.getElementById('photo').dataset.busy") == "false")
    assert browser.find_element(By.ID, "photo").get_attribute("hidden") is not None
    browser.find_element(By.ID, "undo").click()
    wait_for_photo(browser, third_version)
