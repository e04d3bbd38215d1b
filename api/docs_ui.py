"""The API documentation at /docs, Swagger UI served from the package itself (no CDN); there is no /redoc."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

# The vendored swagger-ui-dist (its version and origin in api/static/swagger-ui/VERSION); it ships
# as package data (pyproject.toml), so a wheel install on an offline network has it too.
ASSETS_PACKAGE = "api"
ASSETS_DIR = "static/swagger-ui"
DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
ASSETS_ROUTE_NAME = "swagger-ui-assets"


def install(app: FastAPI) -> None:
    """Register /docs and its assets under /docs/assets; public, like /openapi.json, and out of the schema."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    title = f"{app.title} API"

    async def swagger_ui(request: Request) -> HTMLResponse:
        # Paths, not absolute URLs: same origin whatever Host or scheme a proxy presents, and
        # prefixed with root_path so the page still finds everything when mounted under one.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=title,
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            # The API declares no OAuth2 scheme, so no redirect page; and Swagger UI would
            # otherwise ask validator.swagger.io about the schema, which offline is an error badge.
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route(DOCS_PATH, swagger_ui, methods=["GET"], include_in_schema=False)
    # StaticFiles looks the folder up in the installed package and refuses to build (create_app
    # fails, not the first visit) when the package data was left out; it answers If-None-Match
    # with 304, so a browser downloads the 1.7 MB bundle once.
    app.mount(ASSETS_PATH, StaticFiles(packages=[(ASSETS_PACKAGE, ASSETS_DIR)]), name=ASSETS_ROUTE_NAME)
