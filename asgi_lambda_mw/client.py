"""Who is calling: the client IP from the Lambda request context or the socket peer.

Used by the rate limiter (its default key) and available to apps. Headers the caller controls
never count; ``X-Forwarded-For`` is read only through hops the deployment says it trusts.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from .exceptions import ConfigurationError
from .types import Scope

__all__ = ["ClientIPResolver", "TrustedProxy", "client_ip", "rate_limit_key_for_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TrustedProxy = str | IPAddress | IPNetwork
"""A trusted proxy: ``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"`` or an ``ipaddress`` object."""

# Longer than any address with a port and brackets: anything bigger is junk, not worth parsing.
_MAX_ADDRESS_LENGTH = 64


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[IPAddress, str] | None:
    """The address in ``text`` (port, brackets and IPv6 zone stripped, IPv4-mapped IPv6
    unwrapped) and its normalised spelling; None for anything that is not an address.

    Cached: the same few addresses repeat, and ``ipaddress`` parsing is the costly part.
    """
    text = text.strip()
    if not text or len(text) > _MAX_ADDRESS_LENGTH:
        return None
    if text[0] == "[":  # "[2001:db8::1]:443" or "[2001:db8::1]"
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.partition(":")[0]
    text = text.partition("%")[0]  # an IPv6 zone ("fe80::1%eth0") says nothing about the caller
    try:
        address: IPAddress = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address, str(address)


def _to_network(proxy: object) -> IPNetwork:
    if isinstance(proxy, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return proxy
    if isinstance(proxy, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_network(proxy)
    if isinstance(proxy, str):
        try:
            return ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:
            pass
    raise ConfigurationError(
        f"trusted_proxies: {proxy!r} is not an IP address or network "
        "(such as '10.0.0.0/8', '127.0.0.1' or '::1')"
    )


def _header(headers: Any, name: str) -> str | None:
    """A header from a Lambda event's ``headers`` dict, whatever the case of its name."""
    if not isinstance(headers, dict):
        return None
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == name:
                value = candidate
                break
    return value if isinstance(value, str) else None


def _multi_value_header(headers: Any, name: str) -> str | None:
    """All values of a header from ALB's ``multiValueHeaders``, joined with commas."""
    if not isinstance(headers, dict):
        return None
    values: list[str] = []
    for key, candidates in headers.items():
        if isinstance(key, str) and key.lower() == name and isinstance(candidates, list):
            values.extend(value for value in candidates if isinstance(value, str))
    return ",".join(values) if values else None


def _scope_header(scope: Scope, name: bytes) -> str | None:
    """All values of a header from the ASGI scope, joined with commas."""
    values = [value for key, value in scope.get("headers") or () if key.lower() == name]
    if not values:
        return None
    return b",".join(values).decode("latin-1")


class ClientIPResolver:
    """Finds the client IP of a request; built once, called per request.

    ``trusted_proxies`` (default none): addresses or networks of proxies whose
    ``X-Forwarded-For`` entries are believed. ``X-Forwarded-For`` is read only when the peer
    (the socket peer under uvicorn, ``sourceIp`` on API Gateway) is one of them, walking from the
    right past every trusted entry.

    ``trusted_hops`` (default 0), for ALB events only: how many proxies in front of the load
    balancer append to ``X-Forwarded-For``. ALB appends the peer it saw as the right-most entry;
    that many more entries are skipped from the right (then any in ``trusted_proxies``).

    ``ipv6_prefix`` (default None): when set, an IPv6 client is reported as its network of that
    prefix length (``"2001:db8:1:2::/64"``); IPv4 addresses are unchanged.

    Raises ConfigurationError for an invalid option.
    """

    __slots__ = ("_ipv6_prefix", "_trusted_hops", "_trusted_v4", "_trusted_v6")

    def __init__(
        self,
        *,
        trusted_proxies: Iterable[TrustedProxy] = (),
        trusted_hops: int = 0,
        ipv6_prefix: int | None = None,
    ) -> None:
        if isinstance(trusted_proxies, str):
            raise ConfigurationError(
                f"trusted_proxies must be a list of addresses or networks, not the string "
                f"{trusted_proxies!r}"
            )
        networks = [_to_network(proxy) for proxy in trusted_proxies]
        if isinstance(trusted_hops, bool) or not isinstance(trusted_hops, int) or trusted_hops < 0:
            raise ConfigurationError(
                f"trusted_hops must be a whole number of 0 or more, not {trusted_hops!r}"
            )
        if ipv6_prefix is not None and (
            isinstance(ipv6_prefix, bool)
            or not isinstance(ipv6_prefix, int)
            or not 1 <= ipv6_prefix <= 128
        ):
            raise ConfigurationError(
                f"ipv6_prefix must be a prefix length from 1 to 128 or None, not {ipv6_prefix!r}"
            )
        self._trusted_v4 = tuple(net for net in networks if net.version == 4)
        self._trusted_v6 = tuple(net for net in networks if net.version == 6)
        self._trusted_hops = trusted_hops
        self._ipv6_prefix = ipv6_prefix

    def __call__(self, scope: Scope) -> str | None:
        """The normalised client IP (or IPv6 network), or None when it cannot be known."""
        event = scope.get("aws.event")
        if event is not None:
            ip = self._from_event(event, scope)
        else:
            ip = self._from_socket(scope)
        if ip is not None and self._ipv6_prefix is not None:
            return rate_limit_key_for_ip(ip, self._ipv6_prefix)
        return ip

    def _is_trusted(self, address: IPAddress) -> bool:
        networks = self._trusted_v4 if address.version == 4 else self._trusted_v6
        return any(address in network for network in networks)

    def _from_socket(self, scope: Scope) -> str | None:
        client = scope.get("client")
        if not client or not isinstance(client[0], str):
            return None
        return self._behind_peer(client[0], scope)

    def _behind_peer(self, peer_text: str, scope: Scope) -> str | None:
        """The peer, or, when the peer is a trusted proxy, the right-most untrusted
        ``X-Forwarded-For`` entry."""
        peer = _parse(peer_text)
        if peer is None:
            return None
        if not (self._trusted_v4 or self._trusted_v6) or not self._is_trusted(peer[0]):
            return peer[1]
        forwarded = _scope_header(scope, b"x-forwarded-for")
        if forwarded is None:
            return peer[1]
        return self._walk(forwarded.split(","), skip=0)

    def _walk(self, entries: Sequence[str], *, skip: int) -> str | None:
        """From the right: skip ``skip`` entries, then every trusted one; the next is the client.

        When every entry is skipped, the left-most one is the best that is known.
        """
        index = len(entries) - 1 - skip
        if index < 0:
            index = 0
        while True:
            parsed = _parse(entries[index])
            if parsed is None:
                return None
            if index == 0 or not self._is_trusted(parsed[0]):
                return parsed[1]
            index -= 1

    def _from_event(self, event: Any, scope: Scope) -> str | None:
        if not isinstance(event, dict):
            return None
        context = event.get("requestContext")
        if isinstance(context, dict):
            if "elb" in context:
                return self._from_alb(event)
            # HTTP API (payload 2.0) and Function URLs: requestContext.http.sourceIp
            # https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
            # https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
            http = context.get("http")
            if isinstance(http, dict):
                source = http.get("sourceIp")
            else:
                # REST API and HTTP API payload 1.0: requestContext.identity.sourceIp
                # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format
                identity = context.get("identity")
                source = identity.get("sourceIp") if isinstance(identity, dict) else None
            return self._behind_peer(source, scope) if isinstance(source, str) else None
        # Lambda@Edge: Records[0].cf.request.clientIp
        # https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-event-structure.html#lambda-event-structure-request
        try:
            source = event["Records"][0]["cf"]["request"]["clientIp"]
        except (KeyError, IndexError, TypeError):
            return None
        parsed = _parse(source) if isinstance(source, str) else None
        return parsed[1] if parsed is not None else None

    def _from_alb(self, event: dict[str, Any]) -> str | None:
        # ALB appends the address of the peer it saw to X-Forwarded-For; headers come in
        # "multiValueHeaders" when multi-value headers are enabled on the target group.
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html#receive-event-from-load-balancer
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/x-forwarded-headers.html#x-forwarded-for
        if "multiValueHeaders" in event:
            forwarded = _multi_value_header(event["multiValueHeaders"], "x-forwarded-for")
        else:
            forwarded = _header(event.get("headers"), "x-forwarded-for")
        if not forwarded:
            return None
        return self._walk(forwarded.split(","), skip=self._trusted_hops)


@functools.lru_cache(maxsize=64)
def _resolver(
    trusted_proxies: tuple[TrustedProxy, ...], trusted_hops: int, ipv6_prefix: int | None
) -> ClientIPResolver:
    return ClientIPResolver(
        trusted_proxies=trusted_proxies, trusted_hops=trusted_hops, ipv6_prefix=ipv6_prefix
    )


def client_ip(
    scope: Scope,
    *,
    trusted_proxies: Iterable[TrustedProxy] = (),
    trusted_hops: int = 0,
    ipv6_prefix: int | None = None,
) -> str | None:
    """The normalised IP address of the client that sent this request, or None when unknown.

    On Lambda (through Mangum) it comes from the request context API Gateway or the Function
    URL fills in, or from the ``X-Forwarded-For`` entry ALB appended; under uvicorn from the
    socket peer. The options are those of ClientIPResolver (parsed once per distinct value);
    build a ClientIPResolver yourself to keep the parsing out of the request path entirely.
    """
    if isinstance(trusted_proxies, str):  # a common slip: let the resolver explain it
        return ClientIPResolver(trusted_proxies=trusted_proxies)(scope)
    proxies = tuple(trusted_proxies)
    if not proxies and not trusted_hops and ipv6_prefix is None:
        return _DEFAULT_RESOLVER(scope)
    try:
        resolver = _resolver(proxies, trusted_hops, ipv6_prefix)
    except TypeError:  # an unhashable option: validate it uncached
        resolver = ClientIPResolver(
            trusted_proxies=proxies, trusted_hops=trusted_hops, ipv6_prefix=ipv6_prefix
        )
    return resolver(scope)


_DEFAULT_RESOLVER = ClientIPResolver()


@functools.lru_cache(maxsize=4096)
def rate_limit_key_for_ip(ip: str, ipv6_prefix: int = 64) -> str:
    """The bucket an address belongs to: IPv6 addresses grouped into their ``/ipv6_prefix``
    network (one subscriber usually holds a whole /64), IPv4 addresses unchanged.

    ``rate_limit_key_for_ip("2001:db8:1:2::99")`` is ``"2001:db8:1:2::/64"``.
    """
    if ":" not in ip:
        return ip
    try:
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    except ValueError:
        return ip
