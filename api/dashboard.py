"""The dashboard's pages: one HTML shell for every page path, and its assets from the package.

The pages are plain ES modules and a vendored ECharts (api/static/dashboard/vendor/VERSION): no
build step, nothing fetched from the internet (docs/dashboard.md). They read the same scoped API
as any client, with the session cookie of the sign-in page, so a park's operator sees their park.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

ASSETS_PACKAGE = "api"
ASSETS_DIR = "static/dashboard"
ASSETS_PATH = "/assets"
# The pages' paths (the shell's script picks the page from the path); the API stays under /api.
PAGES = ("/", "/parks/{park_id}", "/stations/{station_id}", "/alerts", "/assessment", "/screen", "/login")
# Scripts only from parkwatch itself; styles inline too, because ECharts positions its tooltips
# with style attributes; no page may frame ours but ours.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)


class _Assets(StaticFiles):
    """The package's assets, revalidated on each use (a 304 when unchanged), so an upgrade is seen at once."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        """The file, marked to be revalidated."""
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def _shell() -> str:
    return resources.files(ASSETS_PACKAGE).joinpath(f"{ASSETS_DIR}/index.html").read_text(encoding="utf-8")


def install(app: FastAPI) -> None:
    """Register the page paths and /assets; public, like /docs: the data behind them is not."""
    shell = _shell()  # read once: a missing file fails create_app, not a visitor

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(
            shell.replace("{{root}}", root),
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    async def favicon(request: Request) -> RedirectResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{root}{ASSETS_PATH}/favicon.svg", status_code=308)

    for path in PAGES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS_PATH, _Assets(packages=[(ASSETS_PACKAGE, ASSETS_DIR)]), name="dashboard-assets")
