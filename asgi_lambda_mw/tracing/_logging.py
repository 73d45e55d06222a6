"""JSON log lines for CloudWatch and terminals, carrying the request id and trace ids.

Used by TracingMiddleware for its access lines and by apps for their own records: the
formatter and the filter read the request's trace context from the context variable.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TextIO

from .._env import env_str
from ..exceptions import ConfigurationError
from ._context import _current

__all__ = [
    "JSONFormatter",
    "RequestContextFilter",
    "configure_logging",
    "ensure_json_output",
    "printable",
    "resolve_log_level",
    "write_without_record",
]

LIBRARY_LOGGER = "asgi_lambda_mw"

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

_LEVEL_HINT = "use DEBUG, INFO, WARNING, ERROR or CRITICAL"

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
_STANDARD_ATTRIBUTES = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime", "taskName"}
)
_JSON_SCALARS = (str, int, float, bool, type(None))


# One encoder for every line: json.dumps builds a new JSONEncoder per call when given options,
# which was half the cost of formatting a line.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_FALLBACK_ENCODER = json.JSONEncoder(separators=(",", ":"))
_encode_str = json.encoder.encode_basestring_ascii  # what both encoders use for a str


@lru_cache(maxsize=4)  # lines come in bursts within the same second
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _utc_timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return f"{_utc_second(seconds)}.{millis:03d}Z"


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a path cannot forge a plain-text log line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


class JSONFormatter(logging.Formatter):
    """Formats a record as one line of JSON, with AWS Lambda Powertools' field names.

    Fields: ``timestamp`` (ISO 8601, UTC, milliseconds), ``level``, ``message``, ``logger``,
    ``location`` (``function:line``), then ``request_id``, ``xray_trace_id`` and ``trace_id``
    while a request is being handled, then ``static_fields`` (default none, e.g.
    ``{"service": "orders"}``), then whatever the record carries from ``extra=``, and
    ``exception_name`` / ``exception`` (the traceback) / ``stack_trace`` when present.
    Values JSON cannot encode are written as their ``str()``.
    """

    def __init__(self, *, static_fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._static_fields = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        fields = self._leading_fields(
            record.created,
            record.levelname,
            record.getMessage(),
            record.name,
            f"{record.funcName}:{record.lineno}",
        )
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES:
                fields[key] = value
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            fields["exception_name"] = exc_info[0].__name__
            if not record.exc_text:
                record.exc_text = self.formatException(exc_info)
        if record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack_trace"] = self.formatStack(record.stack_info)
        return _encode(fields)

    def format_fields(
        self,
        created: float,
        level: int,
        message: str,
        logger: str,
        location: str,
        extra: Mapping[str, Any],
    ) -> str:
        """The line ``format`` makes of a record carrying ``extra`` (and no exception),
        without a LogRecord. ``extra`` starts with the request's ``request_id``,
        ``xray_trace_id`` and ``trace_id``, as access lines do: where ``format`` writes them
        after the leading five fields, so only those five need writing here."""
        if self._static_fields:  # they go between the request's ids and the rest
            fields = self._leading_fields(
                created, logging.getLevelName(level), message, logger, location
            )
            fields.update(extra)
            return _encode(fields)
        # By hand, around the C encoder's output for the rest: no merged dict to build.
        return (
            f'{{"timestamp":"{_utc_timestamp(created)}",'
            f'"level":{_encode_str(logging.getLevelName(level))},'
            f'"message":{_encode_str(message)},"logger":{_encode_str(logger)},'
            f'"location":{_encode_str(location)},{_encode(dict(extra))[1:]}'
        )

    def _leading_fields(
        self, created: float, level: str, message: str, logger: str, location: str
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "timestamp": _utc_timestamp(created),
            "level": level,
            "message": message,
            "logger": logger,
            "location": location,
        }
        context = _current.get()
        if context is not None:  # a record's own (extra=, filter) values take precedence
            fields["request_id"] = context.request_id
            fields["xray_trace_id"] = context.xray_trace_id
            fields["trace_id"] = context.trace_id
        fields.update(self._static_fields)
        return fields


def _encode(fields: dict[str, Any]) -> str:
    try:
        return _ENCODER.encode(fields)
    except (TypeError, ValueError):  # e.g. a dict with tuple keys, or a reference cycle
        safe = {
            key: value if isinstance(value, _JSON_SCALARS) else repr(value)
            for key, value in fields.items()
        }
        return _FALLBACK_ENCODER.encode(safe)


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``xray_trace_id`` and ``trace_id`` attributes to every record
    (None outside a request), so any formatter can use ``%(request_id)s``. Attach it to a
    handler: filters on a logger do not see records propagated from child loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):  # access lines carry their own
            context = _current.get()
            if context is None:
                record.request_id = record.xray_trace_id = record.trace_id = None
            else:
                record.request_id = context.request_id
                record.xray_trace_id = context.xray_trace_id
                record.trace_id = context.trace_id
        return True


_CONTEXT_FILTER = RequestContextFilter()


class _JSONHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON lines on a stream; with no stream, on whatever ``sys.stdout`` is at the time
    (Lambda sends stdout to CloudWatch; uvicorn writes its access lines there too)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(sys.stdout if stream is None else stream)
        self._follows_stdout = stream is None
        self.setFormatter(JSONFormatter())
        self.addFilter(_CONTEXT_FILTER)

    def emit(self, record: logging.LogRecord) -> None:
        if self._follows_stdout:
            self.stream = sys.stdout
        super().emit(record)

    def write_line(self, line: str) -> None:
        """Write one formatted line as ``emit`` does (under the handler's lock)."""
        with self.lock:  # type: ignore[union-attr]  # Handler.__init__ always creates it
            if self._follows_stdout:
                self.stream = sys.stdout
            self.stream.write(line + self.terminator)
            self.stream.flush()  # not self.flush(), which would take the lock a second time


def write_without_record(
    logger: logging.Logger, level: int, message: str, location: str, fields: Mapping[str, Any]
) -> bool:
    """Write the line ``logger.handle`` would write for a record at ``level`` carrying
    ``fields`` (which start with the request's ``request_id``, ``xray_trace_id`` and
    ``trace_id``), but without making a LogRecord: that and logging's dispatch were half the
    cost of an access line.

    Done only when nothing on the way could change the outcome: the logger's one handler is a
    JSON handler of this module with a plain JSONFormatter and no filter but the context one
    (a no-op for records carrying ``request_id``), and the logger has no filter, is enabled and
    does not propagate. The caller checks ``isEnabledFor(level)``. Returns False, having
    written nothing, when logging itself must handle the line.
    """
    handlers = logger.handlers
    if len(handlers) != 1 or logger.filters or logger.propagate or logger.disabled:
        return False
    handler = handlers[0]
    filters = handler.filters
    if (
        type(handler) is not _JSONHandler
        or level < handler.level
        or (filters and (len(filters) != 1 or filters[0] is not _CONTEXT_FILTER))
        or type(handler.formatter) is not JSONFormatter
        or next(iter(fields), None) != "request_id"
    ):
        return False
    line = handler.formatter.format_fields(
        time.time(), level, message, logger.name, location, fields
    )
    handler.write_line(line)
    return True


_shared_handler: _JSONHandler | None = None


def resolve_log_level(level: str | int | None) -> tuple[int, bool]:
    """The numeric level from the argument, else ``LOG_LEVEL``, else INFO; and whether it was
    asked for (argument or environment) rather than defaulted.

    Raises ConfigurationError naming ``log_level`` or ``LOG_LEVEL`` for an unknown level.
    """
    if level is None:
        text = env_str("LOG_LEVEL")
        if text is None:
            return logging.INFO, False
        number = _LEVELS.get(text.upper())
        if number is None:
            raise ConfigurationError(f"LOG_LEVEL={text!r} is not a log level: {_LEVEL_HINT}")
        return number, True
    if isinstance(level, bool):
        raise ConfigurationError(f"log_level must be a level name or number, not {level!r}")
    if isinstance(level, int):
        if level < 0:
            raise ConfigurationError(f"log_level must not be negative, not {level}")
        return level, True
    number = _LEVELS.get(level.strip().upper())
    if number is None:
        raise ConfigurationError(f"log_level={level!r} is not a log level: {_LEVEL_HINT}")
    return number, True


def _has_own_handlers(logger: logging.Logger) -> bool:
    """Whether logging was set up for this logger or a library ancestor (root not counted)."""
    current: logging.Logger | None = logger
    while current is not None and current is not logging.root:
        if current.handlers:
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def ensure_json_output(*loggers: logging.Logger) -> None:
    """Make these loggers' lines come out as JSON on stdout without any logging set-up.

    A logger that (or whose ancestors below root) already has a handler is left alone: the
    user configured it. Otherwise it gets the shared JSON handler and stops propagating, so
    Lambda's root handler (plain text) or the user's root handlers do not print it twice.
    """
    global _shared_handler
    for logger in loggers:
        if _has_own_handlers(logger):
            continue
        if _shared_handler is None:
            _shared_handler = _JSONHandler()
        logger.addHandler(_shared_handler)
        logger.propagate = False


def configure_logging(
    level: str | int | None = None, *, root: bool = False, stream: TextIO | None = None
) -> None:
    """Send the library's log lines (logger ``asgi_lambda_mw`` and its children) to a JSON
    handler and set their level; idempotent, so calling it twice adds no second handler.

    ``level`` (default None: ``LOG_LEVEL``, else INFO). ``stream`` (default None: stdout at
    the time of each line). ``root`` (default False): also make the app's own records JSON,
    with the request id: existing root handlers (such as Lambda's) get the JSON formatter, or
    root gets the JSON handler when it has none; root's level is set too.
    Raises ConfigurationError for an unknown level.
    """
    number, _ = resolve_log_level(level)
    library = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(handler, _JSONHandler) for handler in library.handlers):
        library.addHandler(_JSONHandler(stream))
    library.propagate = False
    library.setLevel(number)
    if root:
        root_logger = logging.getLogger()
        if not root_logger.handlers:
            root_logger.addHandler(_JSONHandler(stream))
        for handler in root_logger.handlers:
            if not isinstance(handler.formatter, JSONFormatter):
                handler.setFormatter(JSONFormatter())
            handler.addFilter(_CONTEXT_FILTER)  # a no-op when already there
        root_logger.setLevel(number)
