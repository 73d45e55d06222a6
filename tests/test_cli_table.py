"""`asgi-lambda table create` against moto and dynalite on loopback: the table the storage
needs, safe to run twice, and one-line errors instead of tracebacks."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from asgi_lambda_mw import __version__
from asgi_lambda_mw.cli import main

SCRIPT = Path(sys.executable).parent / "asgi-lambda"


def _table_name() -> str:
    return f"rate-limit-{uuid.uuid4().hex[:12]}"


def _dynamodb(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A loopback port nothing listens on (held bound, never listening, during the test)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


def test_creates_an_on_demand_table_keyed_by_pk(moto_endpoint: str) -> None:
    table = _table_name()

    status = main(["table", "create", "--table", table, "--endpoint-url", moto_endpoint])

    description = _dynamodb(moto_endpoint).describe_table(TableName=table)["Table"]
    assert status == 0
    assert description["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert description["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_enables_ttl_on_expires_at(moto_endpoint: str) -> None:
    table = _table_name()

    main(["table", "create", "--table", table, "--endpoint-url", moto_endpoint])

    ttl = _dynamodb(moto_endpoint).describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_running_twice_reports_the_existing_table(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _table_name()
    main(["table", "create", "--table", table, "--endpoint-url", moto_endpoint])
    capsys.readouterr()

    status = main(["table", "create", "--table", table, "--endpoint-url", moto_endpoint])

    out = capsys.readouterr().out
    assert status == 0
    assert f"table {table} already exists" in out
    assert "TTL already enabled on expires_at" in out


def test_existing_table_with_another_key_schema_exits_1(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _table_name()
    _dynamodb(moto_endpoint).create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    status = main(["table", "create", "--table", table, "--endpoint-url", moto_endpoint])

    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1
    assert f"table {table} exists with key schema [id (S, HASH)]" in err


def test_table_and_endpoint_come_from_the_environment(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _table_name()
    monkeypatch.setenv("RATE_LIMIT_TABLE", table)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)

    assert main(["table", "create"]) == 0

    assert _dynamodb(moto_endpoint).describe_table(TableName=table)["Table"]["TableName"] == table


def test_generic_aws_endpoint_url_is_honoured(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _table_name()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)

    assert main(["table", "create", "--table", table]) == 0

    assert _dynamodb(moto_endpoint).describe_table(TableName=table)["Table"]["TableName"] == table


def test_region_comes_from_the_option(moto_endpoint: str) -> None:
    table = _table_name()

    args = ["table", "create", "--table", table, "--region", "eu-west-1"]
    status = main([*args, "--endpoint-url", moto_endpoint])

    eu = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="eu-west-1")
    assert status == 0
    assert eu.describe_table(TableName=table)["Table"]["TableName"] == table


@pytest.mark.dynalite
def test_server_without_ttl_support_warns_and_succeeds(
    dynalite_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _table_name()

    status = main(["table", "create", "--table", table, "--endpoint-url", dynalite_endpoint])

    err = capsys.readouterr().err
    assert status == 0
    assert "warning: the server does not support TTL" in err
    assert _dynamodb(dynalite_endpoint).describe_table(TableName=table)["Table"]["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}
    ]


def test_unreachable_endpoint_is_a_one_line_error(
    unused_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{unused_port}"

    status = main(["table", "create", "--table", _table_name(), "--endpoint-url", endpoint])

    err = capsys.readouterr().err
    assert status == 1
    assert err == f"asgi-lambda: error: cannot reach DynamoDB at {endpoint}/\n"


def test_invalid_region_is_a_one_line_error(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["table", "create", "--region", "not a region", "--endpoint-url", moto_endpoint]

    status = main(args)

    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("asgi-lambda: error: ") and err.count("\n") == 1
    assert "not a region" in err


def test_missing_region_names_the_settings(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_REGION")

    status = main(["table", "create", "--endpoint-url", moto_endpoint])

    assert status == 1
    assert capsys.readouterr().err == (
        "asgi-lambda: error: no AWS region: pass --region or set AWS_REGION\n"
    )


def test_no_subcommand_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "table" in capsys.readouterr().err


def test_table_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table"]) == 2
    assert "usage: asgi-lambda table" in capsys.readouterr().err


def test_installed_script_creates_the_table(moto_endpoint: str) -> None:
    table = _table_name()

    result = subprocess.run(
        [str(SCRIPT), "table", "create", "--table", table, "--endpoint-url", moto_endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert f"creating table {table}" in result.stdout
    assert _dynamodb(moto_endpoint).describe_table(TableName=table)["Table"]["TableName"] == table


def test_installed_script_help_lists_the_subcommands() -> None:
    result = subprocess.run(
        [str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0
    assert "table" in result.stdout and "commands:" in result.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"asgi-lambda {__version__}\n"
