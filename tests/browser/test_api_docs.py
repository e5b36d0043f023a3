"""The API's documentation page (/schema) in Chromium with no network beyond the app: every file comes from
the app, and it runs under the dashboard's Content-Security-Policy."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.browser.harness import AppServer, PageProblems

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_the_api_docs_work_offline_under_the_csp(
    context: BrowserContext, page: Page, server: AppServer, problems: PageProblems, path: str
) -> None:
    """With every request to another host refused, Swagger UI still lists the operations and can show
    one; nothing went elsewhere, and the console has no error (a CSP violation would be one)."""
    elsewhere: list[str] = []

    def only_the_app(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(server.url).netloc:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_app)
    response = page.goto(server.url + path)

    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", name="Smart YouTube Bookmarks")).to_be_visible()
    operation = page.locator("#operations-imports-createImport")
    expect(operation).to_be_visible()
    operation.get_by_role("button").first.click()
    expect(operation.get_by_role("heading", name="Request body")).to_be_visible()
    expect(operation.get_by_role("combobox").first).to_be_visible()  # the request body's media types
    assert elsewhere == []
    assert problems.console_errors == [], problems.console_errors
