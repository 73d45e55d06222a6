"""Type aliases shared by every layer: ASGI callables, Lambda events and the Lambda context.

The context is a Protocol so the library never depends on boto or awslambdaric types.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "LambdaContext", "LambdaEvent", "Message", "Receive", "Scope", "Send"]

LambdaEvent = dict[str, Any]


class LambdaContext(Protocol):
    """The members of AWS's Lambda context object that this library reads."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int | str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str

    def get_remaining_time_in_millis(self) -> int: ...
