"""/docs works offline: Swagger UI served from the package, no CDN, no key needed."""

from __future__ import annotations

import re
from importlib.resources import files
from urllib.parse import urlsplit

import httpx

# What a browser loads from the page: stylesheets, the favicon and scripts.
ASSET_REFERENCE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
VENDORED = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE", "VERSION")
# Content type (its prefix before any parameter) and a size below which the file is not the real one.
EXPECTED = {
    ".js": (("text/javascript", "application/javascript"), 500_000),
    ".css": (("text/css",), 50_000),
    ".png": (("image/png",), 200),
}


def test_swagger_ui_is_package_data() -> None:
    """The vendored Swagger UI is in the installed package, with its licence and a pinned 5.x version."""
    folder = files("api") / "static" / "swagger-ui"
    for name in VENDORED:
        assert (folder / name).is_file(), name
    assert len((folder / "swagger-ui-bundle.js").read_bytes()) > 500_000
    assert "Apache License" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert re.match(r"swagger-ui-dist 5\.\d+\.\d+ ", (folder / "VERSION").read_text(encoding="utf-8"))
    # Source maps are 2 MB each of nothing a user needs.
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".map")]


async def test_docs_are_offline_and_public(api: httpx.AsyncClient) -> None:
    """/docs, its assets and /openapi.json answer without a key, and the page names no other host."""
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as anonymous:
        page = await anonymous.get("/docs")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        for cdn in ("cdn.jsdelivr", "unpkg", "cdnjs", "fastapi.tiangolo.com", "validator.swagger.io"):
            assert cdn not in html, cdn
        # No absolute URL anywhere in the page, not only in src and href.
        assert not re.findall(r"(?:https?:)?//\w", html), html

        references = ASSET_REFERENCE.findall(html)
        suffixes = {urlsplit(ref).path.rsplit(".", 1)[-1] for ref in references}
        assert {"js", "css", "png"} <= suffixes, references
        for ref in references:
            parts = urlsplit(ref)
            assert not parts.scheme and not parts.netloc, ref
            asset = await anonymous.get(ref)
            assert asset.status_code == 200, ref
            kinds, least = EXPECTED["." + parts.path.rsplit(".", 1)[-1]]
            assert asset.headers["content-type"].split(";")[0].strip() in kinds, (ref, asset.headers["content-type"])
            assert len(asset.content) >= least, (ref, len(asset.content))
            # A browser that has it already is answered 304 rather than sent 1.7 MB again.
            again = await anonymous.get(ref, headers={"If-None-Match": asset.headers["etag"]})
            assert again.status_code == 304, ref

        schema = await anonymous.get("/openapi.json")
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        assert "/api/v1/readings" in paths
        # The documentation routes are not part of the API they document.
        assert not [p for p in paths if p.startswith("/docs")]

        # Nothing outside the assets folder (this one is api/docs_ui.py), no listing, no CDN-backed ReDoc.
        assert (await anonymous.get("/docs/assets/%2e%2e/%2e%2e/docs_ui.py")).status_code == 404
        assert (await anonymous.get("/docs/assets/")).status_code == 404
        assert (await anonymous.get("/redoc")).status_code == 404

        # A data route still wants a key: /docs being public opens nothing else.
        assert (await anonymous.get("/api/v1/readings", params={"station_id": "x"})).status_code == 401
