"""TracingMiddleware, the outermost layer: request id, trace context, Server-Timing, one JSON
access-log line per request, and the safety net that turns an unhandled exception into a
JSON 500 when no ServerErrorMiddleware sits inside it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from random import getrandbits

from .._scope import COLD_START_KEY, SERVER_TIMING_KEY, route_path
from ..client import ClientIPResolver
from ..exceptions import ConfigurationError
from ..types import ASGIApp, Message, Receive, Scope, Send
from ._context import TraceContext, _current
from ._ids import (
    MAX_REQUEST_ID_LENGTH,
    clean_tracestate,
    is_safe_request_id,
    lambda_request_ids,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    parse_xray,
    trace_id_from_xray,
)
from ._logging import (
    LIBRARY_LOGGER,
    ensure_json_output,
    printable,
    resolve_log_level,
    write_without_record,
)
from .errors import SafetyNet

__all__ = ["TracingMiddleware"]

ACCESS_LOGGER = "asgi_lambda_mw.access"
_ERROR_LOGGER = "asgi_lambda_mw.errors"
_MAX_USER_AGENT_LENGTH = 512
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


# The version (4) and variant (RFC 4122) bits of a UUID 4, set on 128 random bits.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def _new_request_id() -> str:
    """``str(uuid.uuid4())`` at a third of the cost: 122 bits from the ``random`` module (as
    trace ids are; reseeded in forked workers), not ``os.urandom`` (a system call per request),
    and no UUID object, whose constructor validates its arguments. A request id must be
    unique, not secret."""
    value = getrandbits(128) & _UUID4_CLEAR | _UUID4_SET
    hex_ = f"{value:032x}"
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


class TracingMiddleware:
    """Gives every HTTP request an id and a trace context, and logs it in one JSON line.

    Options (all keyword-only):

    - ``request_id_header`` (default ``"X-Request-ID"``): read from the request when its value
      is safe (1-128 characters of ``[A-Za-z0-9._:+/=-]``), else the API Gateway request id,
      else Lambda's ``aws_request_id``, else ``id_factory()``; always echoed on the response.
    - ``id_factory`` (default: a random UUID 4 string): makes new request ids.
    - ``clock`` (default ``time.perf_counter``): seconds, for ``duration_ms`` and Server-Timing.
    - ``log_level`` (default None: ``LOG_LEVEL``, else INFO): level of the ``asgi_lambda_mw``
      loggers. With neither set, a level already configured on that logger is kept.
    - ``exclude_paths`` (default none): exact paths, such as ``"/health"``, that get no
      access-log line (they still get the request id and Server-Timing headers).
    - ``logger`` (default None: ``asgi_lambda_mw.access``): where access lines go.
    - ``install_log_handler`` (default True): when the access and error loggers have no
      handler of their own (nor ``asgi_lambda_mw``), give them a JSON handler on stdout and
      stop their propagation, so lines come out as JSON on Lambda and under uvicorn with no
      logging set-up, and not a second time through Lambda's plain-text root handler.
    - ``catch_exceptions`` (default True): run the ServerErrorMiddleware safety net around the
      app (a JSON 500 for an exception before the response started; logged once, never
      re-raised). False lets exceptions through to the server.
    - ``hold_responses`` (default None: under Mangum only): see ServerErrorMiddleware.
    - ``server_timing`` (default True): add ``Server-Timing: total;dur=X.X`` plus what inner
      layers recorded (``ratelimit``). ``total`` is the time until the response *started*
      (under Mangum, where responses are held until complete, until it was complete).
    - ``client_ip_resolver`` (default ``ClientIPResolver()``, which trusts no proxy): finds
      ``client_ip`` for the log line.

    Raises ConfigurationError naming the option (or ``LOG_LEVEL``) for a bad value.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id_header: str = "X-Request-ID",
        id_factory: Callable[[], str] = _new_request_id,
        clock: Callable[[], float] = time.perf_counter,
        log_level: str | int | None = None,
        exclude_paths: Iterable[str] = (),
        logger: logging.Logger | None = None,
        install_log_handler: bool = True,
        catch_exceptions: bool = True,
        hold_responses: bool | None = None,
        server_timing: bool = True,
        client_ip_resolver: Callable[[Scope], str | None] | None = None,
    ) -> None:
        if not isinstance(request_id_header, str) or not _HEADER_NAME.fullmatch(request_id_header):
            raise ConfigurationError(
                f"request_id_header must be an HTTP header name, not {request_id_header!r}"
            )
        if isinstance(exclude_paths, str):
            raise ConfigurationError(
                f"exclude_paths must be a list of paths, not the string {exclude_paths!r}"
            )
        level, asked_for = resolve_log_level(log_level)
        library = logging.getLogger(LIBRARY_LOGGER)
        if asked_for or library.level == logging.NOTSET:
            library.setLevel(level)

        self.app = app
        self._header_name = request_id_header
        self._header_key = request_id_header.lower().encode("latin-1")
        self._id_factory = id_factory
        self._clock = clock
        self._exclude_paths = frozenset(exclude_paths)
        self._logger = logger if logger is not None else logging.getLogger(ACCESS_LOGGER)
        if install_log_handler:
            ensure_json_output(
                *([] if logger is not None else [self._logger]), logging.getLogger(_ERROR_LOGGER)
            )
        self._net = (
            SafetyNet(logger=None, hold_responses=hold_responses) if catch_exceptions else None
        )
        self._server_timing = server_timing
        self._client_ip = (
            client_ip_resolver if client_ip_resolver is not None else ClientIPResolver()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = self._clock()
        # Below root_path (a REST stage), as the app's routes are; taken before the app runs.
        logged = not self._exclude_paths or route_path(scope) not in self._exclude_paths
        context, user_agent = self._trace_context(scope)
        request_id = context.request_id
        token = _current.set(context)
        timings: dict[str, float] = {}
        scope[SERVER_TIMING_KEY] = timings
        status = 0

        def add_headers(start: Message) -> None:
            nonlocal status
            status = start["status"]
            # A copy, as MutableHeaders(scope=start) makes: the app's list is not changed.
            headers = start["headers"] = list(start.get("headers", ()))
            _set_header(headers, self._header_key, request_id.encode("latin-1"))
            if self._server_timing:
                total = (self._clock() - started_at) * 1000.0
                headers.append((b"server-timing", _server_timing(total, timings).encode("latin-1")))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_headers(message)
            await send(message)

        try:
            if self._net is not None:  # its send wrapper calls add_headers: no second wrapper
                await self._net.run(self.app, scope, receive, send, add_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        except BaseException:
            if status == 0:
                status = 500  # what the server will answer
            raise
        finally:
            if logged:
                duration_ms = (self._clock() - started_at) * 1000.0
                self._log_access(scope, context, status, duration_ms, user_agent)
            _current.reset(token)

    def _trace_context(self, scope: Scope) -> tuple[TraceContext, bytes | None]:
        raw_id = xray_header = traceparent = user_agent = None
        traceparents = 0
        tracestates: list[bytes] = []
        for name, value in scope.get("headers") or ():
            if name == self._header_key:
                raw_id = value
            elif name == b"traceparent":
                traceparent = value
                traceparents += 1
            elif name == b"tracestate":
                tracestates.append(value)
            elif name == b"x-amzn-trace-id":
                xray_header = value
            elif name == b"user-agent":
                user_agent = value

        request_id = self._request_id(raw_id, scope)
        # Lambda sets _X_AMZN_TRACE_ID per invocation: the function's own segment, so it wins.
        xray = parse_xray(os.environ.get("_X_AMZN_TRACE_ID")) or (
            parse_xray(xray_header.decode("latin-1")) if xray_header is not None else None
        )
        parent = (
            parse_traceparent(traceparent.decode("latin-1"))
            if traceparent is not None and traceparents == 1  # two are invalid (W3C)
            else None
        )
        tracestate = None
        if parent is not None:
            trace_id, flags = parent.trace_id, parent.flags
            if tracestates:
                tracestate = clean_tracestate(b",".join(tracestates).decode("latin-1"))
        elif xray is not None:
            trace_id = trace_id_from_xray(xray.root)
            flags = "00" if xray.sampled == "0" else "01"
        else:
            trace_id, flags = new_trace_id(), "01"
        context = TraceContext(
            request_id=request_id,
            trace_id=trace_id,
            span_id=new_span_id(),
            trace_flags=flags,
            parent_id=None if parent is None else parent.parent_id,
            tracestate=tracestate,
            xray_trace_id=None if xray is None else xray.root,
            xray_parent_id=None if xray is None else xray.parent,
            xray_sampled=None if xray is None else xray.sampled,
            request_id_header=self._header_name,
        )
        return context, user_agent

    def _request_id(self, raw: bytes | None, scope: Scope) -> str:
        if raw is not None and len(raw) <= MAX_REQUEST_ID_LENGTH:
            text = raw.decode("latin-1")
            if is_safe_request_id(text):
                return text
        gateway_id, lambda_id = lambda_request_ids(scope)
        if gateway_id is not None and is_safe_request_id(gateway_id):
            return gateway_id
        if lambda_id is not None and is_safe_request_id(lambda_id):
            return lambda_id
        return self._id_factory()

    def _log_access(
        self,
        scope: Scope,
        context: TraceContext,
        status: int,
        duration_ms: float,
        user_agent: bytes | None,
    ) -> None:
        level = logging.ERROR if status >= 500 else logging.INFO
        if not self._logger.isEnabledFor(level):
            return
        try:
            method, path = scope.get("method"), scope.get("path")
            aws_context = scope.get("aws.context")
            fields = {  # the request's ids first, as write_without_record wants them
                "request_id": context.request_id,
                "xray_trace_id": context.xray_trace_id,
                "trace_id": context.trace_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 3),
                "client_ip": self._client_ip(scope),
                "user_agent": None
                if user_agent is None
                else user_agent[:_MAX_USER_AGENT_LENGTH].decode("latin-1"),
                "cold_start": bool(scope.get(COLD_START_KEY, False)),
                "function_name": getattr(aws_context, "function_name", None),
                "function_request_id": getattr(aws_context, "aws_request_id", None),
            }
            args = (method, printable(str(path)), status)
            logger = self._logger
            if write_without_record(
                logger, level, _ACCESS_MESSAGE % args, _ACCESS_LOCATION, fields
            ):
                return
            # Made here rather than by Logger.log(extra=fields), which walks the stack to find
            # this method and checks each field for a clash with a LogRecord attribute: a fifth
            # of the cost of the line. Logger.handle still applies the logger's filters.
            record = logger.makeRecord(
                logger.name,
                level,
                _ACCESS_CODE.co_filename,
                _ACCESS_CODE.co_firstlineno,
                _ACCESS_MESSAGE,
                args,
                None,
                _ACCESS_CODE.co_name,
            )
            record.__dict__.update(fields)
            logger.handle(record)
        except Exception:  # a log line is never worth failing a request over
            logging.getLogger(_ERROR_LOGGER).exception("Could not write the access-log line")


# Where access lines say they come from (``location``), without looking it up per line.
_ACCESS_CODE = TracingMiddleware._log_access.__code__
_ACCESS_LOCATION = f"{_ACCESS_CODE.co_name}:{_ACCESS_CODE.co_firstlineno}"
_ACCESS_MESSAGE = "%s %s %d"


def _set_header(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """Set ``name`` to ``value`` as MutableHeaders does: where the first ``name`` header was,
    others of that name removed; else appended."""
    found = [index for index, (key, _) in enumerate(headers) if key == name]
    if not found:
        headers.append((name, value))
        return
    headers[found[0]] = (name, value)
    for index in reversed(found[1:]):
        del headers[index]


def _server_timing(total_ms: float, timings: dict[str, float]) -> str:
    value = f"total;dur={total_ms:.1f}"
    for name, duration_ms in timings.items():
        value += f", {name};dur={duration_ms:.1f}"
    return value
