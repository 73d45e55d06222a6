"""SigV4 signing: AWS's published test suite (tests/data/sigv4, see its README), and the lean
DynamoDB signer against botocore's own SigV4Auth on the same UpdateItem request."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from asgi_lambda_mw._aws.credentials import Credentials
from asgi_lambda_mw._aws.http import Endpoint
from asgi_lambda_mw._aws.sigv4 import JsonPostSigner, amz_date, sign

SUITE = Path(__file__).parent / "data" / "sigv4"
SUITE_CREDENTIALS = Credentials(
    "AKIDEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    None,
)
VECTORS = sorted(path.name for path in SUITE.iterdir() if path.is_dir())


def _read(name: str, extension: str) -> str:
    return (SUITE / name / f"{name}.{extension}").read_text(encoding="utf-8")


def _parse_request(text: str) -> tuple[str, str, str, list[tuple[str, str]], bytes]:
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.split("\n")
    method, rest = request_line.split(" ", 1)
    uri = rest.rsplit(" ", 1)[0]
    path, _, query = uri.partition("?")
    headers = []
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.append((name, value))
    return method, path, query, headers, body.encode()


def _suite_signature(name: str) -> tuple[str, str, str]:
    method, path, query, headers, body = _parse_request(_read(name, "req"))
    timestamp = next(value for key, value in headers if key.lower() == "x-amz-date")
    signed = sign(
        method=method,
        path=path,
        query=query,
        # Content-Length is never signed here, as in botocore (see the README's erratum)
        headers=[(key, value) for key, value in headers if key.lower() != "content-length"],
        body=body,
        credentials=SUITE_CREDENTIALS,
        region="us-east-1",
        service="service",
        timestamp=timestamp,
    )
    return signed.canonical_request, signed.string_to_sign, signed.authorization


def _published_canonical_request(name: str) -> str:
    creq = _read(name, "creq")
    if name == "post-x-www-form-urlencoded":
        # Erratum: this .creq lists content-length, but its .sts hashes the request without it.
        creq = creq.replace("content-length:13\n", "").replace("content-length;", "")
    return creq


def test_the_suite_vectors_are_vendored() -> None:
    assert {"get-vanilla", "post-vanilla", "post-sts-header-before"} <= set(VECTORS)
    assert len(VECTORS) >= 10


@pytest.mark.parametrize("name", VECTORS)
def test_canonical_request_matches_the_aws_suite(name: str) -> None:
    canonical_request, _, _ = _suite_signature(name)
    assert canonical_request == _published_canonical_request(name)


@pytest.mark.parametrize("name", VECTORS)
def test_string_to_sign_matches_the_aws_suite(name: str) -> None:
    _, string_to_sign, _ = _suite_signature(name)
    assert string_to_sign == _read(name, "sts")


@pytest.mark.parametrize("name", VECTORS)
def test_authorization_header_matches_the_aws_suite(name: str) -> None:
    _, _, authorization = _suite_signature(name)
    assert authorization == _read(name, "authz")


UPDATE_ITEM = {
    "TableName": "rate-limits",
    "Key": {"pk": {"S": "ip#203.0.113.7"}, "sk": {"S": "100/60"}},
    "UpdateExpression": "ADD #c :one SET #e = :exp",
    "ConditionExpression": "attribute_not_exists(#c) OR #c < :limit",
    "ExpressionAttributeNames": {"#c": "count", "#e": "expires"},
    "ExpressionAttributeValues": {
        ":one": {"N": "1"},
        ":exp": {"N": "1716000000"},
        ":limit": {"N": "100"},
    },
    "ReturnValues": "ALL_NEW",
}
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+EXAMPLE/TOKEN+value=="


def _botocore_headers(
    url: str, body: bytes, credentials: Credentials, when: datetime.datetime, region: str
) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: when)
        botocore.auth.SigV4Auth(
            BotocoreCredentials(credentials.access_key, credentials.secret_key, credentials.token),
            "dynamodb",
            region,
        ).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("token", [None, TOKEN], ids=["long-term-keys", "session-token"])
@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://dynamodb.eu-west-1.amazonaws.com", "eu-west-1"),
        ("http://127.0.0.1:8000", "us-east-1"),
        ("http://LocalHost:80", "us-east-1"),
    ],
)
def test_update_item_headers_are_identical_to_botocores(
    token: str | None, url: str, region: str
) -> None:
    credentials = Credentials(
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token
    )
    when = datetime.datetime(2024, 5, 17, 9, 30, 12)
    body = json.dumps(UPDATE_ITEM, separators=(",", ":")).encode()
    signer = JsonPostSigner(
        host=Endpoint.parse(url).host_header,
        region=region,
        service="dynamodb",
        content_type="application/x-amz-json-1.0",
        clock=lambda: when.replace(tzinfo=datetime.UTC).timestamp(),
    )

    ours = dict(signer.headers(credentials, "DynamoDB_20120810.UpdateItem", body))

    assert ours == _botocore_headers(url, body, credentials, when, region)


def test_a_new_day_is_signed_with_that_days_key() -> None:
    credentials = Credentials("AKIAIOSFODNN7EXAMPLE", "secret-one", None)
    clock_times = [datetime.datetime(2024, 5, 17, 23, 59, 59), datetime.datetime(2024, 5, 18)]
    now = iter(clock_times)
    signer = JsonPostSigner(
        host="dynamodb.us-east-1.amazonaws.com",
        region="us-east-1",
        service="dynamodb",
        content_type="application/x-amz-json-1.0",
        clock=lambda: next(now).replace(tzinfo=datetime.UTC).timestamp(),
    )
    url = "https://dynamodb.us-east-1.amazonaws.com"
    for when in clock_times:
        ours = dict(signer.headers(credentials, "DynamoDB_20120810.UpdateItem", b"{}"))
        assert ours == _botocore_headers(url, b"{}", credentials, when, "us-east-1")


def test_rotated_secret_is_used_at_once() -> None:
    when = datetime.datetime(2024, 5, 17, 9, 30, 12)
    signer = JsonPostSigner(
        host="dynamodb.us-east-1.amazonaws.com",
        region="us-east-1",
        service="dynamodb",
        content_type="application/x-amz-json-1.0",
        clock=lambda: when.replace(tzinfo=datetime.UTC).timestamp(),
    )
    url = "https://dynamodb.us-east-1.amazonaws.com"
    for secret in ("secret-before-rotation", "secret-after-rotation"):
        credentials = Credentials("ASIAEXAMPLE", secret, TOKEN)
        ours = dict(signer.headers(credentials, "DynamoDB_20120810.UpdateItem", b"{}"))
        assert ours == _botocore_headers(url, b"{}", credentials, when, "us-east-1")


def test_amz_date_is_utc_basic_format() -> None:
    assert amz_date(1440938160.0) == "20150830T123600Z"


def test_credentials_repr_hides_the_secret_and_token() -> None:
    text = repr(Credentials("AKIDEXAMPLE", "very-secret", "session-token"))
    assert "AKIDEXAMPLE" in text
    assert "very-secret" not in text
    assert "session-token" not in text
