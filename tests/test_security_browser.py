"""The trust boundary in a real browser: several visitors (browser contexts) on one server, forged links,
user text that looks like markdown or HTML, personal vs shared settings, a broken database URL, and sign-in
through a real OpenID Connect provider.
"""
from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.fixtures.browser import free_port, start_app, stop_app
from tests.fixtures.oidc import start_provider

pytestmark = pytest.mark.browser
WAIT = 60_000  # ms: the machine is shared and noisy
ADMIN_TOKEN = "let-me-retune-0f9a"
EMPTY_STATE = re.compile("one person per row")
SERVER_LOGS: dict[str, Path] = {}  # a test server's URL -> its log, quoted when a run does not end


@pytest.fixture(scope="module")
def trust_app(tmp_path_factory) -> Iterator[str]:
    """One server for the anonymous-visitor tests; retuning the shared pools asks for ADMIN_TOKEN."""
    data_dir = tmp_path_factory.mktemp("trust-app")
    process, url = start_app(data_dir, {"SPINDLE_ADMIN_TOKEN": ADMIN_TOKEN, "MAX_WORKERS_PER_USER": "4"})
    SERVER_LOGS[url] = next(data_dir.glob("server-*.log"))
    yield url
    stop_app(process)


@pytest.fixture
def visitors(browser):
    """New visitors: each call opens a browser context of its own (its own cookies, its own identity)."""
    contexts = []

    def open_visitor(url: str) -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
        context.set_default_timeout(WAIT)
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        expect(page.get_by_test_id("stSidebar")).to_be_visible(timeout=WAIT)
        return page

    yield open_visitor
    for context in contexts:
        context.close()


def identity_in_url(page: Page) -> str:
    page.wait_for_url(re.compile(r"[?&]user=[0-9a-f]{32}\."), timeout=WAIT)
    return urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["user"][0]


PEOPLE = ("Name,Phone,Email\n"
          "Ann Smith,+1 212 555 0100,ann@example.com\n"
          "Bob Jones,+1 212 555 0101,bob@example.com\n"
          "Cy Young,+1 212 555 0102,cy@example.com\n")


def validate_a_small_sheet(page: Page, name: str, sheet: str = PEOPLE) -> None:
    """Upload a sheet of a few rows and run it to the end (a few rows keep the test quick)."""
    rows = sheet.count("\n") - 1
    page.locator("input[type='file']").set_input_files({"name": name, "mimeType": "text/csv", "buffer": sheet.encode()})
    page.get_by_role("button", name=f"Validate {rows} records").click()
    try:
        expect(page.get_by_text(re.compile(rf"Completed: {rows} of {rows} items"))).to_be_visible(timeout=120_000)
    except AssertionError as exc:  # say what the page and the server showed instead
        server_log = next((log for url, log in SERVER_LOGS.items() if page.url.startswith(url)), None)
        raise AssertionError(f"{exc}\nThe page showed:\n{page.get_by_test_id('stMain').inner_text()}\n"
                             f"The server's log ends:\n{server_log.read_text()[-4000:] if server_log else '?'}"
                             ) from None


def test_forged_or_tampered_links_never_reach_another_visitors_data(trust_app, visitors):
    first = visitors(trust_app)
    token = identity_in_url(first)
    validate_a_small_sheet(first, "first-visitors-people.csv")
    expect(first.get_by_role("button", name="Cleaned file (CSV)")).to_be_visible(timeout=WAIT)

    first.reload()  # a reload keeps the identity, and with it the run
    expect(first.get_by_role("button", name="Cleaned file (CSV)")).to_be_visible(timeout=WAIT)
    assert identity_in_url(first) == token

    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for forged in ("alice", tampered):
        other = visitors(f"{trust_app}/?user={urllib.parse.quote(forged)}")
        issued = identity_in_url(other)
        assert issued not in (forged, token)  # a fresh identity, never the one offered
        expect(other.get_by_text(EMPTY_STATE)).to_be_visible(timeout=WAIT)
        expect(other.get_by_role("button", name="Cleaned file (CSV)")).to_have_count(0)
        expect(other.get_by_role("button", name="Cancel job")).to_have_count(0)
        expect(other.get_by_text("first-visitors-people.csv")).to_have_count(0)

    # What the others see of the first visitor: a count, never an id.
    other.get_by_role("link", name="Performance").click()
    expect(other.get_by_text(re.compile(r"\d+ other visitors?, \d+ jobs?, \d+ workers? busy"))).to_be_visible(
        timeout=WAIT)
    assert token.split(".")[0] not in other.content()


def test_markdown_and_html_in_names_headers_and_cells_render_as_text(trust_app, visitors, tmp_path):
    page = visitors(trust_app)
    name = "**bold**[evil](http://evil.test)<img src=x onerror=alert(1)>.csv"
    header = "[tap](http://evil.test/h)<b>Phone</b>"
    sheet = (f"Name,{header},Email\n"
             "**Ann** <img src=http://127.0.0.1:9/pixel.png>,+1 212 555 0100,ann@example.com\n"
             "[Bob](http://evil.test/c),+1 212 555 0101,bob@example.com\n")
    validate_a_small_sheet(page, name, sheet)
    expect(page.get_by_text(re.compile(r"Run of .*\*\*bold\*\*"))).to_be_visible(timeout=WAIT)
    for rendered in ('a[href*="evil.test"]', 'img[src="x"]', 'img[src*="127.0.0.1:9"]'):
        expect(page.locator(rendered)).to_have_count(0)
    expect(page.locator("strong", has_text=re.compile(r"^bold$"))).to_have_count(0)  # **bold** stays as typed
    expect(page.locator("b", has_text=re.compile(r"^Phone$"))).to_have_count(0)


def open_settings(page: Page, pool: str) -> None:
    panel = page.get_by_text(re.compile(rf"Performance settings · pool .{pool}."))
    if not page.get_by_text("You are changing", exact=False).first.is_visible():
        panel.click()


def test_a_non_admins_slider_changes_only_their_jobs_and_an_admins_retune_reaches_every_page(trust_app, visitors):
    visitor = visitors(f"{trust_app}/performance")
    expect(visitor.get_by_text("You are changing your own jobs only", exact=False)).to_be_visible(timeout=WAIT)
    slider = visitor.get_by_role("slider", name="Workers for my jobs")
    slider.focus()
    slider.press("ArrowLeft")
    visitor.get_by_role("button", name="Apply to my jobs").click()
    expect(visitor.get_by_text(re.compile(r"Your jobs: up to 3 workers"))).to_be_visible(timeout=WAIT)

    # An admin (who typed the token) retunes the shared "cpu" pool from the Validation page...
    admin = visitors(trust_app)
    open_settings(admin, "cpu")
    expect(admin.get_by_text(re.compile(r"Your jobs: up to 4 workers"))).to_be_visible(timeout=WAIT)  # not the other's
    shared = admin.get_by_text(re.compile(r"The shared pool .cpu. runs \d+ workers")).first.inner_text()
    workers = int(re.search(r"runs (\d+) workers", shared).group(1))
    token_box = admin.get_by_label("Admin token (to retune the shared pools)")
    token_box.fill("wrong")
    token_box.press("Enter")
    expect(admin.get_by_text("That is not the admin token.")).to_be_visible(timeout=WAIT)
    token_box.fill(ADMIN_TOKEN)
    token_box.press("Enter")
    admin.get_by_text("The shared pool (everyone's jobs)").click()
    expect(admin.get_by_text("You are changing the shared pool", exact=False)).to_be_visible(timeout=WAIT)
    slider = admin.get_by_role("slider", name="Workers").first
    slider.focus()
    slider.press("ArrowRight")
    expect(slider).to_have_value(str(workers + 1))
    admin.get_by_role("button", name="Apply", exact=True).click()
    expect(admin.get_by_text(re.compile(rf"Pool .cpu.: {workers + 1} workers"))).to_be_visible(timeout=WAIT)

    # ...and the other visitor's Validation page shows it, with their own settings unchanged.
    visitor.get_by_role("link", name="Validation").click()
    expect(visitor.get_by_role("heading", name="Validation").first).to_be_visible(timeout=WAIT)
    open_settings(visitor, "cpu")
    expect(visitor.get_by_text(re.compile(rf"The shared pool .cpu. runs {workers + 1} workers"))).to_be_visible(
        timeout=WAIT)
    expect(visitor.get_by_text(re.compile(r"Your jobs: up to 3 workers"))).to_be_visible()


def test_a_malformed_database_url_shows_no_password_on_the_page_or_in_the_log(tmp_path, visitors):
    password = "Sup3rSecretPW"
    process, url = start_app(tmp_path, {"DATABASE_URL": f"postgresql://spindle:{password}@[bad-host/spindle"})
    try:
        page = visitors(url)
        expect(page.get_by_text(re.compile(r"error id: [0-9a-f]{10}"))).to_be_visible(timeout=WAIT)
        error_id = re.search(r"error id: ([0-9a-f]{10})", page.get_by_text(re.compile("error id")).first.inner_text())
        assert password not in page.content()
        expect(page.get_by_test_id("stException")).to_have_count(0)
    finally:
        stop_app(process)
    log = "\n".join(p.read_text(errors="replace") for p in Path(tmp_path).glob("server-*.log"))
    assert error_id is not None and error_id.group(1) in log  # the traceback is in the log, under the id...
    assert "Traceback" in log
    assert password not in log  # ...with the password masked


@pytest.fixture(scope="module")
def signed_in_app(tmp_path_factory) -> Iterator[str]:
    """An app whose [auth] section points at a real OpenID Connect provider; alice@example.test is an admin."""
    home = tmp_path_factory.mktemp("oidc-home")
    app_port = free_port()
    provider_process, provider = start_provider(app_port, home)
    (home / ".streamlit").mkdir()
    (home / ".streamlit" / "secrets.toml").write_text(provider.secrets_toml())  # ~/.streamlit: not a tracked file
    data_dir = tmp_path_factory.mktemp("oidc-data")
    try:
        process, url = start_app(data_dir, {"HOME": str(home), "SPINDLE_ADMINS": "alice@example.test"},
                                 port=app_port)
    except Exception:
        stop_app(provider_process)  # any child process: terminate, then kill
        raise
    yield url
    stop_app(process)
    stop_app(provider_process)  # any child process: terminate, then kill


def sign_in(page: Page, name: str) -> None:
    page.get_by_role("button", name="Sign in").click()
    page.locator("input[name='login']").fill(name)  # the provider's own login form
    page.locator("input[name='password']").fill("any password")
    page.get_by_role("button", name=re.compile("Sign-in", re.I)).click()
    page.get_by_role("button", name=re.compile("Continue", re.I)).click()  # consent
    expect(page.get_by_test_id("stSidebar")).to_be_visible(timeout=WAIT)


def test_sign_in_through_a_real_provider_and_sign_out(signed_in_app, visitors):
    page = visitors(signed_in_app)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("heading", name="Validation")).to_have_count(0)  # nothing before signing in
    sign_in(page, "alice")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("alice@example.test")).to_be_visible(timeout=WAIT)
    expect(sidebar.get_by_text("Admin: you may retune", exact=False)).to_be_visible()
    expect(page.get_by_role("heading", name="Validation").first).to_be_visible()
    assert "user=" not in page.url  # signed in, the identity is the provider's subject, not a link

    bob = visitors(signed_in_app)
    sign_in(bob, "bob")
    expect(bob.get_by_test_id("stSidebar").get_by_text("bob@example.test")).to_be_visible(timeout=WAIT)
    expect(bob.get_by_text("Admin: you may retune", exact=False)).to_have_count(0)
    bob.get_by_role("link", name="Performance").click()
    expect(bob.get_by_text("You are changing your own jobs only", exact=False)).to_be_visible(timeout=WAIT)

    page.get_by_role("button", name="Sign out").click()
    confirm = page.get_by_role("button", name=re.compile("Yes, sign me out", re.I))
    confirm.click()  # the provider asks before ending its own session
    page.goto(signed_in_app)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("alice@example.test")).to_have_count(0)
