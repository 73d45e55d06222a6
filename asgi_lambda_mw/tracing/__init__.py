"""Request tracing, the outermost layer: request ids, W3C and X-Ray trace context, JSON
access logs, Server-Timing, and the safety net that turns unhandled exceptions into JSON 500s.
"""

from __future__ import annotations

from ._context import TraceContext, current_request_id, current_trace_context, outgoing_headers
from ._logging import JSONFormatter, RequestContextFilter, configure_logging
from .errors import ServerErrorMiddleware, json_server_error_handler
from .middleware import TracingMiddleware

__all__ = [
    "JSONFormatter",
    "RequestContextFilter",
    "ServerErrorMiddleware",
    "TraceContext",
    "TracingMiddleware",
    "configure_logging",
    "current_request_id",
    "current_trace_context",
    "json_server_error_handler",
    "outgoing_headers",
]
