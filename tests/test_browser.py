"""The operator page in a real browser: Chromium (Debian's /usr/bin/chromium, which
.ci/run installs) driven by Playwright, its microphone faked from a corpus recording.

Chromium's fake microphone loops one WAV file, so the browser is launched once per
recording. A speaker is enrolled through the page from one recording; a live verify
from another recording of the same speaker is accepted; a live verify of a different
voice against them is rejected. GE2E (model `resemblyzer`) on real speech.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _serving import Server, make_keys, stop_quietly

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]

pytestmark = [
    pytest.mark.slow,
    # In CI a missing browser is a failure (.ci/run installs it), not a skip.
    pytest.mark.skipif(
        not CHROMIUM.exists() and os.environ.get("CI") != "true",
        reason="needs Debian's chromium (apt-get install chromium chromium-driver)",
    ),
]


@contextmanager
def page_hearing(server: Server, recording: Path, key: str) -> Iterator[object]:
    """The operator page in a Chromium whose microphone plays ``recording``, key entered."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*FLAGS, f"--use-file-for-fake-audio-capture={recording}"],
        )
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.port}/")
            page.fill("#key", key)
            page.click("#use-key")
            page.wait_for_selector("#status:has-text('enrolled')")
            yield page
        finally:
            browser.close()


def enroll_from_microphone(server: Server, key: str, name: str, recording: Path) -> None:
    with page_hearing(server, recording, key) as page:
        page.fill("#enroll-name", name)  # type: ignore[attr-defined]
        page.fill("#record-seconds", "6")  # type: ignore[attr-defined]
        page.click("#enroll-mic")  # type: ignore[attr-defined]
        try:
            page.wait_for_selector(f"#status:has-text('for {name}')", timeout=60_000)  # type: ignore[attr-defined]
        except sync_api.TimeoutError:
            status = page.inner_text("#status")  # type: ignore[attr-defined]
            raise AssertionError(f"the page says: {status}\n{server.log()[-3000:]}") from None
        # The page refreshes its list after it shows the status: wait for the row.
        rows = page.locator("#speakers tr", has_text=name)  # type: ignore[attr-defined]
        rows.first.wait_for(timeout=30_000)
        assert rows.count() == 1


def verify_live(server: Server, key: str, name: str, recording: Path) -> str:
    """The final outcome the page shows after 5 s of live verify against ``name``."""
    with page_hearing(server, recording, key) as page:
        page.select_option("#mode", "verify")  # type: ignore[attr-defined]
        page.fill("#verify-name", name)  # type: ignore[attr-defined]
        page.click("#live-start")  # type: ignore[attr-defined]
        page.wait_for_selector("#status:has-text('listening')")  # type: ignore[attr-defined]
        page.wait_for_timeout(5000)  # type: ignore[attr-defined]
        page.click("#live-stop")  # type: ignore[attr-defined]
        page.wait_for_selector("#decision[data-final='true']", timeout=60_000)  # type: ignore[attr-defined]
        return str(page.get_attribute("#decision", "data-outcome"))  # type: ignore[attr-defined]


def test_enroll_and_verify_live_through_the_page(tmp_path: Path, corpus: Path) -> None:
    def recordings(speaker: str) -> list[Path]:
        return sorted((corpus / "concat3s" / speaker).glob("*.wav"))

    allison, carlo = recordings("asterisk-allison"), recordings("asterisk-carlo-it")
    keys = make_keys(tmp_path / "speakers.db")
    server = Server(tmp_path / "speakers.db", log=tmp_path / "log").start()
    try:
        enroll_from_microphone(server, keys["admin"], "allison", allison[0])
        enroll_from_microphone(server, keys["admin"], "carlo", carlo[0])
        assert verify_live(server, keys["query"], "allison", allison[5]) == "accepted"
        assert verify_live(server, keys["query"], "allison", carlo[5]) == "rejected"
    finally:
        stop_quietly(server)
    assert "Traceback" not in server.log()
