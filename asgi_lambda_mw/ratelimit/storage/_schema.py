"""The DynamoDB table the rate limiter counts in: names and the CreateTable arguments.

Shared by DynamoDBStorage (request path), `asgi-lambda table create` and the serverless.yml
tests, so the table they build and the items the storage writes can never disagree.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "COUNT_ATTRIBUTE",
    "DEFAULT_TABLE_NAME",
    "KEY_ATTRIBUTE",
    "PREVIOUS_ATTRIBUTE",
    "TABLE_ENV",
    "TTL_ATTRIBUTE",
    "WINDOW_ATTRIBUTE",
    "create_table_arguments",
]

TABLE_ENV: Final = "RATE_LIMIT_TABLE"
"""The environment variable naming the table (set by serverless.yml)."""
DEFAULT_TABLE_NAME: Final = "asgi-lambda-rate-limit"
"""What `asgi-lambda table create` creates when neither --table nor RATE_LIMIT_TABLE is given."""
KEY_ATTRIBUTE: Final = "pk"
"""The partition key (a string): ``{key}#{policy}#fixed#{window}`` or ``{key}#{policy}#sliding``."""
TTL_ATTRIBUTE: Final = "expires_at"
"""Epoch seconds after which an item counts for nothing; DynamoDB's TTL deletes it later."""
WINDOW_ATTRIBUTE: Final = "win"
"""Sliding items: the index of the window ``cur`` counts (``floor(now / period)``)."""
COUNT_ATTRIBUTE: Final = "cur"
"""The cost admitted in the item's window."""
PREVIOUS_ATTRIBUTE: Final = "prev"
"""Sliding items: the cost admitted in the window before ``win``."""


def create_table_arguments(
    table_name: str, *, key_attribute: str = KEY_ATTRIBUTE
) -> dict[str, Any]:
    """The CreateTable request for a rate-limit table: a string partition key, on demand."""
    return {
        "TableName": table_name,
        "KeySchema": [{"AttributeName": key_attribute, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": key_attribute, "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
