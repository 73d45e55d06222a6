"""Request ids and trace headers: what to keep from the caller, what to make up.

Pure functions used by TracingMiddleware (the outermost layer) once per request: nothing a
caller sends reaches a log line or a response header unless it passed these checks.
"""

from __future__ import annotations

import re
from random import getrandbits
from typing import NamedTuple

from ..types import Scope

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "W3CParent",
    "XRayHeader",
    "clean_tracestate",
    "is_safe_request_id",
    "lambda_request_ids",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "parse_xray",
    "trace_id_from_xray",
]

MAX_REQUEST_ID_LENGTH = 128
"""Longer request ids are replaced: they bloat every log line and header."""

# Letters, digits and a few punctuation marks that API Gateway (base64 ids end in "="), UUIDs
# and common tracing tools use; nothing that could split a log line or a header.
_SAFE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:+/=-]{{1,{MAX_REQUEST_ID_LENGTH}}}")

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16
_MAX_TRACESTATE_LENGTH = 1024  # the W3C limit is 32 members; vendors may drop the rest
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")

_XRAY_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
_XRAY_PARENT = re.compile(r"[0-9a-f]{16}")
_XRAY_SAMPLED = frozenset({"0", "1", "?"})
_MAX_XRAY_LENGTH = 512  # ALB adds Self= and custom fields; anything longer is not a trace header


def is_safe_request_id(value: str) -> bool:
    """True when ``value`` may be echoed and logged as is: 1-128 characters from
    ``[A-Za-z0-9._:+/=-]`` (no spaces, no CR/LF, no unicode)."""
    return _SAFE_REQUEST_ID.fullmatch(value) is not None


def lambda_request_ids(scope: Scope) -> tuple[str | None, str | None]:
    """The API Gateway request id and Lambda's ``aws_request_id``, as Mangum exposes them in
    ``scope["aws.event"]`` and ``scope["aws.context"]``; None where absent (under uvicorn)."""
    event = scope.get("aws.event")
    gateway_id = None
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict):
            value = context.get("requestId")
            gateway_id = value if isinstance(value, str) else None
    lambda_id = getattr(scope.get("aws.context"), "aws_request_id", None)
    return gateway_id, lambda_id if isinstance(lambda_id, str) else None


class W3CParent(NamedTuple):
    """The parts of a valid version-00 ``traceparent`` header."""

    trace_id: str
    parent_id: str
    flags: str


def parse_traceparent(value: str | None) -> W3CParent | None:
    """A valid ``traceparent`` (version 00, lower-case hex, trace id and parent id not all
    zeros) split into its parts; None for anything else."""
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    trace_id, parent_id, flags = match.groups()
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_SPAN_ID:
        return None
    return W3CParent(trace_id, parent_id, flags)


def clean_tracestate(value: str | None) -> str | None:
    """``tracestate`` as received when it is printable ASCII of a sane length, else None."""
    if value is None or len(value) > _MAX_TRACESTATE_LENGTH:
        return None
    value = value.strip()
    if not value or _PRINTABLE_ASCII.fullmatch(value) is None:
        return None
    return value


class XRayHeader(NamedTuple):
    """The parts of an ``X-Amzn-Trace-Id`` value that passed validation."""

    root: str
    parent: str | None
    sampled: str | None


def parse_xray(value: str | None) -> XRayHeader | None:
    """``Root=1-xxxxxxxx-x{24};Parent=x{16};Sampled=0|1|?`` validated; a bad Parent or Sampled
    is dropped, a missing or bad Root rejects the whole value (None)."""
    if not value or len(value) > _MAX_XRAY_LENGTH:
        return None
    root = parent = sampled = None
    for part in value.split(";"):
        key, _, field = part.strip().partition("=")
        if key == "Root":
            root = field if _XRAY_ROOT.fullmatch(field) else None
        elif key == "Parent":
            parent = field if _XRAY_PARENT.fullmatch(field) else None
        elif key == "Sampled":
            sampled = field if field in _XRAY_SAMPLED else None
    if root is None:
        return None
    return XRayHeader(root, parent, sampled)


def trace_id_from_xray(root: str) -> str:
    """The W3C trace id of an X-Ray root (AWS's own mapping: epoch hex + 24 random hex)."""
    return root[2:10] + root[11:]


def new_trace_id() -> str:
    while True:  # an all-zero id is invalid; one in 2**128, but cheap to rule out
        value = f"{getrandbits(128):032x}"
        if value != _ZERO_TRACE_ID:
            return value


def new_span_id() -> str:
    while True:
        value = f"{getrandbits(64):016x}"
        if value != _ZERO_SPAN_ID:
            return value
