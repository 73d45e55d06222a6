"""Reading settings from environment variables, with errors that name the variable.

Every layer configures itself from the environment when built with no options (what
serverless.yml sets); a bad value stops start-up with a ConfigurationError.
"""

from __future__ import annotations

import os

from .exceptions import ConfigurationError

__all__ = ["env_bool", "env_float", "env_int", "env_list", "env_str"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str) -> str | None:
    """The variable's value stripped of surrounding spaces; None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a boolean: use true or false")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name}={value!r} must be at least {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number") from None
    if number != number or (minimum is not None and number < minimum):  # NaN, or too small
        raise ConfigurationError(f"{name}={value!r} must be a number of at least {minimum}")
    return number


def env_list(name: str) -> list[str] | None:
    """A comma-separated list, items stripped and blanks dropped; None when unset."""
    value = env_str(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]
