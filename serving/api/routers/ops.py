"""Health, readiness, metrics and the review console page: no token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..dependencies import Services, services
from ..errors import ApiError, ErrorResponse
from ..schemas import Health, Ready

CONSOLE_HTML = Path(__file__).resolve().parents[2] / "console" / "index.html"
router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "a component is not ready"}}
)
def readyz(svc: Services = Depends(services)) -> dict[str, Any] | JSONResponse:
    """Each component's state: the graph answers, is writable and holds the schema; the model is loaded; the
    review log answers. No paths and no versions."""
    components = {}
    try:
        svc.store.customers_of(["__readiness_probe__"])
        svc.store.graph_id  # noqa: B018 - reads (and on a new graph writes) the graph's id: writable
        components["graph"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready
        components["graph"] = f"unavailable ({type(exc).__name__})"
    components["model"] = "ok" if svc.scorer.artifact is not None else "not loaded"
    try:
        svc.review_log.ping()
        components["review_log"] = "ok"
    except Exception as exc:  # noqa: BLE001
        components["review_log"] = f"unavailable ({type(exc).__name__})"
    ready = all(v == "ok" for v in components.values())
    body = {"status": "ready" if ready else "not_ready", "components": components}
    return body if ready else JSONResponse(body, status_code=503)


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus metrics (request counts and latency per route)."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console() -> HTMLResponse:
    return HTMLResponse(CONSOLE_HTML.read_text())


# the page's script and styles are files of their own: the Content-Security-Policy allows no inline script or style
CONSOLE_ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}


@router.get("/console/{asset}", include_in_schema=False)
def console_asset(asset: str) -> Response:
    if asset not in CONSOLE_ASSETS:
        raise ApiError(404, "not_found", "no such console file")
    return Response((CONSOLE_HTML.parent / asset).read_text(), media_type=CONSOLE_ASSETS[asset])


__all__ = ["router", "ErrorResponse"]
