"""End to end in headless Chromium: the page of ``vtgkit serve`` grounds a query on the sample and plays a moment.

Needs the ``playwright`` Python package and Debian's ``chromium`` at /usr/bin/chromium (CI installs both; the
browser Playwright would download is never used). Skipped with the reason otherwise. The screenshot goes to
``$VTGKIT_SCREENSHOT_DIR/serve.png`` (default: the test's tmp folder); its path is printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from web_app_helpers import build_app, demo_grounder, live_server, require_web_stack

CHROMIUM = Path("/usr/bin/chromium")
QUERY = "the green object is visible"


@pytest.fixture
def browser_page() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                                                  "(pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        # root in CI needs --no-sandbox; containers often have a tiny /dev/shm
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 860})
            page.set_default_timeout(60_000)  # a bound for a loaded machine, not a speed check
            yield page
        finally:
            browser.close()


@pytest.mark.slow
def test_page_grounds_the_sample_and_plays_a_moment(browser_page: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    require_web_stack()
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    grounder, sample = demo_grounder(tmp_path / "cache")
    with live_server(build_app(grounder, sample, tmp_path / "uploads")) as base:
        page.goto(base + "/")
        page.click("#sample-button:not([disabled])")
        page.fill("#query", QUERY)
        page.click("#submit")
        page.wait_for_selector("#moments li.moment button.play")
        assert "moment(s) in" in page.inner_text("#status")
        assert page.locator("#timeline").is_visible()
        button = page.locator("#moments li.moment button.play").first
        start, end = float(button.get_attribute("data-start")), float(button.get_attribute("data-end"))
        assert 0 <= start < end

        # Put the playhead outside the moment, so that reaching the moment proves the button seeked.
        page.wait_for_function("document.getElementById('player').readyState >= 1")
        elsewhere = 0.0 if start >= 1.0 else end + 1.0
        page.evaluate(f"document.getElementById('player').currentTime = {elsewhere}")
        page.wait_for_function("!document.getElementById('player').seeking")
        before = page.evaluate("document.getElementById('player').currentTime")
        assert not start <= before <= end

        # Events record where the page's seek went (at 'seeking' the position is the target, before playback moves
        # it on) and where the player paused: no timing involved.
        page.evaluate("""(() => { const v = document.getElementById('player');
            window.seekedAt = null; window.pausedAt = null;
            v.addEventListener('seeking', () => { window.seekedAt = v.currentTime; }, { once: true });
            v.addEventListener('pause', () => { window.pausedAt = v.currentTime; }, { once: true }); })()""")
        button.click()
        page.wait_for_function("window.seekedAt !== null")
        reached = page.evaluate("window.seekedAt")
        page.wait_for_function("!document.getElementById('player').paused")  # playing from the moment's start
        # ...and stops at the moment's end, paused by the page (not at the video's end): jump close to the end
        page.evaluate(f"document.getElementById('player').currentTime = Math.max({start}, {end} - 0.5)")
        page.wait_for_function("window.pausedAt !== null")
        stopped = page.evaluate("window.pausedAt")
        duration = page.evaluate("document.getElementById('player').duration")
        ended = page.evaluate("document.getElementById('player').ended")
        assert page.locator("#moments li.playing").count() == 1

        page.evaluate(f"document.getElementById('player').currentTime = {start}")  # a frame of the moment
        page.wait_for_function("!document.getElementById('player').seeking")
        folder = Path(os.environ.get("VTGKIT_SCREENSHOT_DIR") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        screenshot = folder / "serve.png"
        page.screenshot(path=str(screenshot), full_page=True)

        # An upload that is not a video: the decoder's message appears on the page
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video\n" * 20)
        page.set_input_files("#file-input", str(notes))
        page.wait_for_selector("#status.error")
        upload_message = page.inner_text("#status")
    with capsys.disabled():
        print(f"\nvtgkit serve page screenshot: {screenshot}")
    assert abs(reached - start) < 1e-3
    assert stopped >= end - 0.05
    if end < duration - 1.0:
        assert not ended and stopped < duration  # the page paused it, the video did not just run out
    assert page.evaluate("document.getElementById('player').error") is None  # Chromium decoded the H.264 sample
    assert errors == []
    assert screenshot.stat().st_size > 0
    assert upload_message.startswith("notes.mp4: ") and "video" in upload_message
