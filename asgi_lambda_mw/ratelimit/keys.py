"""Who shares a rate-limit bucket: built-in key functions (client IP, a header, the API Gateway
authorizer's principal) for RateLimitMiddleware's ``key=`` option.

Built-in keys are namespaced by kind (``ip:``, ``hdr:``, ``sub:``); the middleware puts the
values of any other callable under ``fn:``, so keys of one kind never collide with another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..client import ClientIPResolver, TrustedProxy
from ..exceptions import ConfigurationError
from ..types import Scope

__all__ = ["KeyFunction", "header_key", "ip_key", "principal_key"]

KeyFunction = Callable[[Scope], str | None] | Callable[[Scope], Awaitable[str | None]]
"""``(scope) -> key`` (sync or async): requests with the same key share a bucket.
None means "no key for this request": the middleware then falls back to the client IP."""

# Values longer than this are replaced by a digest, so a huge header or claim cannot blow up
# storage keys (DynamoDB allows 2048 bytes for a partition key).
_MAX_VALUE_LENGTH = 128


def _digest(value: bytes) -> str:
    # 128 bits of SHA-256: collisions are out of reach, and secrets never reach the table.
    return hashlib.sha256(value).hexdigest()[:32]


def _bounded(value: str) -> str:
    """``value``, or its digest (prefixed with ``#``) when it is too long for a storage key.

    A value that itself starts with ``#`` is digested too: kept as is, ``"#" + digest(long)``
    would share the bucket of the long value it names.
    """
    if len(value) <= _MAX_VALUE_LENGTH and not value.startswith("#"):
        return value
    return "#" + _digest(value.encode("utf-8", "surrogatepass"))


class _NamespacedKey:
    """Base of the built-in key functions, whose keys already carry their kind's prefix."""

    __slots__ = ()

    def __call__(self, scope: Scope) -> str | None:
        raise NotImplementedError


class _IPKey(_NamespacedKey):
    __slots__ = ("_resolver",)

    def __init__(self, resolver: ClientIPResolver) -> None:
        self._resolver = resolver

    def __call__(self, scope: Scope) -> str | None:
        ip = self._resolver(scope)
        return None if ip is None else "ip:" + ip

    def __repr__(self) -> str:
        return "ip_key()"


class _HeaderKey(_NamespacedKey):
    __slots__ = ("_name", "_prefix")

    def __init__(self, name: str) -> None:
        self._name = name.lower().encode("latin-1")
        self._prefix = f"hdr:{name.lower()}:"

    def __call__(self, scope: Scope) -> str | None:
        for key, value in scope.get("headers") or ():
            if key.lower() == self._name:
                value = value.strip()
                return self._prefix + _digest(value) if value else None
        return None

    def __repr__(self) -> str:
        return f"header_key({self._name.decode('latin-1')!r})"


def _authorizer_principal(event: Any) -> Any:
    try:
        authorizer = event["requestContext"]["authorizer"]
    except (KeyError, TypeError):
        return None
    if not isinstance(authorizer, dict):
        return None
    # HTTP API JWT authorizer: requestContext.authorizer.jwt.claims.sub
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html
    jwt = authorizer.get("jwt")
    if isinstance(jwt, dict):
        claims = jwt.get("claims")
        return claims.get("sub") if isinstance(claims, dict) else None
    # REST Lambda authorizer: requestContext.authorizer.principalId
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-output.html
    principal = authorizer.get("principalId")
    if principal is not None:
        return principal
    # REST Cognito user pool authorizer: requestContext.authorizer.claims.sub
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-integrate-with-cognito.html
    claims = authorizer.get("claims")
    return claims.get("sub") if isinstance(claims, dict) else None


class _PrincipalKey(_NamespacedKey):
    __slots__ = ()

    def __call__(self, scope: Scope) -> str | None:
        event = scope.get("aws.event")
        if event is None:
            return None
        principal = _authorizer_principal(event)
        if not isinstance(principal, str) or not principal:
            return None
        return "sub:" + _bounded(principal)

    def __repr__(self) -> str:
        return "principal_key()"


def ip_key(
    *,
    trusted_proxies: Iterable[TrustedProxy] = (),
    trusted_hops: int = 0,
    ipv6_prefix: int | None = 64,
) -> KeyFunction:
    """One bucket per client IP (``ip:203.0.113.7``); IPv6 clients grouped by their
    ``/ipv6_prefix`` network (default /64, None for none). The options are client_ip's.

    This is the middleware's default key, built from its own ``trusted_proxies``,
    ``trusted_hops`` and ``ipv6_prefix``.
    """
    return _IPKey(
        ClientIPResolver(
            trusted_proxies=trusted_proxies, trusted_hops=trusted_hops, ipv6_prefix=ipv6_prefix
        )
    )


def header_key(name: str) -> KeyFunction:
    """One bucket per value of header ``name`` (an API key, a tenant id).

    The value is stored only as a SHA-256 digest (``hdr:x-api-key:<32 hex digits>``), so
    keys stay short and secrets stay out of the table. A request without the header (or
    with an empty one) has no key: the middleware falls back to the client IP.
    """
    if not isinstance(name, str) or not name.strip() or not name.isascii():
        raise ConfigurationError(f"header_key needs a header name, not {name!r}")
    return _HeaderKey(name.strip())


def principal_key() -> KeyFunction:
    """One bucket per authenticated principal that API Gateway's authorizer reports
    (``sub:<value>``): the JWT ``sub`` claim (HTTP API JWT authorizer), the ``principalId``
    (REST Lambda authorizer) or the Cognito ``sub`` claim (REST Cognito authorizer).

    Off Lambda, or without an authorizer, there is no key: the middleware falls back to the
    client IP. Values longer than 128 characters are replaced by a digest.
    """
    return _PrincipalKey()
