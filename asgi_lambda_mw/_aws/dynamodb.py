"""The lean async DynamoDB client behind DynamoDBStorage: one signed JSON POST per operation over
the keep-alive pool of _aws.http, with retries (full-jitter backoff) bounded by a deadline, and
DynamoDB's error bodies turned into DynamoDBError. No boto3 or botocore on this path."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._env import env_str
from ..exceptions import ConfigurationError, StorageError
from .credentials import CredentialsProvider, default_credentials
from .http import ConnectionPool, Endpoint, HTTPError, RequestTimeout, Response
from .sigv4 import JsonPostSigner

__all__ = ["ConditionalCheckFailed", "DynamoDBClient", "DynamoDBError"]

logger = logging.getLogger("asgi_lambda_mw.aws")

_CONTENT_TYPE = "application/x-amz-json-1.0"
_TARGET_PREFIX = "DynamoDB_20120810."
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_REGION = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
_OPERATION = re.compile(r"[A-Za-z]+")
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


class DynamoDBError(StorageError):
    """DynamoDB answered with an error, or could not be reached.

    ``code`` is DynamoDB's error type without its namespace (``ResourceNotFoundException``), or
    ``ConnectionError`` / ``Timeout`` when there was no response; ``status`` is the HTTP status,
    None without a response. ``retryable`` is True for throttling, 5xx, connection failures and
    timeouts.
    """

    def __init__(
        self, message: str, *, code: str, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.code = code
        self.status = status


class ConditionalCheckFailed(DynamoDBError):
    """A ConditionExpression was false. ``item`` is the item as it was (DynamoDB JSON) when the
    request asked for it with ReturnValuesOnConditionCheckFailure=ALL_OLD, else None."""

    def __init__(
        self, message: str, *, status: int | None = 400, item: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, code="ConditionalCheckFailedException", status=status)
        self.item = item


def _error_from(response: Response) -> DynamoDBError:
    status = response.status
    try:
        data = _loads(response.body) if response.body else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    error_type = data.get("__type") or response.headers.get("x-amzn-errortype") or ""
    # "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", or "Name:http://..."
    code = str(error_type).rpartition("#")[2].partition(":")[0] or f"HTTP{status}"
    message = data.get("message") or data.get("Message")
    if not message:
        message = response.body[:200].decode("utf-8", "replace") or f"HTTP status {status}"
    if code == "ConditionalCheckFailedException":
        item = data.get("Item")
        return ConditionalCheckFailed(
            f"{code}: {message}", status=status, item=item if isinstance(item, dict) else None
        )
    retryable = code in _RETRYABLE_CODES or status >= 500
    return DynamoDBError(f"{code}: {message}", code=code, status=status, retryable=retryable)


def _endpoint(url: str, setting: str) -> Endpoint:
    try:
        return Endpoint.parse(url)
    except ValueError as exc:
        raise ConfigurationError(f"{setting}={url!r} is not a usable endpoint URL: {exc}") from None


class DynamoDBClient:
    """Calls DynamoDB's JSON API (``call("UpdateItem", {...})``) and returns the decoded answer.

    Safe to share between concurrent requests, and across event loops: connections follow the
    running loop. Each attempt is signed anew; retryable failures are retried up to
    ``max_attempts`` times in all, with full-jitter exponential backoff.
    """

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        credentials: CredentialsProvider | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 1.0,
        max_idle_connections: int = 32,
        backoff_base: float = 0.025,
        backoff_cap: float = 0.25,
        random_source: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Options, with their defaults:

        - ``region``: the AWS region, e.g. ``us-east-1`` (required).
        - ``endpoint_url``: default ``https://dynamodb.{region}.amazonaws.com``.
        - ``credentials``: default ``default_credentials()`` (environment, then botocore's chain).
        - ``max_attempts``: tries per call in all, default 3.
        - ``connect_timeout``: seconds to set up a connection, default 1.0.
        - ``max_idle_connections``: kept-alive connections per event loop, default 32.
        - ``backoff_base`` / ``backoff_cap``: seconds; the n-th retry waits
          ``random_source() * min(cap, base * 2**(n-1))``, default 0.025 / 0.25.
        - ``random_source``, ``sleep``, ``clock``: injectable for tests (random.random,
          asyncio.sleep, time.time for the signature's timestamp).
        """
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            raise ConfigurationError(f"region={region!r} is not an AWS region name")
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts={max_attempts!r} must be at least 1")
        if not connect_timeout > 0:
            raise ConfigurationError(f"connect_timeout={connect_timeout!r} must be positive")
        if max_idle_connections < 0:
            raise ConfigurationError(
                f"max_idle_connections={max_idle_connections!r} must be at least 0"
            )
        if not (backoff_base >= 0 and backoff_cap >= 0):
            raise ConfigurationError("backoff_base and backoff_cap must be at least 0")
        endpoint = _endpoint(
            endpoint_url or f"https://dynamodb.{region}.amazonaws.com", "endpoint_url"
        )
        self.region = region
        self.endpoint_url = endpoint.url
        self._credentials = credentials if credentials is not None else default_credentials()
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._random = random_source
        self._sleep = sleep
        self._signer = JsonPostSigner(
            host=endpoint.host_header,
            region=region,
            service="dynamodb",
            content_type=_CONTENT_TYPE,
            clock=clock,
        )
        self._pool = ConnectionPool(
            endpoint, connect_timeout=connect_timeout, max_idle_connections=max_idle_connections
        )
        self._targets: dict[str, str] = {}

    @classmethod
    def from_environment(
        cls, *, region: str | None = None, endpoint_url: str | None = None, **options: Any
    ) -> DynamoDBClient:
        """Region from the argument, AWS_REGION or AWS_DEFAULT_REGION; endpoint from the
        argument, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, or AWS's regional endpoint."""
        if region is None:
            region = env_str("AWS_REGION") or env_str("AWS_DEFAULT_REGION")
            if region is None:
                raise ConfigurationError(
                    "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or pass region="
                )
            if not _REGION.fullmatch(region):
                raise ConfigurationError(f"AWS_REGION={region!r} is not an AWS region name")
        if endpoint_url is None:
            for name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"):
                endpoint_url = env_str(name)
                if endpoint_url is not None:
                    _endpoint(endpoint_url, name)  # so a bad value names its variable
                    break
        return cls(region=region, endpoint_url=endpoint_url, **options)

    def _target(self, operation: str) -> str:
        target = self._targets.get(operation)
        if target is None:
            if not _OPERATION.fullmatch(operation):
                raise ValueError(f"{operation!r} is not a DynamoDB operation name")
            target = self._targets[operation] = _TARGET_PREFIX + operation
        return target

    async def call(
        self, operation: str, payload: Mapping[str, Any], *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Run one operation (``"UpdateItem"``, ``"GetItem"``, ...) with its request payload in
        DynamoDB JSON, and return the decoded response.

        ``deadline`` is a time.monotonic() instant: an attempt still running then fails with
        DynamoDBError(code="Timeout"), and no retry starts whose backoff would pass it.
        Raises DynamoDBError (ConditionalCheckFailed for a false ConditionExpression), or
        StorageError when no credentials can be found.
        """
        target = self._target(operation)
        body = _dumps(payload).encode()
        attempt = 1
        while True:
            try:
                return await self._attempt(target, body, deadline)
            except DynamoDBError as error:
                if not error.retryable or attempt >= self._max_attempts:
                    raise
                ceiling = min(self._backoff_cap, self._backoff_base * (1 << (attempt - 1)))
                delay = self._random() * ceiling
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise
                logger.debug(
                    "dynamodb %s failed (%s), retry %d in %.3f s",
                    operation,
                    error.code,
                    attempt,
                    delay,
                    extra={"operation": operation, "code": error.code, "attempt": attempt},
                )
                await self._sleep(delay)
                attempt += 1

    async def _attempt(self, target: str, body: bytes, deadline: float | None) -> dict[str, Any]:
        credentials = await self._credentials.get()
        headers = self._signer.headers(credentials, target, body)
        try:
            response = await self._pool.request("POST", "/", headers, body, deadline=deadline)
        except RequestTimeout as exc:
            raise DynamoDBError(str(exc), code="Timeout", retryable=True) from exc
        except HTTPError as exc:
            raise DynamoDBError(str(exc), code="ConnectionError", retryable=True) from exc
        if response.status != 200:
            raise _error_from(response)
        try:
            result = _loads(response.body)
        except ValueError:
            result = None
        if not isinstance(result, dict):
            # not retried: the operation did happen, and repeating an UpdateItem counts twice
            raise DynamoDBError(
                f"DynamoDB answered 200 with a body that is not a JSON object: "
                f"{response.body[:100]!r}",
                code="InvalidResponse",
                status=200,
            )
        return result

    async def aclose(self) -> None:
        """Close idle connections; the client may be used again afterwards."""
        await self._pool.aclose()
