"""The Lambda context object and the ids of one invocation, for the local runtimes.

``LocalContext`` carries the members of awslambdaric's context that handlers read, with the
remaining time computed from the invocation's deadline, as on AWS.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MEMORY_MB",
    "LocalContext",
    "function_arn",
    "new_request_id",
    "new_trace_id",
]

DEFAULT_MEMORY_MB = 128
_ACCOUNT_ID = "123456789012"


def new_request_id() -> str:
    """An aws_request_id: a random UUID, as Lambda uses."""
    return str(uuid.uuid4())


def new_trace_id(now: float | None = None) -> str:
    """An X-Ray trace header (``Root=1-<epoch hex>-<96 random bits>;Parent=...;Sampled=0``)."""
    epoch = int(time.time() if now is None else now)
    return f"Root=1-{epoch:08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


def function_arn(function_name: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{_ACCOUNT_ID}:function:{function_name}"


@dataclass(frozen=True)
class LocalContext:
    """What a handler gets as ``context``: ids, function settings and a deadline.

    ``deadline_ms`` is epoch milliseconds; ``clock`` (default ``time.time``) is injectable.
    """

    aws_request_id: str
    deadline_ms: int
    function_name: str
    memory_limit_in_mb: str
    invoked_function_arn: str
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(self.clock() * 1000))

    @classmethod
    def from_environment(
        cls, *, aws_request_id: str, deadline_ms: int, invoked_function_arn: str | None = None
    ) -> LocalContext:
        """A context from the AWS_LAMBDA_* variables of the function's environment."""
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local-function")
        region = os.environ.get("AWS_REGION", "us-east-1")
        return cls(
            aws_request_id=aws_request_id,
            deadline_ms=deadline_ms,
            function_name=name,
            memory_limit_in_mb=os.environ.get(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(DEFAULT_MEMORY_MB)
            ),
            invoked_function_arn=invoked_function_arn or function_arn(name, region),
            function_version=os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            log_group_name=os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}"),
            log_stream_name=os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
        )
