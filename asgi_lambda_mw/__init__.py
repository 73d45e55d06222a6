"""Rate limiting, CORS and request tracing as plain ASGI middleware, the same on AWS Lambda
(through Mangum) and on a local uvicorn."""

from __future__ import annotations

from .exceptions import ConfigurationError, StorageError
from .ratelimit.policy import Rate

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Rate",
    "StorageError",
    "__version__",
]
