"""The operator page at ``/``: one static HTML file with its script, shipped in the
package (no build step). It asks for a key and sends it with every request."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["router"]

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> HTMLResponse:
    html = resources.files(__package__).joinpath("static/index.html").read_text("utf-8")
    # The page runs only its own script and talks only to this server.
    policy = (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' ws: wss:; media-src 'self' blob:"
    )
    return HTMLResponse(
        html, headers={"Content-Security-Policy": policy, "Cache-Control": "no-cache"}
    )
