"""client_ip on real Lambda payloads run through Mangum, and on plain ASGI scopes.

Events are shaped as AWS documents them:
REST (payload 1.0): https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
HTTP API (2.0): https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
Function URL: https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
ALB: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest
from mangum import Mangum
from starlette.responses import PlainTextResponse

from asgi_lambda_mw.client import ClientIPResolver, client_ip, rate_limit_key_for_ip
from asgi_lambda_mw.exceptions import ConfigurationError
from asgi_lambda_mw.types import ASGIApp, Receive, Scope, Send

SPOOFING_HEADERS = {
    "X-Forwarded-For": "6.6.6.6",
    "X-Real-IP": "6.6.6.7",
    "Forwarded": "for=6.6.6.8",
    "CloudFront-Viewer-Address": "6.6.6.9:443",
    "True-Client-IP": "6.6.6.10",
}


class _Context:
    function_name = "test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    memory_limit_in_mb = 128
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/test"
    log_stream_name = "2024/01/01/[$LATEST]abc"
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def rest_event(source_ip: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", **(headers or {})}
    return {
        "resource": "/{proxy+}",
        "path": "/hello",
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": "hello"},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "extendedRequestId": "request-id",
            "httpMethod": "GET",
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoIdentityId": None,
                "sourceIp": source_ip,
                "user": None,
                "userAgent": "curl/8.0",
                "userArn": None,
            },
            "path": "/prod/hello",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2015:12:34:56 +0000",
            "requestTimeEpoch": 1428582896000,
            "resourceId": "123456",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
        },
        "body": None,
        "isBase64Encoded": False,
    }


def http_api_event(source_ip: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/hello",
        "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "GET",
                "path": "/hello",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "curl/8.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2020:00:03:59 +0000",
            "timeEpoch": 1583798639428,
        },
        "isBase64Encoded": False,
    }


def function_url_event(source_ip: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = http_api_event(source_ip, headers)
    event["headers"]["host"] = "abcdefg.lambda-url.us-east-1.on.aws"
    event["requestContext"].update(
        {
            "apiId": "abcdefg",
            "domainName": "abcdefg.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefg",
        }
    )
    return event


def alb_event(forwarded_for: str | list[str], *, multi_value: bool = False) -> dict[str, Any]:
    values = [forwarded_for] if isinstance(forwarded_for, str) else forwarded_for
    headers = {
        "accept": "text/html,application/xhtml+xml",
        "host": "lambda-846800462-us-east-2.elb.amazonaws.com",
        "user-agent": "Mozilla/5.0",
        "x-amzn-trace-id": "Root=1-5bdb40ca-556d8b0c50dc66f0511bf520",
        "x-forwarded-for": values[-1],
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    event: dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:"
                "targetgroup/my-target-group/6d0ecf831eec9f09"
            }
        },
        "httpMethod": "GET",
        "path": "/hello",
        "queryStringParameters": {},
        "body": "",
        "isBase64Encoded": False,
    }
    if multi_value:
        event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
        event["multiValueHeaders"]["x-forwarded-for"] = values
        event["multiValueQueryStringParameters"] = {}
        del event["queryStringParameters"]
    else:
        event["headers"] = headers
    return event


def invoke(app: ASGIApp, event: dict[str, Any]) -> dict[str, Any]:
    """Mangum(app) on one event, as on Lambda, in an event loop of its own that is closed
    afterwards (Mangum would otherwise leave a new loop open after pytest-asyncio's tests)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        handler = Mangum(app, lifespan="off")  # type: ignore[arg-type]  # its ASGI type is narrower
        response: dict[str, Any] = handler(event, _Context())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return response


def ip_through_mangum(event: dict[str, Any], **options: Any) -> str | None:
    """Run the event through Mangum and return what client_ip saw in the app."""
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(client_ip(scope, **options))
        await PlainTextResponse("ok")(scope, receive, send)

    assert invoke(app, event)["statusCode"] == 200
    return seen[0]


def asgi_scope(peer: tuple[str, int] | None, headers: dict[str, str] | None = None) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": peer,
    }


def test_rest_api_uses_identity_source_ip() -> None:
    assert ip_through_mangum(rest_event("203.0.113.7")) == "203.0.113.7"


def test_http_api_uses_http_source_ip() -> None:
    assert ip_through_mangum(http_api_event("198.51.100.20")) == "198.51.100.20"


def test_function_url_uses_http_source_ip() -> None:
    assert ip_through_mangum(function_url_event("192.0.2.44")) == "192.0.2.44"


@pytest.mark.parametrize("build", [rest_event, http_api_event, function_url_event])
def test_caller_controlled_headers_do_not_change_api_gateway_ip(build: Any) -> None:
    assert ip_through_mangum(build("203.0.113.7", SPOOFING_HEADERS)) == "203.0.113.7"


def test_rest_api_ipv6_source_is_normalised() -> None:
    assert ip_through_mangum(rest_event("2001:DB8:0:0::1")) == "2001:db8::1"


def test_alb_uses_right_most_forwarded_for_entry() -> None:
    event = alb_event("6.6.6.6, 203.0.113.9")
    assert ip_through_mangum(event) == "203.0.113.9"


def test_alb_multi_value_headers_are_joined_before_taking_right_most() -> None:
    event = alb_event(["6.6.6.6", "10.1.2.3, 203.0.113.9"], multi_value=True)
    assert ip_through_mangum(event) == "203.0.113.9"


def test_alb_multi_value_trusted_hops_count_across_values() -> None:
    event = alb_event(["198.51.100.1, 6.6.6.6", "203.0.113.9"], multi_value=True)
    assert ip_through_mangum(event, trusted_hops=1) == "6.6.6.6"


def test_alb_trusted_hops_skips_proxies_in_front_of_the_load_balancer() -> None:
    event = alb_event("6.6.6.6, 198.51.100.1, 130.176.0.5")
    assert ip_through_mangum(event, trusted_hops=1) == "198.51.100.1"


def test_alb_trusted_hops_beyond_the_chain_gives_left_most_entry() -> None:
    assert ip_through_mangum(alb_event("198.51.100.1"), trusted_hops=2) == "198.51.100.1"


def test_alb_trusted_proxies_are_walked_past() -> None:
    event = alb_event("6.6.6.6, 198.51.100.1, 130.176.0.5, 130.176.1.9")
    assert ip_through_mangum(event, trusted_proxies=["130.176.0.0/16"]) == "198.51.100.1"


def test_alb_ignores_x_real_ip_and_forwarded() -> None:
    event = alb_event("203.0.113.9")
    event["headers"].update({"x-real-ip": "6.6.6.6", "forwarded": "for=6.6.6.6"})
    assert ip_through_mangum(event) == "203.0.113.9"


def test_alb_without_forwarded_for_is_unknown_even_though_mangum_sets_a_client() -> None:
    event = alb_event("203.0.113.9")
    del event["headers"]["x-forwarded-for"]
    assert ip_through_mangum(event) is None


def test_alb_junk_forwarded_for_is_unknown() -> None:
    assert ip_through_mangum(alb_event("not-an-ip")) is None


def test_alb_forwarded_for_port_is_stripped() -> None:
    assert ip_through_mangum(alb_event("203.0.113.9:51234")) == "203.0.113.9"


def test_lambda_at_edge_uses_cloudfront_client_ip() -> None:
    event = {"Records": [{"cf": {"request": {"clientIp": "203.0.113.30"}}}]}
    assert client_ip({"type": "http", "aws.event": event, "client": ("6.6.6.6", 0)}) == (
        "203.0.113.30"
    )


def test_unrecognised_lambda_event_is_unknown() -> None:
    assert client_ip({"type": "http", "aws.event": {"foo": 1}, "client": ("1.2.3.4", 0)}) is None


def test_socket_peer_is_the_client() -> None:
    assert client_ip(asgi_scope(("192.0.2.1", 5555))) == "192.0.2.1"


def test_socket_peer_forwarded_for_is_ignored_when_peer_is_not_trusted() -> None:
    scope = asgi_scope(("192.0.2.1", 5555), {"X-Forwarded-For": "6.6.6.6"})
    assert client_ip(scope, trusted_proxies=["10.0.0.0/8"]) == "192.0.2.1"


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    scope = asgi_scope(("127.0.0.1", 5555), {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.7"})
    assert client_ip(scope) == "127.0.0.1"


def test_trusted_peer_forwarded_for_gives_right_most_untrusted_entry() -> None:
    scope = asgi_scope(
        ("10.0.0.5", 5555), {"X-Forwarded-For": "6.6.6.6, 203.0.113.50, 10.0.0.9, 127.0.0.1"}
    )
    trusted = ["10.0.0.0/8", ipaddress.ip_address("127.0.0.1")]
    assert client_ip(scope, trusted_proxies=trusted) == "203.0.113.50"


def test_trusted_peer_multiple_forwarded_for_headers_are_joined() -> None:
    scope = asgi_scope(("127.0.0.1", 1), {})
    scope["headers"] = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.50")]
    assert client_ip(scope, trusted_proxies=["127.0.0.1"]) == "203.0.113.50"


def test_trusted_peer_without_forwarded_for_is_the_client() -> None:
    assert client_ip(asgi_scope(("127.0.0.1", 1)), trusted_proxies=["127.0.0.1"]) == "127.0.0.1"


def test_trusted_ipv6_peer_network_matches_ipv6_only() -> None:
    scope = asgi_scope(("::1", 1), {"X-Forwarded-For": "203.0.113.50"})
    assert client_ip(scope, trusted_proxies=["::1"]) == "203.0.113.50"
    scope = asgi_scope(("127.0.0.1", 1), {"X-Forwarded-For": "203.0.113.50"})
    assert client_ip(scope, trusted_proxies=["::1"]) == "127.0.0.1"


def test_missing_socket_peer_is_unknown() -> None:
    assert client_ip(asgi_scope(None)) is None


def test_non_ip_socket_peer_is_unknown() -> None:
    assert client_ip(asgi_scope(("testclient", 50000))) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:0db8:0000::0001", "2001:db8::1"),
        ("::ffff:192.0.2.128", "192.0.2.128"),
        ("fe80::1%eth0", "fe80::1"),
        ("", None),
        ("unknown", None),
        ("1.2.3.4.5", None),
        ("999.1.1.1", None),
        ("[2001:db8::1", None),
        ("1" * 500, None),
    ],
)
def test_addresses_are_normalised_or_rejected(raw: str, expected: str | None) -> None:
    assert client_ip(asgi_scope((raw, 1))) == expected


def test_ipv6_prefix_groups_client_into_its_network() -> None:
    scope = asgi_scope(("2001:db8:1:2:aaaa::1", 1))
    assert client_ip(scope, ipv6_prefix=64) == "2001:db8:1:2::/64"
    assert client_ip(asgi_scope(("192.0.2.1", 1)), ipv6_prefix=64) == "192.0.2.1"


def test_rate_limit_key_for_ip_groups_ipv6_by_prefix() -> None:
    assert rate_limit_key_for_ip("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert rate_limit_key_for_ip("2001:db8:1:2:ffff::9", 48) == "2001:db8:1::/48"
    assert rate_limit_key_for_ip("192.0.2.1") == "192.0.2.1"


def test_resolver_is_reusable_and_matches_client_ip() -> None:
    resolver = ClientIPResolver(trusted_proxies=["10.0.0.0/8"])
    scope = asgi_scope(("10.0.0.1", 1), {"X-Forwarded-For": "203.0.113.5"})
    assert resolver(scope) == client_ip(scope, trusted_proxies=["10.0.0.0/8"]) == "203.0.113.5"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"trusted_proxies": ["10.0.0.0/33"]}, "trusted_proxies"),
        ({"trusted_proxies": ["example.com"]}, "trusted_proxies"),
        ({"trusted_proxies": "10.0.0.0/8"}, "trusted_proxies"),
        ({"trusted_proxies": [42]}, "trusted_proxies"),
        ({"trusted_hops": -1}, "trusted_hops"),
        ({"ipv6_prefix": 0}, "ipv6_prefix"),
        ({"ipv6_prefix": 129}, "ipv6_prefix"),
    ],
)
def test_invalid_options_raise_configuration_error_naming_them(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        ClientIPResolver(**options)
    with pytest.raises(ConfigurationError, match=named):
        client_ip(asgi_scope(("1.2.3.4", 1)), **options)
