"""Security headers on every HTTP response, and the API docs served from vendored assets.

The policy allows scripts from this origin only (no inline script, no eval), so an injected <script> in a
zone name or instructions could not run even if some page forgot to escape it. Inline *style attributes*
are allowed: the map's legend uses them and a style cannot run code. A page that needs more (a hashed
inline script, say) sets its own Content-Security-Policy and this middleware leaves it alone.

Referrer-Policy no-referrer: capability links (a tracking page's token is in its URL) must not travel to
another site in a Referer header.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",  # Swagger UI draws its icons as data: SVGs
    "connect-src 'self'",  # CSP3: 'self' also matches ws(s):// to this host, the live feed
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# tokens are returned by the API (registration, rotation): no shared cache or back button may keep them
API_HEADERS = ((b"cache-control", b"no-store"),)


class SecurityHeaders:
    """ASGI middleware: adds the headers above to every HTTP response that has not set them itself."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = HEADERS + (API_HEADERS if scope.get("path", "").startswith("/api/") else ())

        async def send_with_headers(msg) -> None:
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers") or []}
                msg = {**msg, "headers": [*(msg.get("headers") or []), *(h for h in extra if h[0] not in have)]}
            await send(msg)

        await self.app(scope, receive, send_with_headers)


# -- /docs without a CDN --------------------------------------------------------------------------------

DOCS_ASSETS = "/docs/assets"

_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>
"""

# an external file, not an inline <script>, so the page works under script-src 'self'
_INIT_JS = """window.ui = SwaggerUIBundle({
  url: %s, dom_id: "#swagger-ui", deepLinking: true, showExtensions: true, showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
  // the Try-it-out console sends keys in headers; nothing is persisted in the browser
  persistAuthorization: false
});
"""


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package's files (no jsdelivr, no Google fonts).

    Create the app with docs_url=None and redoc_url=None: FastAPI's own pages load from a CDN.
    """
    import json  # noqa: PLC0415

    from swagger_ui_bundle import swagger_ui_path  # noqa: PLC0415

    html = _DOCS_HTML.format(title=app.title, assets=DOCS_ASSETS)
    init = _INIT_JS % json.dumps(app.openapi_url or "/openapi.json")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_init() -> Response:
        return Response(init, media_type="text/javascript")

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
