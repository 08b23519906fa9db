"""End to end: `gankit serve` on a loopback port, driven in Debian's Chromium by Playwright.

Needs /usr/bin/chromium and the playwright package (`.ci/run` installs both); screenshots (full
width and 390 px) are saved under test-artifacts/.
"""

import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import tiny_config
from gankit.training.loop import train

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_npz):
    """A small CGAN on mnist-sample, evaluated once (so the page has figures and a floor)."""
    from gankit.cli import main

    folder = tmp_path_factory.mktemp("browser")
    config = tiny_config(module_npz, iterations=2).with_overrides({"data.dataset": "mnist-sample"})
    train(config, folder / "run")
    assert main(["evaluate", str(folder / "run"), "--n", "200"]) == 0
    # port 0: the server binds a free port and prints it; nothing can take it in between
    process = subprocess.Popen(
        [sys.executable, "-m", "gankit", "serve", str(folder / "run"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    found = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
    if found is None:
        raise RuntimeError(f"gankit serve printed {line!r}: {process.stderr.read()}")
    url = found.group(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/info", timeout=1)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read()) from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


NO_BROKEN_IMAGE = """() => [...document.images].every((img) =>
    getComputedStyle(img).display === "none" || (img.complete && img.naturalWidth > 0))"""


def test_the_page_as_a_newcomer_meets_it_in_chromium(server):
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(user_agent="gankit-test")
        page.goto(server + "/")
        # a grid and a class morph at once, no click; no image is ever shown broken
        page.wait_for_function("document.getElementById('grid').naturalWidth > 0", timeout=20_000)
        page.wait_for_function(
            "document.getElementById('morph-image').naturalWidth > 0", timeout=20_000
        )
        assert page.evaluate(NO_BROKEN_IMAGE)
        assert page.is_visible("#download")
        assert page.get_attribute("#download", "href").startswith("blob:")
        assert "multiply" in page.text_content("#info")
        # the latest evaluation beside its real-data floor
        quality = page.text_content("#evaluation")
        assert "FID" in quality and "real-data floor" in quality and "copy rate" in quality
        assert "200 samples" in quality
        page.select_option("#label", "7")
        page.fill("#n", "16")
        page.fill("#seed", "3")
        # a slow answer shows the busy indicator, and it goes once the grid is in
        page.route("**/api/generate*", lambda route: (time.sleep(1.0), route.continue_()))
        page.click("#generate")
        page.wait_for_selector("#busy", state="visible", timeout=5_000)
        page.wait_for_selector("#busy", state="hidden", timeout=20_000)
        page.unroute("**/api/generate*")
        size = page.evaluate("[grid.naturalWidth, grid.naturalHeight]")
        # 16 images of one class: 8 per row, 28 px scaled 3x with 2 px padding
        assert size == [8 * (3 * 28 + 2) + 2, 2 * (3 * 28 + 2) + 2]
        page.fill("#n", "999")
        page.click("#generate")
        page.wait_for_function("document.getElementById('generate-error').textContent !== ''")
        assert page.text_content("#generate-error").startswith("n: ")
        # the morph slider: 80% of the way from class 0 to class 1
        before = page.get_attribute("#morph-image", "src")
        page.eval_on_selector(
            "#morph-t", "(e) => { e.value = 80; e.dispatchEvent(new Event('input')); }"
        )
        page.wait_for_function(
            f"document.getElementById('morph-image').src !== {before!r}", timeout=20_000
        )
        assert page.text_content("#morph-text") == "20% class 0, 80% class 1"
        page.click("#interpolate")
        page.wait_for_function("document.getElementById('strip').naturalWidth > 0", timeout=20_000)
        assert page.evaluate(NO_BROKEN_IMAGE)
        page.screenshot(path=str(ARTIFACTS / "serve.png"), full_page=True)
        # a phone's width: nothing wider than the screen
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(server + "/")
        phone.wait_for_function("document.getElementById('grid').naturalWidth > 0", timeout=20_000)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.evaluate(NO_BROKEN_IMAGE)
        phone.screenshot(path=str(ARTIFACTS / "serve-390px.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "serve.png").stat().st_size > 0
    assert (ARTIFACTS / "serve-390px.png").stat().st_size > 0


def test_load_200_requests_from_8_threads(server):
    def fetch(i):
        url = f"{server}/api/generate?n=16&seed={i % 5}&label={i % 10}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read()[:8]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(fetch, range(200)))
    assert all(r == (200, "image/png", b"\x89PNG\r\n\x1a\n") for r in results)


def test_the_compare_page_in_chromium_at_a_phone_s_width(tmp_path, module_npz):
    """Every image loads, nothing overflows at 390 px, the best marks sit where the case built
    here puts them, and the slider shows another iteration's grids."""
    playwright = pytest.importorskip("playwright.sync_api")
    import json

    from gankit.compare import compare_runs

    paths = []
    cases = {"seed-gan": {"fid": 3.0, "recall": 0.6},
             "seed-cgan": {"fid": 2.0, "recall": 0.4, "cond_acc": 0.9}}  # fmt: skip
    for preset, figures in cases.items():
        run = tmp_path / preset
        train(tiny_config(module_npz, preset=preset, iterations=4), run)
        record = {"step": 4, "result": figures, "floor": {"fid": 0.5, "recall": 0.9}}
        (run / "evaluation.json").write_text(json.dumps(record))
        paths.append(run)
    page_path = compare_runs(paths, tmp_path / "study")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(page_path.as_uri())
        phone.wait_for_function(NO_BROKEN_IMAGE, timeout=20_000)
        assert phone.evaluate(NO_BROKEN_IMAGE)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        best = phone.evaluate(
            """() => [...document.querySelectorAll('td.best')].map(td =>
                [td.parentElement.firstElementChild.textContent, td.cellIndex])"""
        )
        assert best == [
            ["FID (lower is better)", 2],
            ["recall (higher is better)", 1],
            ["conditional accuracy (higher is better)", 2],
        ]
        before = phone.evaluate("document.querySelector('img.grid').src")
        phone.eval_on_selector(
            "#step", "(e) => { e.value = 0; e.dispatchEvent(new Event('input')); }"
        )
        assert phone.evaluate("document.querySelector('img.grid').src") != before
        assert phone.text_content("#step-label") == "2"
        phone.screenshot(path=str(ARTIFACTS / "compare-390px.png"), full_page=True)
        browser.close()
