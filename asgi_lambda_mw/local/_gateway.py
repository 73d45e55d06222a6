"""What a gateway does around a Lambda function: an HTTP request becomes an event in one of the
four HTTP payload formats, and the function's answer becomes the HTTP response, with the
gateway's own rules (inferred 2.0 answers, multi-value headers, cookies, base64, 502 on junk).

Used by `asgi-lambda watch` (every request) and `asgi-lambda invoke --http` (the answer only).
Formats follow AWS's documentation of each payload (links in ``DOC_URLS``).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final, Literal, get_args
from urllib.parse import parse_qsl, unquote

__all__ = [
    "DOC_URLS",
    "EVENT_FORMATS",
    "PAYLOAD_LIMIT",
    "EventFormat",
    "GatewayRequest",
    "GatewayResponse",
    "MalformedAnswer",
    "build_event",
    "detect_format",
    "gateway_error",
    "read_answer",
]

EventFormat = Literal["http-api", "rest", "alb", "alb-multi-value", "function-url"]
EVENT_FORMATS: Final[tuple[EventFormat, ...]] = get_args(EventFormat)

DOC_URLS: Final[dict[EventFormat, str]] = {
    "http-api": "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html",
    "rest": "https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html",
    "alb": "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html",
    "alb-multi-value": "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html#multi-value-headers",
    "function-url": "https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html",
}

PAYLOAD_LIMIT: Final = 6 * 1024 * 1024
"""Lambda's limit for a synchronous invocation's request and response payloads (bytes)."""

_ACCOUNT_ID = "123456789012"
_API_ID = "localapi01"
_URL_ID = "localfunctionurl0000000000000000"
_REST_STAGE = "local"
_TARGET_GROUP_ARN = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/local-lambda/0123456789abcdef"
)
# Content types a gateway passes as text; anything else (or invalid UTF-8) is base64-encoded.
_TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "graphql", "yaml")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


@dataclass(frozen=True)
class GatewayRequest:
    """One HTTP request as the gateway received it.

    ``target`` is the request target as sent on the wire (percent-encoded path and query);
    ``headers`` keep their order, case and repetitions.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str
    scheme: str = "http"
    port: int = 80

    @property
    def raw_path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def raw_query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        found = None
        for key, value in self.headers:
            if key.lower() == name:
                found = value
        return found


@dataclass(frozen=True)
class GatewayResponse:
    """The HTTP response the gateway sends back: header order and repetitions kept."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    reason: str = ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class MalformedAnswer(ValueError):
    """The function's answer is not a response this gateway can send (it answers 502)."""


def build_event(
    request: GatewayRequest,
    event_format: EventFormat,
    *,
    request_id: str,
    trace_id: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The event the gateway would send to the function for ``request``.

    ``request_id`` is the gateway's own id (requestContext.requestId), ``trace_id`` the X-Ray
    header value it adds as ``X-Amzn-Trace-Id``; ``now`` (epoch seconds) defaults to the clock.
    """
    when = time.time() if now is None else now
    if event_format in ("http-api", "function-url"):
        return _v2_event(request, event_format, request_id, trace_id, when)
    if event_format == "rest":
        return _rest_event(request, request_id, trace_id, when)
    return _alb_event(request, trace_id, multi_value=event_format == "alb-multi-value")


def read_answer(payload: bytes, event_format: EventFormat) -> GatewayResponse:
    """The HTTP response for the function's raw answer ``payload`` (JSON bytes).

    Raises MalformedAnswer where the real gateway answers 502 instead.
    """
    try:
        answer = json.loads(payload) if payload.strip() else None
    except ValueError:
        raise MalformedAnswer("the function's answer is not JSON") from None
    if event_format in ("http-api", "function-url"):
        if not isinstance(answer, dict) or "statusCode" not in answer:
            # Format 2.0 infers a response from any other valid JSON: 200, the answer as body.
            return GatewayResponse(200, (("content-type", "application/json"),), payload)
        headers = _single_value_headers(answer.get("headers"))
        cookies = answer.get("cookies") or []
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise MalformedAnswer("cookies must be a list of strings")
        headers += [("set-cookie", cookie) for cookie in cookies]
    else:
        if not isinstance(answer, dict) or "statusCode" not in answer:
            raise MalformedAnswer("the answer has no statusCode")
        if event_format == "alb-multi-value":
            headers = _multi_value_headers(answer.get("multiValueHeaders"))
        elif event_format == "alb":
            headers = _single_value_headers(answer.get("headers"))
        else:
            headers = _merge_rest_headers(answer.get("headers"), answer.get("multiValueHeaders"))
    status = _status(answer.get("statusCode"))
    body = _body(answer.get("body"), answer.get("isBase64Encoded", False))
    reason = ""
    if event_format.startswith("alb") and isinstance(answer.get("statusDescription"), str):
        reason = answer["statusDescription"].partition(" ")[2]
    kept = tuple((name, value) for name, value in headers if name.lower() not in _HOP_BY_HOP)
    length = [value for name, value in headers if name.lower() == "content-length"]
    # A HEAD answer keeps the length the GET would have had; other lengths are recomputed.
    if length and not body:
        kept += (("content-length", length[-1]),)
    return GatewayResponse(status, kept, body, reason)


def gateway_error(status: int, event_format: EventFormat) -> GatewayResponse:
    """The gateway's own error response (502 bad answer or crash, 504 timeout, 413 too large)."""
    if event_format.startswith("alb"):
        phrase = f"{status} {HTTPStatus(status).phrase}"
        html = (
            f"<html>\r\n<head><title>{phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{phrase}</h1></center>\r\n</body>\r\n</html>\r\n"
        )
        return GatewayResponse(status, (("content-type", "text/html"),), html.encode())
    message = {
        413: "Request Entity Too Large",
        502: "Internal Server Error",
        504: "Endpoint request timed out",
    }.get(status, HTTPStatus(status).phrase)
    body = json.dumps({"message": message}).encode()
    return GatewayResponse(status, (("content-type", "application/json"),), body)


def detect_format(event: Mapping[str, Any]) -> EventFormat | None:
    """Which HTTP payload format ``event`` is in, or None for a non-HTTP event."""
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        return None
    if "elb" in context:
        return "alb-multi-value" if "multiValueHeaders" in event else "alb"
    if event.get("version") == "2.0":
        domain = str(context.get("domainName", ""))
        return "function-url" if ".lambda-url." in domain else "http-api"
    if "httpMethod" in event:
        return "rest"
    return None


def http_date(now: float) -> str:
    return formatdate(now, usegmt=True)


# --- events -----------------------------------------------------------------------------------


def _v2_event(
    request: GatewayRequest, event_format: EventFormat, request_id: str, trace_id: str, now: float
) -> dict[str, Any]:
    cookies: list[str] = []
    headers: dict[str, str] = {}
    for name, value in _forwarded_headers(request, trace_id, lower=True):
        if name == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    query: dict[str, str] = {}
    for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    function_url = event_format == "function-url"
    # HTTP APIs hand the function a decoded path; Function URLs keep it percent-encoded.
    path = request.raw_path if function_url else unquote(request.raw_path)
    domain = f"{_URL_ID}.lambda-url.us-east-1.on.aws" if function_url else _domain(request)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": "anonymous" if function_url else _ACCOUNT_ID,
        "apiId": _URL_ID if function_url else _API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": request.header("user-agent") or "",
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": _request_time(now),
        "timeEpoch": int(now * 1000),
    }
    body, is_base64 = _event_body(request)
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = is_base64
    return event


def _rest_event(
    request: GatewayRequest, request_id: str, trace_id: str, now: float
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in _forwarded_headers(request, trace_id, lower=False):
        # Same name in another case is the same header: keep the first spelling.
        spelling = next((key for key in multi_headers if key.lower() == name.lower()), name)
        multi_headers.setdefault(spelling, []).append(value)
        headers[spelling] = value
    multi_query: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
        multi_query.setdefault(key, []).append(value)
    path = request.raw_path
    proxy = path.lstrip("/")
    body, is_base64 = _event_body(request)
    domain = _domain(request)
    return {
        "resource": "/{proxy+}" if proxy else "/",
        "path": path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": unquote(proxy)} if proxy else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": _ACCOUNT_ID,
            "apiId": _API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "extendedRequestId": request_id.replace("-", "")[:16] + "=",
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": request.header("user-agent"),
                "userArn": None,
            },
            # The local URL has no stage in it, as through a custom domain name.
            "path": path,
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": _request_time(now),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "abc123",
            "resourcePath": "/{proxy+}" if proxy else "/",
            "stage": _REST_STAGE,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _alb_event(request: GatewayRequest, trace_id: str, *, multi_value: bool) -> dict[str, Any]:
    # ALB passes the query string as received: keys and values stay percent-encoded.
    pairs = [
        (key, value)
        for key, _, value in (part.partition("=") for part in request.raw_query.split("&"))
        if key or value
    ]
    headers = list(_forwarded_headers(request, trace_id, lower=True))
    body, is_base64 = _event_body(request)
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": _TARGET_GROUP_ARN}},
        "httpMethod": request.method,
        "path": request.raw_path,
    }
    if multi_value:
        multi_query: dict[str, list[str]] = {}
        for key, value in pairs:
            multi_query.setdefault(key, []).append(value)
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            multi_headers.setdefault(name, []).append(value)
        event["multiValueQueryStringParameters"] = multi_query
        event["multiValueHeaders"] = multi_headers
    else:
        # Without multi-value headers the load balancer keeps the last value of each.
        event["queryStringParameters"] = dict(pairs)
        event["headers"] = dict(headers)
    event["body"] = body or ""
    event["isBase64Encoded"] = is_base64
    return event


def _forwarded_headers(
    request: GatewayRequest, trace_id: str, *, lower: bool
) -> Iterable[tuple[str, str]]:
    """The client's headers plus those the gateway adds, as the function sees them."""
    forwarded_for = None
    for name, value in request.headers:
        key = name.lower()
        if key in ("x-forwarded-port", "x-forwarded-proto", "x-amzn-trace-id"):
            continue
        if key == "x-forwarded-for":
            forwarded_for = value
            continue
        yield (key if lower else name), value
    chain = f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip
    if lower:
        yield "x-amzn-trace-id", trace_id.split(";", 1)[0]
        yield "x-forwarded-for", chain
        yield "x-forwarded-port", str(request.port)
        yield "x-forwarded-proto", request.scheme
    else:
        yield "X-Amzn-Trace-Id", trace_id.split(";", 1)[0]
        yield "X-Forwarded-For", chain
        yield "X-Forwarded-Port", str(request.port)
        yield "X-Forwarded-Proto", request.scheme


def _event_body(request: GatewayRequest) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    content_type = (request.header("content-type") or "").lower()
    if any(kind in content_type for kind in _TEXT_TYPES):
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode("ascii"), True


def _domain(request: GatewayRequest) -> str:
    host = request.header("host") or "localhost"
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


def _request_time(now: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))


# --- answers ----------------------------------------------------------------------------------


def _status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedAnswer(f"statusCode {value!r} is not a number")
    try:
        status = int(value)
    except ValueError:
        raise MalformedAnswer(f"statusCode {value!r} is not a number") from None
    if not 100 <= status <= 599:
        raise MalformedAnswer(f"statusCode {status} is not an HTTP status")
    return status


def _body(value: object, is_base64: object) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise MalformedAnswer("body must be a string")
    if is_base64 is True:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedAnswer("isBase64Encoded is true but body is not base64") from None
    if is_base64 not in (False, None):
        raise MalformedAnswer("isBase64Encoded must be a boolean")
    return value.encode("utf-8")


def _header_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise MalformedAnswer(f"header value {value!r} is not a string")


def _single_value_headers(headers: object) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, dict):
        raise MalformedAnswer("headers must be an object")
    return [(str(name), _header_value(value)) for name, value in headers.items()]


def _multi_value_headers(headers: object) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, dict):
        raise MalformedAnswer("multiValueHeaders must be an object")
    result: list[tuple[str, str]] = []
    for name, values in headers.items():
        if not isinstance(values, list):
            raise MalformedAnswer(f"multiValueHeaders[{name!r}] must be a list")
        result += [(str(name), _header_value(value)) for value in values]
    return result


def _merge_rest_headers(headers: object, multi_headers: object) -> list[tuple[str, str]]:
    # Documented: both are merged; where a name is in both, only multiValueHeaders counts.
    multi = _multi_value_headers(multi_headers)
    taken = {name.lower() for name, _ in multi}
    single = [(n, v) for n, v in _single_value_headers(headers) if n.lower() not in taken]
    return single + multi
