"""compose(app): the whole onion in the right order, so users do not have to think about it.

Outermost first: TracingMiddleware -> CORSMiddleware -> ServerErrorMiddleware ->
RateLimitMiddleware -> app. Tracing and CORS see every response (429 and 500 included); the
rate limiter decides whether the app runs; the 500 safety net sits inside CORS.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette

from .cors import CORSMiddleware
from .exceptions import ConfigurationError
from .ratelimit.middleware import RateLimitMiddleware
from .tracing import ServerErrorMiddleware, TracingMiddleware, json_server_error_handler
from .types import ASGIApp

__all__ = ["LayerOption", "compose"]

LayerOption = bool | Mapping[str, Any]
"""True: configured from the environment; a mapping: keyword options; False: layer off."""

RATE_LIMIT_HEADERS = ("RateLimit", "RateLimit-Policy", "Retry-After")
LEGACY_RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"


def compose(
    app: ASGIApp,
    *,
    rate_limit: LayerOption = True,
    cors: LayerOption = True,
    tracing: LayerOption = True,
) -> ASGIApp:
    """Wrap ``app`` in the stack: Tracing -> CORS -> ServerError -> RateLimit -> app.

    Each option is True (the default: the layer configures itself from the environment), a
    mapping of keyword options for that layer's constructor, or False (the layer is left out).

    - ``rate_limit``: RateLimitMiddleware (``RATE_LIMIT``, ``RATE_LIMIT_TABLE``, ...).
    - ``cors``: CORSMiddleware (``CORS_ALLOW_ORIGINS``, ...). The rate limiter's headers
      (RateLimit, RateLimit-Policy, Retry-After) and the request id header are added to the
      exposed headers of the layers that are on, so a page's script can read them.
    - ``tracing``: TracingMiddleware (``LOG_LEVEL``).

    With tracing or CORS on, ServerErrorMiddleware turns an unhandled exception into a JSON 500
    with the request id, inside CORS so the browser can read it; on a Starlette or FastAPI app
    with no handler of its own for ``Exception`` or 500, ``json_server_error_handler`` is
    installed (``app.add_exception_handler``) so the app's own 500 is that same JSON 500.

    Raises ConfigurationError for an option of the wrong type or an unknown keyword option.
    """
    rate_limit_options = _layer_options("rate_limit", rate_limit, RateLimitMiddleware)
    cors_options = _layer_options("cors", cors, CORSMiddleware)
    tracing_options = _layer_options("tracing", tracing, TracingMiddleware)
    safety_net = tracing_options is not None or cors_options is not None

    if safety_net and isinstance(app, Starlette):
        _install_json_error_handler(app)
    stack: ASGIApp = app
    if rate_limit_options is not None:
        stack = RateLimitMiddleware(stack, **rate_limit_options)
    if safety_net:
        stack = ServerErrorMiddleware(stack)
    if cors_options is not None:
        exposed = list(_items(cors_options.get("extra_expose_headers", ())))
        if rate_limit_options is not None:
            exposed += RATE_LIMIT_HEADERS
            if rate_limit_options.get("legacy_headers"):
                exposed += LEGACY_RATE_LIMIT_HEADERS
        if tracing_options is not None:
            exposed.append(tracing_options.get("request_id_header", DEFAULT_REQUEST_ID_HEADER))
        cors_options["extra_expose_headers"] = exposed
        stack = CORSMiddleware(stack, **cors_options)
    if tracing_options is not None:
        # The inner net already holds a streamed response until it is complete; holding it a
        # second time would only cost another buffer per request.
        tracing_options.setdefault("hold_responses", False)
        stack = TracingMiddleware(stack, **tracing_options)
    return stack


def _layer_options(name: str, option: object, layer: type) -> dict[str, Any] | None:
    """The keyword options for ``layer``, or None when it is off."""
    if option is False:
        return None
    if option is True:
        return {}
    if not isinstance(option, Mapping):
        raise ConfigurationError(
            f"{name} must be True, False or a mapping of options for {layer.__name__}, "
            f"not {option!r}"
        )
    accepted = {
        parameter.name
        for parameter in inspect.signature(layer).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(str(key) for key in option if key not in accepted)
    if unknown:
        raise ConfigurationError(
            f"{name}: unknown option(s) {', '.join(unknown)} for {layer.__name__}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    return dict(option)


def _install_json_error_handler(app: Starlette) -> None:
    handlers = app.exception_handlers
    if Exception in handlers or 500 in handlers:
        return
    app.add_exception_handler(Exception, json_server_error_handler)


def _items(value: object) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(item) for item in value]
    raise ConfigurationError(
        f"cors: extra_expose_headers must be a list of header names, not {value!r}"
    )
