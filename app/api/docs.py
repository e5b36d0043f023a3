"""The API's documentation page, Swagger UI at /schema (and /schema/swagger), served whole by the app.

Litestar's own page loads Swagger UI from a CDN and starts it with an inline script: blank without a
network, and refused by the dashboard's CSP. Here its files come from the `openapi-ui-bundles` package
(Swagger UI 5, which reads OpenAPI 3.1), the page has no inline script or style, and the /schema router
sends the dashboard's security headers (its CSP allowing the one style element Swagger UI adds).
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, Router, get
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router
from openapi_ui_bundles import swagger_ui

from app.dashboard.routes import CONTENT_SECURITY_POLICY, PUBLIC, SECURITY_HEADERS, SecurityHeadersMiddleware

DOCS_PATH: Final = "/schema"
SWAGGER_STYLE_HASH: Final = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"
"""The one <style> element Swagger UI (5.17, as bundled) adds to the page: allowed by its hash alone."""
DOCS_HEADERS: Final = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", f"style-src 'self' {SWAGGER_STYLE_HASH}"
    ),
}
ASSETS: Final = f"{DOCS_PATH}/assets"
START_SCRIPT: Final = b"""// Swagger UI on this app's document (a file: the CSP forbids inline scripts).
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/schema/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
});
"""


class OfflineSwaggerUI(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(
            path="/swagger",
            favicon='<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">',
            style="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = openapi_schema["info"]["title"]
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API</title>
{self.favicon}
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="stylesheet" href="{ASSETS}/index.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/swagger-ui-standalone-preset.js"></script>
<script src="{ASSETS}/start.js"></script>
</body>
</html>
""".encode()


@get("/assets/start.js", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
def start_script() -> Response[bytes]:
    return Response(START_SCRIPT, media_type="text/javascript")


def docs_router() -> Router:
    """The router Litestar adds the document and the page to (`OpenAPIConfig(openapi_router=...)`)."""
    assets = create_static_files_router(
        path="/assets", directories=[swagger_ui.static_path], opt=PUBLIC, include_in_schema=False
    )
    return Router(
        path=DOCS_PATH,
        route_handlers=[start_script, assets],
        middleware=[SecurityHeadersMiddleware(DOCS_HEADERS)],
        include_in_schema=False,
    )
