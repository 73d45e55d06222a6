"""CORS for the stack: answers preflights and puts CORS headers on every response.

It sits inside the tracing layer and outside the rate limiter, so a preflight never costs a
rate-limit hit and a 429 or a 500 still carries the headers a browser needs to read it.

Built by subclassing Starlette's ``CORSMiddleware`` rather than wrapping or rewriting it: its
request flow (what counts as a preflight, the method/header/private-network checks, mirroring
requested headers for ``"*"``) is right and is reused as is. This subclass adds what it lacks:
configuration from the environment, start-up validation (origins must be ``scheme://host[:port]``;
``"*"`` with credentials is refused), origin matching on the normalised origin and by predicate,
denied preflights without any grant header, no CORS headers at all for a disallowed origin,
``Vary: Origin`` never duplicated, and an inert layer when no origin is configured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware as _StarletteCORSMiddleware
from starlette.responses import Response

from ._env import env_bool, env_int, env_list
from .exceptions import ConfigurationError
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_ALLOW_METHODS", "DEFAULT_MAX_AGE", "CORSMiddleware"]

logger = logging.getLogger("asgi_lambda_mw.cors")

DEFAULT_ALLOW_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
"""Methods a preflight may ask for when ``allow_methods`` is not given."""

DEFAULT_MAX_AGE = 600
"""Seconds a browser may cache a preflight answer when ``max_age`` is not given."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: header and method names
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}

_NOTHING: tuple[tuple[bytes, bytes], ...] = ()
_NO_NAMES: frozenset[bytes] = frozenset()

# What a granted preflight carries; a denied one carries none of it, only Vary.
_PREFLIGHT_GRANTS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Private-Network",
    "Access-Control-Max-Age",
)


class CORSMiddleware(_StarletteCORSMiddleware):
    """Cross-origin resource sharing for the wrapped app.

    Every option left as ``None`` is read from its environment variable, and an explicit
    argument always wins over the environment. With no origin configured by any means, the
    layer passes every request through untouched (so an app's own CORS handling still works).

    - ``allow_origins``: exact origins (a list, or a comma-separated string), or ``"*"`` for any
      origin. Compared on the normalised origin (scheme, lower-case host, port; default ports
      dropped), never as a substring or prefix. Env ``CORS_ALLOW_ORIGINS``; default none.
    - ``allow_origin_regex``: an origin is allowed when the pattern matches it in full
      (``re.fullmatch``). Default none.
    - ``allow_origin_predicate``: ``(origin) -> bool``, called with the Origin header as sent
      (``"null"`` included); it must be fast and synchronous. One that raises denies the origin
      and logs the error. Default none.
    - ``allow_methods``: methods a preflight may ask for, or ``"*"``. Default
      :data:`DEFAULT_ALLOW_METHODS`.
    - ``allow_headers``: request headers a preflight may ask for besides the CORS-safelisted
      ones, or ``"*"`` (requested headers are mirrored). Env ``CORS_ALLOW_HEADERS``; default none.
    - ``allow_credentials``: send ``Access-Control-Allow-Credentials: true``. Refused together
      with ``"*"`` origins or ``"*"`` exposed headers. Env ``CORS_ALLOW_CREDENTIALS``; default
      False.
    - ``expose_headers``: response headers a page's script may read, or ``"*"``. Env
      ``CORS_EXPOSE_HEADERS``; default none.
    - ``extra_expose_headers``: added to ``expose_headers`` whatever its source; the composition
      helper passes the rate limiter's and the tracer's headers here. Default none.
    - ``max_age``: seconds a preflight answer may be cached. Env ``CORS_MAX_AGE``; default 600.
    - ``allow_private_network``: answer Private Network Access preflights with
      ``Access-Control-Allow-Private-Network: true``. Default False (they are denied).

    A denied preflight gets ``400 Disallowed CORS <what>`` (as in Starlette) with no grant
    header, so the browser blocks the request and the app never sees it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_origins: str | Collection[str] | None = None,
        allow_origin_regex: str | re.Pattern[str] | None = None,
        allow_origin_predicate: Callable[[str], bool] | None = None,
        allow_methods: str | Collection[str] | None = None,
        allow_headers: str | Collection[str] | None = None,
        allow_credentials: bool | None = None,
        expose_headers: str | Collection[str] | None = None,
        extra_expose_headers: Collection[str] = (),
        max_age: int | None = None,
        allow_private_network: bool = False,
    ) -> None:
        origins, origins_setting = _setting(allow_origins, "allow_origins", "CORS_ALLOW_ORIGINS")
        headers, headers_setting = _setting(allow_headers, "allow_headers", "CORS_ALLOW_HEADERS")
        exposed, exposed_setting = _setting(expose_headers, "expose_headers", "CORS_EXPOSE_HEADERS")
        if allow_credentials is None:
            credentials_setting = "CORS_ALLOW_CREDENTIALS"
            allow_credentials = env_bool(credentials_setting, False)
        else:
            credentials_setting = "allow_credentials"
        if max_age is None:
            max_age = env_int("CORS_MAX_AGE", DEFAULT_MAX_AGE, minimum=0)
        elif max_age < 0:
            raise ConfigurationError(f"max_age={max_age!r} must be at least 0")
        if allow_methods is None:
            methods = list(DEFAULT_ALLOW_METHODS)
        else:
            methods = [method.upper() for method in _items(allow_methods)]
            _check_tokens(methods, "allow_methods", "a method")
        _check_tokens(headers, headers_setting, "a header name")
        _check_tokens(exposed, exposed_setting, "a header name")
        extra_exposed = _items(extra_expose_headers)
        _check_tokens(extra_exposed, "extra_expose_headers", "a header name")

        allow_all_origins = "*" in origins
        exact_origins = _check_origins(origins, origins_setting)
        pattern = _compile_regex(allow_origin_regex)
        if allow_origin_predicate is not None and not callable(allow_origin_predicate):
            raise ConfigurationError("allow_origin_predicate must be a function (origin) -> bool")
        if allow_all_origins and (pattern is not None or allow_origin_predicate is not None):
            raise ConfigurationError(
                f"{origins_setting}='*' already allows every origin: "
                "drop allow_origin_regex / allow_origin_predicate, or list the origins"
            )
        if allow_all_origins and allow_credentials:
            raise ConfigurationError(
                f"{origins_setting}='*' cannot be combined with {credentials_setting}=true: "
                "browsers refuse credentialed responses to a wildcard; list the origins instead"
            )
        if "*" in exposed and allow_credentials:
            raise ConfigurationError(
                f"{exposed_setting}='*' cannot be combined with {credentials_setting}=true: "
                "browsers read '*' literally on credentialed requests; list the headers instead"
            )
        if "*" in exposed:
            exposed = ["*"]
        else:
            exposed = _unique([*exposed, *extra_exposed])

        super().__init__(
            app,
            allow_origins=["*"] if allow_all_origins else sorted(exact_origins),
            allow_methods=methods,
            allow_headers=headers,
            allow_credentials=allow_credentials,
            allow_private_network=allow_private_network,
            expose_headers=exposed,
            max_age=max_age,
        )
        self.allow_origin_regex = pattern
        self._exact_origins = frozenset(exact_origins)
        self._predicate = allow_origin_predicate
        self._active = bool(allow_all_origins or exact_origins or pattern or allow_origin_predicate)
        # Precomputed raw headers for a response: to any origin ("*"), or to one allowed
        # origin (which also gets Access-Control-Allow-Origin: <its origin>).
        granted: list[tuple[bytes, bytes]] = []
        if allow_credentials:
            granted.append((b"access-control-allow-credentials", b"true"))
        if exposed:
            granted.append((b"access-control-expose-headers", ", ".join(exposed).encode()))
        self._allowed_origin_headers = granted
        self._wildcard_headers = [(b"access-control-allow-origin", b"*"), *granted]
        # The names both sets of headers replace in a response (the same names).
        self._granted_names = frozenset(name for name, _ in self._wildcard_headers)
        if not self._active:
            logger.debug("no CORS origin configured: the CORS layer passes requests through")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette's request flow, without its per-request Headers object and partial send:
        # the Origin header is found in the raw headers, and Headers is built only for an
        # OPTIONS request that may be a preflight.
        if not self._active or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin: str | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
                break
        if origin is not None and scope["method"] == "OPTIONS":
            request_headers = Headers(scope=scope)
            if "access-control-request-method" in request_headers:
                response = self.preflight_response(request_headers)
                await response(scope, receive, send)
                return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._response_headers(message.get("headers", ()), origin)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def is_allowed_origin(self, origin: str) -> bool:
        """Whether responses to ``origin`` (the Origin header as sent) may be read by its page."""
        if self.allow_all_origins or origin in self._exact_origins:
            return True
        if self._exact_origins:
            normalised = _normalise_origin(origin)
            if normalised is not None and normalised in self._exact_origins:
                return True
        if self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin):
            return True
        if self._predicate is not None:
            try:
                return bool(self._predicate(origin))
            except Exception:
                logger.exception(
                    "allow_origin_predicate raised; origin denied", extra={"origin": origin}
                )
        return False

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            # Starlette grants the origin even when the method or a header is refused.
            for name in _PREFLIGHT_GRANTS:
                del response.headers[name]
        return response

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        # Starlette's hook, kept for its callers (simple_response); __call__ does the same inline.
        if message["type"] == "http.response.start":
            message["headers"] = self._response_headers(
                message.get("headers", ()), request_headers.get("origin")
            )
        await send(message)

    def _response_headers(
        self, headers: Iterable[tuple[bytes, bytes]], origin: str | None
    ) -> list[tuple[bytes, bytes]]:
        """The response's headers with the CORS headers for a request from ``origin``."""
        if self.allow_all_origins:
            # The same headers whatever the Origin, so caches need no Vary.
            return _with_cors(headers, self._wildcard_headers, self._granted_names)
        if origin is None:
            return _with_vary_origin(headers)
        if not self.is_allowed_origin(origin):
            return _with_cors(headers, _NOTHING, _NO_NAMES, vary=True)
        granted = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            *self._allowed_origin_headers,
        ]
        return _with_cors(headers, granted, self._granted_names, vary=True)


def _setting(
    value: str | Collection[str] | None, argument: str, variable: str
) -> tuple[list[str], str]:
    """The items of an option, from the argument or else the environment, and which it was."""
    if value is not None:
        return _items(value), argument
    return env_list(variable) or [], variable


def _items(value: str | Collection[str]) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [item.strip() for item in value if item.strip()]


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            unique.append(name)
    return unique


def _check_tokens(names: list[str], setting: str, what: str) -> None:
    for name in names:
        if name != "*" and not _TOKEN.fullmatch(name):
            raise ConfigurationError(f"{setting}: {name!r} is not {what}")


def _check_origins(origins: list[str], setting: str) -> set[str]:
    """The configured origins, normalised; a ConfigurationError naming the first bad one."""
    if "*" in origins:
        if len(origins) > 1:
            raise ConfigurationError(f"{setting}: '*' cannot be combined with listed origins")
        return set()
    exact = set()
    for origin in origins:
        normalised = _normalise_origin(origin)
        if normalised is not None:
            exact.add(normalised)
        elif origin.lower() == "null":
            raise ConfigurationError(
                f"{setting}: 'null' is not an origin one can trust (sandboxed frames and file:// "
                "pages all send it); use allow_origin_predicate if you really mean it"
            )
        elif "*" in origin:
            raise ConfigurationError(
                f"{setting}: {origin!r} has a wildcard; use allow_origin_regex for patterns"
            )
        else:
            raise ConfigurationError(
                f"{setting}: {origin!r} is not an origin: write scheme://host[:port] with no path "
                "or trailing slash, for example https://example.com"
            )
    return exact


def _normalise_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port; None if not an origin."""
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        return None
    scheme, host, port = match["scheme"].lower(), match["host"].lower(), match["port"]
    if port is None:
        return f"{scheme}://{host}"
    if int(port) > 65535:
        return None
    port = str(int(port))
    if _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _compile_regex(pattern: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ConfigurationError(
            f"allow_origin_regex={pattern!r} is not a regular expression: {error}"
        ) from None


def _with_vary_origin(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """What ``_with_cors(headers, (), frozenset(), vary=True)`` answers, without its work when
    the response has no Vary header (most responses to requests without an Origin)."""
    result = list(headers)
    for name, _ in result:
        if name == b"vary":
            return _with_cors(result, _NOTHING, _NO_NAMES, vary=True)
    result.append((b"vary", b"Origin"))
    return result


def _with_cors(
    headers: Iterable[tuple[bytes, bytes]],
    granted: Sequence[tuple[bytes, bytes]],
    replaced: Collection[bytes],
    *,
    vary: bool = False,
) -> list[tuple[bytes, bytes]]:
    """Response headers with ``granted`` replacing the app's own headers named in ``replaced``
    (the names of ``granted``), and, with ``vary``, Origin appended to Vary unless it (or
    ``*``) is there already."""
    result: list[tuple[bytes, bytes]] = []
    vary_at = -1
    for name, value in headers:
        if name in replaced:
            continue
        if vary and name == b"vary":
            fields = [field.strip().lower() for field in value.split(b",")]
            if b"origin" in fields or b"*" in fields:
                vary = False
            elif vary_at < 0:
                vary_at = len(result)
            else:  # a second Vary header joins the first, as Starlette does
                result[vary_at] = (b"vary", result[vary_at][1] + b", " + value)
                continue
        result.append((name, value))
    result.extend(granted)
    if vary:
        if vary_at < 0:
            result.append((b"vary", b"Origin"))
        else:
            result[vary_at] = (b"vary", result[vary_at][1] + b", Origin")
    return result
