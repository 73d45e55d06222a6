"""Rate limiting, CORS and request tracing as plain ASGI middleware, the same on AWS Lambda
(through Mangum) and on a local uvicorn."""

from __future__ import annotations

from .client import client_ip
from .cors import CORSMiddleware
from .exceptions import ConfigurationError, StorageError
from .handler import lambda_handler
from .ratelimit.middleware import RateLimitMiddleware
from .ratelimit.policy import Rate
from .ratelimit.storage.dynamodb import DynamoDBStorage
from .ratelimit.storage.memory import MemoryStorage
from .stack import compose
from .tracing import TracingMiddleware

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
