"""First paint and deep links in a real browser, on servers of their own (the first visitor of a fresh server is the
case Streamlit handles differently: with a pages/ folder it starts in its legacy layout)."""
from __future__ import annotations

import re
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import start_app, stop_app

pytestmark = pytest.mark.browser
PAGES = ["Validation", "Audio", "Image", "Text", "Analytics", "Performance"]
LEGACY = ["app", "analytics", "audio", "image", "performance", "text", "validation"]  # the pages/ folder's names
# Every navigation link the page ever shows, recorded from the first DOM change on.
RECORD_NAVIGATION = """
window.__navSeen = [];
new MutationObserver(() => {
  const links = document.querySelectorAll('[data-testid="stSidebarNav"] a, [data-testid="stSidebarNavLink"], '
                                          + '[data-testid="stPageLink-NavLink"], [data-testid="stTopNavLink"]');
  if (!links.length) return;
  const labels = Array.from(links, a => a.innerText.trim().split('\\n').pop().trim()).filter(Boolean);  // icon name, then label
  const last = window.__navSeen[window.__navSeen.length - 1];
  if (labels.length && JSON.stringify(labels) !== JSON.stringify(last)) window.__navSeen.push(labels);
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


@pytest.fixture
def fresh_server(tmp_path) -> Iterator[str]:
    """A server nobody has visited yet."""
    process, url = start_app(tmp_path)
    yield url
    stop_app(process)


@pytest.fixture
def new_visitor(browser):
    """A browser context with no cookies, that records the navigation links it is shown."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    context.add_init_script(RECORD_NAVIGATION)
    yield context.new_page()
    context.close()


def expect_page(tab, title: str) -> None:
    expect(tab.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=30_000)
    expect(tab.get_by_text(re.compile("page not found", re.I))).to_have_count(0)
    expect(tab.get_by_test_id("stException")).to_have_count(0)


def navigation_seen(tab) -> list[list[str]]:
    return tab.evaluate("window.__navSeen")


@pytest.mark.parametrize("path, title", [("", "Validation"), ("performance", "Performance")])
def test_the_first_visitor_of_a_fresh_server_sees_only_the_final_navigation(fresh_server, new_visitor, path, title):
    new_visitor.goto(f"{fresh_server}/{path}")
    expect_page(new_visitor, title)
    for name in PAGES:
        expect(new_visitor.get_by_test_id("stSidebar").get_by_role("link", name=name, exact=True)).to_be_visible()
    seen = navigation_seen(new_visitor)
    assert seen, "no navigation was recorded"
    # From the first paint on: the app's pages in their order, never the pages/ folder's file names. The links
    # arrive as the script draws them, so a busy server may paint the first few before the rest.
    for labels in seen:
        assert labels == PAGES[:len(labels)], f"navigation shown: {labels}"
        assert not set(labels) & set(LEGACY)
    assert seen[-1] == PAGES


@pytest.mark.parametrize("path, title", [("validation", "Validation"), ("performance", "Performance"),
                                         ("audio", "Audio")])
def test_a_deep_link_opens_its_page_for_a_new_visitor(app_url, new_visitor, path, title):
    new_visitor.goto(f"{app_url}/{path}")
    expect_page(new_visitor, title)
    assert urlsplit(new_visitor.url).path == f"/{path}"  # the address stays the one that was shared


def test_the_sidebar_links_open_every_page_and_come_back_home(app_url, new_visitor):
    new_visitor.goto(f"{app_url}/audio")
    expect_page(new_visitor, "Audio")
    sidebar = new_visitor.get_by_test_id("stSidebar")
    sidebar.get_by_role("link", name="Performance", exact=True).click()
    expect_page(new_visitor, "Performance")
    sidebar.get_by_role("link", name="Validation", exact=True).click()
    expect_page(new_visitor, "Validation")
