"""`asgi-lambda watch --dynamodb embedded`: a DynamoDB-compatible server inside the watch process.

moto's ThreadedMotoServer on 127.0.0.1 (moto is a development dependency: a clear error when it
is missing), with the rate-limit table created by `asgi-lambda table create`'s own code.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["EmbeddedDynamoDB", "MotoMissing", "embedded_dynamodb"]

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class MotoMissing(RuntimeError):
    """moto (with its server extra) is not installed."""


@dataclass(frozen=True)
class EmbeddedDynamoDB:
    """Where the embedded server listens and which table it holds."""

    endpoint_url: str
    table_name: str
    region: str


@contextlib.contextmanager
def embedded_dynamodb(*, table_name: str, region: str) -> Iterator[EmbeddedDynamoDB]:
    """Run moto's server on a free loopback port with ``table_name`` created; stop it on exit."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise MotoMissing(
            "--dynamodb embedded needs moto's server: pip install 'moto[server]' "
            "(it is in the dev extra: pip install 'asgi-lambda-mw[dev]')"
        ) from None
    from ..cli.table import create_table

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        saved = {name: os.environ.get(name) for name in DUMMY_CREDENTIALS}
        os.environ.update(DUMMY_CREDENTIALS)  # boto3 needs some; moto accepts any
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # create_table's progress lines
                create_table(table_name, region=region, endpoint_url=endpoint)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        yield EmbeddedDynamoDB(endpoint, table_name, region)
    finally:
        server.stop()
