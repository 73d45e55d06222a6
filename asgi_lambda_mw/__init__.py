"""Rate limiting, CORS and request tracing as plain ASGI middleware, the same on AWS Lambda
(through Mangum) and on a local uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import client_ip
from .cors import CORSMiddleware
from .exceptions import ConfigurationError, StorageError
from .handler import lambda_handler
from .ratelimit.middleware import RateLimitMiddleware
from .ratelimit.policy import Rate
from .ratelimit.storage.memory import MemoryStorage
from .stack import compose
from .tracing import TracingMiddleware

if TYPE_CHECKING:
    from .ratelimit.storage.dynamodb import DynamoDBStorage

__version__ = "0.1.0"

__all__ = [
    "CORSMiddleware",
    "ConfigurationError",
    "DynamoDBStorage",
    "MemoryStorage",
    "Rate",
    "RateLimitMiddleware",
    "StorageError",
    "TracingMiddleware",
    "__version__",
    "client_ip",
    "compose",
    "lambda_handler",
]


def __getattr__(name: str) -> Any:
    # DynamoDBStorage brings the DynamoDB client (SigV4, credentials, HTTP pool: ~3 ms at a cold
    # start), imported on first use so that apps on MemoryStorage or without a table never pay it.
    if name == "DynamoDBStorage":
        from .ratelimit.storage.dynamodb import DynamoDBStorage

        globals()[name] = DynamoDBStorage
        return DynamoDBStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
