"""Memory bombs through a real browser: each file gets its row and reason, sheets name their limit,
and the server's peak RSS (worker processes included) stays under 1.5 GB."""
from __future__ import annotations

import re
import threading

import psutil
import pytest
from playwright.sync_api import expect

from streamlit_app import media_samples
from tests import hostile_files
from tests.fixtures.browser import start_app, stop_app
from tests.test_browser_app import open_page

pytestmark = pytest.mark.browser
PEAK_LIMIT = int(1.5 * 2**30)


def _server(app_url: str) -> psutil.Process:
    port = int(app_url.rsplit(":", 1)[1])
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return psutil.Process(connection.pid)
    raise AssertionError(f"no process listens on port {port}")


class PeakRss:
    """Samples the server's RSS plus all its children's every 20 ms, in a background thread."""

    def __init__(self, server: psutil.Process) -> None:
        self.server, self.start, self.peak, self._stop = server, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        total = 0
        for process in [self.server, *self.server.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._total())

    def __enter__(self) -> PeakRss:
        self.start = self.peak = self._total()
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()


def _upload(page, app_url, path, files, tmp_path, reasons) -> None:
    open_page(page, app_url, path)
    paths = []
    for name, data in files:
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    page.locator("input[type='file']").first.set_input_files(paths)
    expect(page.get_by_role("button", name=re.compile("^Remove "))).to_have_count(len(files))
    page.get_by_role("button", name="Analyse files").click()
    done = rf"Completed: {len(files)} of {len(files)} items · {len(reasons)} failed"
    expect(page.get_by_text(re.compile(done)).first).to_be_visible(timeout=120_000)
    for reason in reasons:
        expect(page.get_by_text(re.compile(re.escape(reason))).first).to_be_attached(timeout=60_000)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """A server of its own: the shared one may hold pools that earlier tests started (a Validation run's checkers
    put it near 1.1 GB before any bomb), and the peak would then depend on the order the tests ran in."""
    process, url = start_app(tmp_path_factory.mktemp("hostile-app-data"))
    yield url
    stop_app(process)


def test_memory_bombs_fail_alone_and_the_server_stays_small(page, server_url, tmp_path):
    ordinary = [(name, data) for name, data, *_ in media_samples.sample_image_files()[:1]]
    with PeakRss(_server(server_url)) as rss:
        _upload(page, server_url, "image", ordinary + [
            ("grey16_8000.png", hostile_files.png_bomb(8000, 8000, 16, 0)),
            ("rgb16_6000.png", hostile_files.png_bomb(6000, 6000, 16, 2)),
        ], tmp_path, ["MAX_IMAGE_PIXELS", "MAX_DECODED_MB"])
        _upload(page, server_url, "audio", [("bomb.flac", hostile_files.flac_bomb()),
                                         ("channels.wav", hostile_files.wav_channel_bomb())],
                tmp_path, ["MAX_DECODED_MB", "MAX_AUDIO_CHANNELS"])
        _upload(page, server_url, "text", [("bomb.docx", hostile_files.docx_bomb())], tmp_path, ["MAX_ZIP_PART_MB"])

        open_page(page, server_url, "validation")
        for name, data, setting in [("wide.csv", hostile_files.wide_csv(), "MAX_SHEET_COLUMNS"),
                                    ("tall.csv", hostile_files.tall_csv(), "MAX_SHEET_ROWS"),
                                    ("bomb.xlsx", hostile_files.xlsx_bomb(), "MAX_ZIP_PART_MB"),
                                    ("big.csv", hostile_files.tall_csv(3_200_000), "MAX_SHEET_MB")]:
            (tmp_path / name).write_bytes(data)
            page.locator("input[type='file']").first.set_input_files(str(tmp_path / name))
            # The page answers while the sheet is read in a worker, then names the limit.
            expect(page.get_by_test_id("stAlert").filter(has_text=setting)).to_be_visible(timeout=60_000)
            expect(page.get_by_test_id("stException")).to_have_count(0)
    print(f"server RSS, worker processes included: {rss.start / 2**20:.0f} MB before, "  # shown with pytest -s
          f"{rss.peak / 2**20:.0f} MB at peak")
    assert 0 < rss.peak < PEAK_LIMIT, f"server peak RSS {rss.peak / 2**20:.0f} MB"
