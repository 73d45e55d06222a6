"""`asgi-lambda table create`: the DynamoDB table DynamoDBStorage counts in.

Built with boto3 (imported only when the command runs; it is not on the request path), from the
schema in ``ratelimit.storage._schema``; safe to run again on every deploy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._env import env_str
from ..ratelimit.storage._schema import (
    DEFAULT_TABLE_NAME,
    KEY_ATTRIBUTE,
    TABLE_ENV,
    TTL_ATTRIBUTE,
    create_table_arguments,
)
from . import CommandError

__all__ = ["create_table", "register"]

# Operations a DynamoDB look-alike may not implement (dynalite has no TTL support).
_UNSUPPORTED_CODES = {"UnknownOperationException", "UnrecognizedClientException", "NotImplemented"}
# Fail fast on a wrong endpoint instead of botocore's default backoff.
_CONNECT_TIMEOUT = 5.0
_READ_TIMEOUT = 20.0
_MAX_ATTEMPTS = 3
# A new on-demand table is usually ACTIVE within seconds; give up after five minutes.
_WAIT_DELAY = 2
_WAIT_ATTEMPTS = 150
_SCHEMA_TEXT = f"partition key {KEY_ATTRIBUTE} (S), on-demand"


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``table create`` to the ``asgi-lambda`` parser."""
    table = subcommands.add_parser(
        "table",
        help="manage the rate-limit DynamoDB table",
        description="Manage the DynamoDB table the rate limiter counts in.",
    )
    actions = table.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create the table (idempotent) and enable TTL on it",
        description=(
            f"Create the rate-limit table: partition key '{KEY_ATTRIBUTE}' (string), on-demand "
            f"billing, TTL on '{TTL_ATTRIBUTE}'. An existing table with that key is left as it is."
        ),
    )
    create.add_argument(
        "--table",
        metavar="NAME",
        help=f"table name (default: ${TABLE_ENV}, else {DEFAULT_TABLE_NAME})",
    )
    create.add_argument("--region", metavar="REGION", help="AWS region (default: $AWS_REGION)")
    create.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="DynamoDB endpoint (default: $AWS_ENDPOINT_URL_DYNAMODB, else $AWS_ENDPOINT_URL)",
    )
    create.set_defaults(command=_create_command)


def _create_command(args: argparse.Namespace) -> int:
    table_name = args.table or env_str(TABLE_ENV) or DEFAULT_TABLE_NAME
    endpoint_url = (
        args.endpoint_url or env_str("AWS_ENDPOINT_URL_DYNAMODB") or env_str("AWS_ENDPOINT_URL")
    )
    create_table(table_name, region=args.region or env_str("AWS_REGION"), endpoint_url=endpoint_url)
    return 0


def create_table(
    table_name: str, *, region: str | None = None, endpoint_url: str | None = None
) -> None:
    """Create ``table_name`` if missing, wait until it is active and enable TTL on it.

    Progress goes to stdout, warnings to stderr; raises CommandError when the table cannot be
    created or exists with another key schema.
    """
    import botocore.exceptions

    try:
        client = _dynamodb_client(region, endpoint_url)
        existing = _describe(client, table_name)
        if existing is None:
            client.create_table(**create_table_arguments(table_name))
            print(f"creating table {table_name} ({_SCHEMA_TEXT})")
        else:
            _check_key_schema(table_name, existing)
            print(f"table {table_name} already exists ({_SCHEMA_TEXT})")
        client.get_waiter("table_exists").wait(
            TableName=table_name, WaiterConfig={"Delay": _WAIT_DELAY, "MaxAttempts": _WAIT_ATTEMPTS}
        )
        _enable_ttl(client, table_name)
    except botocore.exceptions.NoRegionError:
        raise CommandError("no AWS region: pass --region or set AWS_REGION") from None
    except botocore.exceptions.NoCredentialsError:
        raise CommandError(
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        ) from None
    except botocore.exceptions.EndpointConnectionError as error:
        raise CommandError(f"cannot reach DynamoDB at {error.kwargs['endpoint_url']}") from None
    except botocore.exceptions.ClientError as error:
        raise CommandError(f"table {table_name}: {_client_error_text(error)}") from None
    except botocore.exceptions.WaiterError as error:
        raise CommandError(f"table {table_name} did not become active: {error}") from None
    except (botocore.exceptions.BotoCoreError, ValueError) as error:
        # Invalid region or endpoint URL, connection dropped, parameter validation.
        raise CommandError(_one_line(str(error))) from None


# boto3's DynamoDB client, untyped: its stubs (mypy-boto3-dynamodb) are an optional extra.
_DynamoDB = Any


def _dynamodb_client(region: str | None, endpoint_url: str | None) -> _DynamoDB:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": _MAX_ATTEMPTS},
    )
    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url, config=config)


def _describe(client: _DynamoDB, table_name: str) -> dict[str, Any] | None:
    try:
        table: dict[str, Any] = client.describe_table(TableName=table_name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        return None
    return table


def _check_key_schema(table_name: str, table: dict[str, Any]) -> None:
    key_schema = [(key["AttributeName"], key["KeyType"]) for key in table.get("KeySchema", [])]
    types = {
        attribute["AttributeName"]: attribute["AttributeType"]
        for attribute in table.get("AttributeDefinitions", [])
    }
    if key_schema != [(KEY_ATTRIBUTE, "HASH")] or types.get(KEY_ATTRIBUTE) != "S":
        found = ", ".join(f"{name} ({types.get(name, '?')}, {kind})" for name, kind in key_schema)
        raise CommandError(
            f"table {table_name} exists with key schema [{found}]; the rate limiter needs only a "
            f"string partition key named {KEY_ATTRIBUTE}: use another --table name"
        )


def _enable_ttl(client: _DynamoDB, table_name: str) -> None:
    import botocore.exceptions

    try:
        current = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        status, attribute = current.get("TimeToLiveStatus"), current.get("AttributeName")
        if status in {"ENABLED", "ENABLING"} and attribute == TTL_ATTRIBUTE:
            print(f"TTL already enabled on {TTL_ATTRIBUTE}")
            return
        if status in {"ENABLED", "ENABLING"}:
            _warn(
                f"TTL on table {table_name} is enabled on {attribute}, not {TTL_ATTRIBUTE}: "
                "expired counters will not be deleted (they still count for nothing)"
            )
            return
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in _UNSUPPORTED_CODES:
            raise
        _warn(
            f"the server does not support TTL ({_client_error_text(error)}); expired counters "
            "will not be deleted (they still count for nothing)"
        )
        return
    print(f"enabled TTL on {TTL_ATTRIBUTE}")


def _client_error_text(error: Any) -> str:
    details = error.response.get("Error", {})
    code = details.get("Code", "error")
    message = details.get("Message")
    return _one_line(f"{code}: {message}" if message else code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _warn(message: str) -> None:
    print(f"asgi-lambda: warning: {message}", file=sys.stderr)
