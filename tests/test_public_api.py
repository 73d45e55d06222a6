"""The names users import from the package, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import asgi_lambda_mw

PUBLIC_CONTRACT = {
    "CORSMiddleware",
    "ConfigurationError",
    "DynamoDBStorage",
    "MemoryStorage",
    "Rate",
    "RateLimitMiddleware",
    "StorageError",
    "TracingMiddleware",
    "client_ip",
    "compose",
    "lambda_handler",
}


def test_all_is_sorted() -> None:
    assert asgi_lambda_mw.__all__ == sorted(asgi_lambda_mw.__all__)


def test_all_holds_exactly_the_public_contract() -> None:
    assert set(asgi_lambda_mw.__all__) - {"__version__"} == PUBLIC_CONTRACT


def test_every_public_name_is_importable() -> None:
    for name in asgi_lambda_mw.__all__:
        assert getattr(asgi_lambda_mw, name) is not None


def test_importing_the_package_loads_neither_boto3_nor_botocore() -> None:
    probe = (
        "import sys, asgi_lambda_mw\n"
        "asgi_lambda_mw.MemoryStorage()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore'})\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
