"""The request id and trace context of the request being handled, in a context variable.

TracingMiddleware sets it for the duration of each request; the app, its log records and its
outgoing HTTP calls read it through the helpers here (None / empty outside a request).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = [
    "TraceContext",
    "current_request_id",
    "current_trace_context",
    "outgoing_headers",
]


@dataclass(frozen=True, slots=True)
class TraceContext:
    """Who this request is and where it sits in a distributed trace.

    ``span_id`` is this request's own W3C span id, made up per request: outgoing calls name it
    as their parent. ``parent_id`` is the caller's span id from a valid incoming
    ``traceparent`` (None when the trace starts here). ``xray_*`` come from
    ``X-Amzn-Trace-Id`` or Lambda's ``_X_AMZN_TRACE_ID`` (None when neither is valid).
    """

    request_id: str
    trace_id: str
    span_id: str
    trace_flags: str = "01"
    parent_id: str | None = None
    tracestate: str | None = None
    xray_trace_id: str | None = None
    xray_parent_id: str | None = None
    xray_sampled: str | None = None
    request_id_header: str = field(default="X-Request-ID", compare=False)

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` value for outgoing calls: this trace, this request's span."""
        return f"00-{self.trace_id}-{self.span_id}-{self.trace_flags}"

    @property
    def xray_header(self) -> str | None:
        """The ``X-Amzn-Trace-Id`` value to pass on, or None when there is no X-Ray trace."""
        if self.xray_trace_id is None:
            return None
        value = f"Root={self.xray_trace_id}"
        if self.xray_parent_id is not None:
            value += f";Parent={self.xray_parent_id}"
        if self.xray_sampled is not None:
            value += f";Sampled={self.xray_sampled}"
        return value


_current: ContextVar[TraceContext | None] = ContextVar("asgi_lambda_mw_trace", default=None)


def current_trace_context() -> TraceContext | None:
    """The trace context of the request being handled, or None outside a request."""
    return _current.get()


def current_request_id() -> str | None:
    """The id of the request being handled (as echoed in ``X-Request-ID``), or None."""
    context = _current.get()
    return None if context is None else context.request_id


def outgoing_headers() -> dict[str, str]:
    """Headers to put on an outgoing HTTP call so the next service joins this trace:
    ``traceparent`` (this request's span as parent), ``tracestate`` when one came in,
    ``X-Amzn-Trace-Id`` when there is an X-Ray trace, and the request id. Empty outside a
    request."""
    context = _current.get()
    if context is None:
        return {}
    headers = {"traceparent": context.traceparent}
    if context.tracestate is not None:
        headers["tracestate"] = context.tracestate
    xray = context.xray_header
    if xray is not None:
        headers["X-Amzn-Trace-Id"] = xray
    headers[context.request_id_header] = context.request_id
    return headers
