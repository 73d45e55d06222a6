"""Sample Lambda events, shipped as package data: what `asgi-lambda events` lists and shows and
`asgi-lambda invoke --example NAME` sends.

Each is written from AWS's documentation of its payload (``doc_url``) and uses only
documentation IP addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["SAMPLE_EVENTS", "SampleEvent", "UnknownSampleEvent", "load", "sample_event"]

_HTTP_API_DOC = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/"
    "http-api-develop-integrations-lambda.html"
)
_JWT_DOC = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html"
)
_REST_DOC = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/"
    "set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format"
)
_REST_AUTHORIZER_DOC = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/"
    "api-gateway-lambda-authorizer-output.html"
)
_ALB_DOC = (
    "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html"
)
_FUNCTION_URL_DOC = (
    "https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads"
)


class UnknownSampleEvent(KeyError):
    """No sample event has that name."""

    def __str__(self) -> str:
        names = ", ".join(event.name for event in SAMPLE_EVENTS)
        return f"no sample event named {self.args[0]!r}; choose one of: {names}"


@dataclass(frozen=True)
class SampleEvent:
    """One bundled event: its name, the payload format it is in, what it shows and its source."""

    name: str
    event_format: str
    description: str
    doc_url: str

    @property
    def filename(self) -> str:
        return self.name.replace("-", "_") + ".json"

    def text(self) -> str:
        """The event as stored (pretty-printed JSON)."""
        return resources.files(__name__).joinpath(self.filename).read_text(encoding="utf-8")

    def load(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.text())
        return event


SAMPLE_EVENTS: tuple[SampleEvent, ...] = (
    SampleEvent(
        "http-api",
        "http-api",
        "HTTP API (payload 2.0), GET with a query string, no authorizer",
        _HTTP_API_DOC,
    ),
    SampleEvent(
        "http-api-jwt",
        "http-api",
        "HTTP API (payload 2.0) behind a JWT authorizer: claims and scopes in the context",
        _JWT_DOC,
    ),
    SampleEvent(
        "http-api-cookies",
        "http-api",
        "HTTP API (payload 2.0), POST with a JSON body and two cookies in the cookies field",
        _HTTP_API_DOC,
    ),
    SampleEvent(
        "http-api-binary",
        "http-api",
        "HTTP API (payload 2.0), POST of a PNG: a base64 body with isBase64Encoded true",
        _HTTP_API_DOC,
    ),
    SampleEvent(
        "rest",
        "rest",
        "REST API proxy integration (payload 1.0), GET through a {proxy+} resource",
        _REST_DOC,
    ),
    SampleEvent(
        "rest-authorizer",
        "rest",
        "REST API (payload 1.0) behind a Lambda authorizer: principalId and context keys",
        _REST_AUTHORIZER_DOC,
    ),
    SampleEvent(
        "rest-multi-value",
        "rest",
        "REST API (payload 1.0) with a repeated query key and a repeated header",
        _REST_DOC,
    ),
    SampleEvent(
        "alb",
        "alb",
        "Application Load Balancer, single-value headers (the target group default)",
        _ALB_DOC,
    ),
    SampleEvent(
        "alb-multi-value",
        "alb-multi-value",
        "Application Load Balancer with multi-value headers on: repeated query key and cookies",
        _ALB_DOC + "#multi-value-headers",
    ),
    SampleEvent(
        "function-url",
        "function-url",
        "Lambda Function URL (auth type NONE), POST with a JSON body from an IPv6 client",
        _FUNCTION_URL_DOC,
    ),
)

_BY_NAME = {event.name: event for event in SAMPLE_EVENTS}


def sample_event(name: str) -> SampleEvent:
    """The bundled event called ``name``; UnknownSampleEvent if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownSampleEvent(name) from None


def load(name: str) -> dict[str, Any]:
    """The bundled event called ``name``, parsed."""
    return sample_event(name).load()
