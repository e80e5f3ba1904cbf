"""Who is calling, before anything else is read: named tokens, auth and body limits as ASGI middleware,
security headers.

FastAPI dependencies run after the request body has been parsed, so a dependency cannot refuse a
31 MB body without a token before reading it. :class:`GuardMiddleware` runs first: a ``/v1`` request
without a valid bearer token gets 401 from the headers alone, and any request body above
``api.max_body_bytes`` gets 413 (from ``Content-Length``, or while a chunked body streams in). The
caller (:class:`Principal`) is left in the request state for the scope checks
(:func:`serving.api.dependencies.require`). A body is read in full before the route runs, and one not
received within ``api.body_timeout_s`` gets 408: a slow client cannot hold a worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from fraudgraph.config import ApiSettings, TokenSpec

from .errors import error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp

SCOPES = {"read", "score", "review", "override"}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]


def _principal(token: str, spec: TokenSpec | list) -> Principal:
    if isinstance(spec, TokenSpec):
        return Principal(spec.name, frozenset(spec.scopes))
    return Principal("token-" + hashlib.sha256(token.encode()).hexdigest()[:8], frozenset(spec))


def load_tokens(cfg: ApiSettings) -> dict[str, Principal]:
    """``api.tokens`` merged with ``api.tokens_file`` (YAML or JSON: token -> {name, scopes} or scopes)."""
    tokens = {t: _principal(t, spec) for t, spec in cfg.tokens.items()}
    if cfg.tokens_file:
        data = yaml.safe_load(Path(cfg.tokens_file).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"api.tokens_file {cfg.tokens_file}: expected a mapping token -> {{name, scopes}}")
        for token, spec in data.items():
            if isinstance(spec, dict):
                spec = TokenSpec.model_validate(spec)
            elif not isinstance(spec, list):
                raise ValueError(f"api.tokens_file {cfg.tokens_file}: a token maps to {{name, scopes}} or a list")
            bad = set(spec.scopes if isinstance(spec, TokenSpec) else spec) - SCOPES
            if bad:
                raise ValueError(f"api.tokens_file {cfg.tokens_file}: unknown scopes {sorted(bad)}")
            tokens[str(token)] = _principal(str(token), spec)
    names = [p.name for p in tokens.values()]
    if len(names) != len(set(names)):
        raise ValueError("api tokens: two tokens share a name (names are what the review log records)")
    return tokens


class GuardMiddleware:
    """Pure ASGI: auth for ``/v1`` from the headers, then the body size limit, then security headers on
    every response."""

    def __init__(
        self, app: ASGIApp, tokens: dict[str, Principal], max_body_bytes: int, body_timeout_s: float = 10.0
    ) -> None:
        self.app, self.tokens, self.max_body, self.body_timeout_s = app, tokens, max_body_bytes, body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {
                    **message,
                    "headers": [*message.get("headers", []), *[h for h in SECURITY_HEADERS if h[0] not in present]],
                }
            await send(message)

        headers = dict(scope.get("headers") or [])
        if scope["path"].startswith("/v1/"):
            principal = self._authenticate(headers.get(b"authorization", b"").decode("latin-1"))
            if isinstance(principal, str):
                return await error_response(401, "unauthorized", principal, {"WWW-Authenticate": "Bearer"})(
                    scope, receive, send_with_headers
                )
            scope.setdefault("state", {})["principal"] = principal
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await self._too_large(scope, receive, send_with_headers)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            # read the body here, at most the limit and within the time limit, then hand it on
            buffered, size, deadline = [], 0, time.monotonic() + self.body_timeout_s
            while True:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    return await error_response(
                        408, "timeout", f"request body not received within api.body_timeout_s={self.body_timeout_s:g}"
                    )(scope, receive, send_with_headers)
                buffered.append(message)
                size += len(message.get("body", b""))
                if size > self.max_body:
                    return await self._too_large(scope, receive, send_with_headers)
                if message["type"] != "http.request" or not message.get("more_body"):
                    break

            async def replay():
                return buffered.pop(0) if buffered else await receive()

            return await self.app(scope, replay, send_with_headers)
        return await self.app(scope, receive, send_with_headers)

    def _authenticate(self, header: str) -> Principal | str:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "a bearer token is required"
        return self.tokens.get(token.strip()) or "the bearer token is not valid"

    async def _too_large(self, scope, receive, send):
        await error_response(413, "too_large", f"request body above api.max_body_bytes={self.max_body}")(
            scope, receive, send
        )
