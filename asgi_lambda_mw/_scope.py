"""Scope keys through which the layers of the stack talk to each other within one request.

The tracing layer puts a timings dict into the scope; inner layers (the rate limiter) add to
it, and the tracing layer turns it into ``Server-Timing``. Each key works when absent.
"""

from __future__ import annotations

from .types import Scope

__all__ = ["COLD_START_KEY", "SERVER_TIMING_KEY", "record_timing", "route_path"]

SERVER_TIMING_KEY = "asgi_lambda_mw.server_timing"
"""dict[str, float]: metric name -> duration in milliseconds, set by TracingMiddleware."""

COLD_START_KEY = "asgi_lambda_mw.cold_start"
"""bool: True on the first invocation of a Lambda execution environment, set by lambda_handler."""


def record_timing(scope: Scope, name: str, duration_ms: float) -> None:
    """Add a Server-Timing metric for this request, if a tracing layer is listening."""
    timings = scope.get(SERVER_TIMING_KEY)
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + duration_ms


def route_path(scope: Scope) -> str:
    """The path below ``root_path`` (a REST API stage, uvicorn's --root-path), which is what
    the app's routes, and so the patterns, are written against."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest or rest.startswith("/"):
            return rest or "/"
    return path
