"""Builders for real Lambda event payloads, shaped as AWS documents them, and a test context.

Each builder links the AWS page that documents its payload. The ``path`` argument is always the
path the app routes on; the builders add what AWS adds in front of it (a REST stage in
``requestContext.path``, an HTTP API stage in ``rawPath``, a custom-domain base path).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "LambdaContext",
    "alb_event",
    "function_url_event",
    "http_api_event",
    "rest_event",
    "scheduled_event",
    "warmup_event",
]

Pairs = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]
"""Query parameters or headers: a mapping (a list value repeats the key) or (name, value) pairs."""

Body = str | bytes | Mapping[str, Any] | list[Any] | None
"""Request body: text as is, bytes base64-encoded, a dict or list as JSON."""

ACCOUNT_ID = "123456789012"
API_ID = "a1b2c3d4e5"
EXECUTE_API_HOST = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
FUNCTION_URL_ID = "abcdefghijklmnopqrstuvwxyz012345"
FUNCTION_URL_HOST = f"{FUNCTION_URL_ID}.lambda-url.us-east-1.on.aws"
ALB_HOST = "my-alb-1234567890.us-east-1.elb.amazonaws.com"
TARGET_GROUP_ARN = (
    f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT_ID}:targetgroup/my-targets/6d0ecf831eec9f09"
)
DEFAULT_SOURCE_IP = "198.51.100.7"
USER_AGENT = "Mozilla/5.0 (test) lambda-events/1.0"


@dataclass
class LambdaContext:
    """A stand-in for the context object the Lambda runtime passes to a handler."""

    function_name: str = "asgi-lambda-mw-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = (
        f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:asgi-lambda-mw-test"
    )
    memory_limit_in_mb: int | str = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/asgi-lambda-mw-test"
    log_stream_name: str = "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef"
    remaining_time_in_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_time_in_millis


def rest_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Pairs | None = None,
    headers: Pairs | None = None,
    cookies: Sequence[str] = (),
    body: Body = None,
    source_ip: str = DEFAULT_SOURCE_IP,
    stage: str = "prod",
    custom_domain: str | None = None,
    base_path: str = "",
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload format 1.0).

    https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format

    Through the execute-api host (``custom_domain=None``) ``path`` lacks the stage and
    ``requestContext.path`` carries it ("/prod/items"). Through a custom domain neither has the
    stage, and both start with the base path mapping (``base_path="/v1"``) if there is one.
    """
    request_id = request_id or str(uuid.uuid4())
    host = custom_domain or EXECUTE_API_HOST
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    event_path = base + _quote_path(path)
    context_path = event_path if custom_domain else f"/{stage}{event_path}"
    header_pairs = _with_proxy_headers(
        [("Host", host), ("User-Agent", USER_AGENT), ("X-Amzn-Trace-Id", _trace_header())],
        _pairs(headers),
        source_ip,
        proto_port=("https", "443"),
        forwarded_for_name="X-Forwarded-For",
    )
    if cookies:
        header_pairs.append(("Cookie", "; ".join(cookies)))
    body_text, is_base64, content_type = _encode_body(body)
    if content_type and not _has_header(header_pairs, "content-type"):
        header_pairs.append(("Content-Type", content_type))
    query_pairs = _pairs(query)
    proxy = path.lstrip("/")
    return {
        "resource": "/{proxy+}" if proxy else "/",
        "path": event_path,
        "httpMethod": method,
        "headers": _last_values(header_pairs),
        "multiValueHeaders": _multi_values(header_pairs),
        "queryStringParameters": _last_values(query_pairs) or None,
        "multiValueQueryStringParameters": _multi_values(query_pairs) or None,
        "pathParameters": {"proxy": proxy} if proxy else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "extendedRequestId": "JKJaXmPLvHcESHA=",
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": source_ip,
                "user": None,
                "userAgent": USER_AGENT,
                "userArn": None,
            },
            "path": context_path,
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "requestTimeEpoch": int(time.time() * 1000),
            "resourceId": "abc123",
            "resourcePath": "/{proxy+}" if proxy else "/",
            "stage": stage,
        },
        "body": body_text,
        "isBase64Encoded": is_base64,
    }


def http_api_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Pairs | None = None,
    headers: Pairs | None = None,
    cookies: Sequence[str] = (),
    body: Body = None,
    source_ip: str = DEFAULT_SOURCE_IP,
    stage: str = "$default",
    domain_name: str = EXECUTE_API_HOST,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0.

    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html

    A named stage reached through the execute-api host stays at the front of ``rawPath`` and
    ``requestContext.http.path``; the ``$default`` stage does not appear.
    """
    prefix = f"/{stage}" if stage != "$default" and domain_name == EXECUTE_API_HOST else ""
    return _payload_v2(
        method,
        prefix + _quote_path(path),
        query=query,
        headers=headers,
        cookies=cookies,
        body=body,
        source_ip=source_ip,
        stage=stage,
        domain_name=domain_name,
        api_id=API_ID,
        request_id=request_id or "JKJaXmPLvHcESHA=" + uuid.uuid4().hex[:8],
        authorizer=None,
    )


def function_url_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Pairs | None = None,
    headers: Pairs | None = None,
    cookies: Sequence[str] = (),
    body: Body = None,
    source_ip: str = DEFAULT_SOURCE_IP,
    request_id: str | None = None,
) -> dict[str, Any]:
    """A Lambda Function URL event: the HTTP API 2.0 shape on a ``lambda-url`` domain.

    https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
    """
    return _payload_v2(
        method,
        _quote_path(path),
        query=query,
        headers=headers,
        cookies=cookies,
        body=body,
        source_ip=source_ip,
        stage="$default",
        domain_name=FUNCTION_URL_HOST,
        api_id=FUNCTION_URL_ID,
        request_id=request_id or str(uuid.uuid4()),
        authorizer={
            "iam": {
                "accessKey": None,
                "accountId": None,
                "callerId": None,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": None,
                "userId": None,
            }
        },
    )


def alb_event(
    method: str = "GET",
    path: str = "/",
    *,
    query: Pairs | None = None,
    headers: Pairs | None = None,
    cookies: Sequence[str] = (),
    body: Body = None,
    source_ip: str = DEFAULT_SOURCE_IP,
    forwarded_for: Sequence[str] = (),
    multi_value: bool = False,
) -> dict[str, Any]:
    """An Application Load Balancer target-group event, with or without multi-value headers.

    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html

    ALB passes query strings as the client encoded them and appends the address of its peer
    (``source_ip``) to ``X-Forwarded-For``, after any ``forwarded_for`` entries sent by proxies
    in front of it. Without multi-value headers, a repeated header or key keeps its last value.
    """
    header_pairs = _with_proxy_headers(
        [
            ("host", ALB_HOST),
            ("user-agent", USER_AGENT),
            ("x-amzn-trace-id", _trace_header()),
        ],
        [(name.lower(), value) for name, value in _pairs(headers)],
        ", ".join([*forwarded_for, source_ip]),
        proto_port=("http", "80"),
        forwarded_for_name="x-forwarded-for",
    )
    if cookies:
        header_pairs.append(("cookie", "; ".join(cookies)))
    body_text, is_base64, content_type = _encode_body(body)
    if content_type and not _has_header(header_pairs, "content-type"):
        header_pairs.append(("content-type", content_type))
    # The load balancer does not decode the query: the values are as the client sent them.
    query_pairs = [(quote(k, safe=""), quote(v, safe="")) for k, v in _pairs(query)]
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": TARGET_GROUP_ARN}},
        "httpMethod": method,
        "path": _quote_path(path),
        "body": body_text or "",
        "isBase64Encoded": is_base64,
    }
    if multi_value:
        event["multiValueQueryStringParameters"] = _multi_values(query_pairs)
        event["multiValueHeaders"] = _multi_values(header_pairs)
    else:
        event["queryStringParameters"] = _last_values(query_pairs)
        event["headers"] = _last_values(header_pairs)
    return event


def warmup_event() -> dict[str, Any]:
    """The ping serverless-plugin-warmup sends by default.

    https://github.com/juanjoDiaz/serverless-plugin-warmup#configuration (``payload``)
    """
    return {"source": "serverless-plugin-warmup"}


def scheduled_event() -> dict[str, Any]:
    """An EventBridge (CloudWatch Events) scheduled event.

    https://docs.aws.amazon.com/lambda/latest/dg/with-eventbridge-scheduler.html
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
    """
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/my-schedule"],
        "detail": {},
    }


def _payload_v2(
    method: str,
    raw_path: str,
    *,
    query: Pairs | None,
    headers: Pairs | None,
    cookies: Sequence[str],
    body: Body,
    source_ip: str,
    stage: str,
    domain_name: str,
    api_id: str,
    request_id: str,
    authorizer: dict[str, Any] | None,
) -> dict[str, Any]:
    header_pairs = _with_proxy_headers(
        [
            ("host", domain_name),
            ("user-agent", USER_AGENT),
            ("x-amzn-trace-id", _trace_header()),
        ],
        [(name.lower(), value) for name, value in _pairs(headers)],
        source_ip,
        proto_port=("https", "443"),
        forwarded_for_name="x-forwarded-for",
    )
    body_text, is_base64, content_type = _encode_body(body)
    if content_type and not _has_header(header_pairs, "content-type"):
        header_pairs.append(("content-type", content_type))
    query_pairs = _pairs(query)
    # Payload 2.0 joins repeated headers and query values with commas; cookies get their own list.
    joined_headers: dict[str, str] = {}
    for name, value in header_pairs:
        joined_headers[name] = (
            f"{joined_headers[name]},{value}" if name in joined_headers else value
        )
    joined_query: dict[str, str] = {}
    for name, value in query_pairs:
        joined_query[name] = f"{joined_query[name]},{value}" if name in joined_query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": urlencode(query_pairs),
        "headers": joined_headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": USER_AGENT,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = list(cookies)
    if joined_query:
        event["queryStringParameters"] = joined_query
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if body_text is not None:
        event["body"] = body_text
    return event


def _pairs(values: Pairs | None) -> list[tuple[str, str]]:
    if values is None:
        return []
    if isinstance(values, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in values.items():
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                pairs.extend((name, item) for item in value)
        return pairs
    return [(name, value) for name, value in values]


def _with_proxy_headers(
    defaults: list[tuple[str, str]],
    given: list[tuple[str, str]],
    source_ip: str,
    *,
    proto_port: tuple[str, str],
    forwarded_for_name: str,
) -> list[tuple[str, str]]:
    """The caller's headers over AWS's defaults, with the caller's X-Forwarded-For extended."""
    given_names = {name.lower() for name, _ in given}
    pairs = [(name, value) for name, value in defaults if name.lower() not in given_names]
    forwarded = [value for name, value in given if name.lower() == "x-forwarded-for"]
    pairs.extend((name, value) for name, value in given if name.lower() != "x-forwarded-for")
    pairs.append((forwarded_for_name, ", ".join([*forwarded, source_ip])))
    proto_name, port_name = (
        ("X-Forwarded-Proto", "X-Forwarded-Port")
        if forwarded_for_name[0].isupper()
        else ("x-forwarded-proto", "x-forwarded-port")
    )
    if proto_name.lower() not in given_names:
        pairs.append((proto_name, proto_port[0]))
    if port_name.lower() not in given_names:
        pairs.append((port_name, proto_port[1]))
    return pairs


def _has_header(pairs: list[tuple[str, str]], name: str) -> bool:
    return any(key.lower() == name for key, _ in pairs)


def _last_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return dict(pairs)


def _multi_values(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return multi


def _encode_body(body: Body) -> tuple[str | None, bool, str | None]:
    """(body as the event carries it, isBase64Encoded, a content type to add if none is given)."""
    if body is None:
        return None, False, None
    if isinstance(body, bytes):
        return base64.b64encode(body).decode("ascii"), True, "application/octet-stream"
    if isinstance(body, str):
        return body, False, "text/plain; charset=utf-8"
    return json.dumps(body), False, "application/json"


def _quote_path(path: str) -> str:
    return quote(path if path.startswith("/") else "/" + path, safe="/:@!$&'()*+,;=-._~")


def _trace_header() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
