"""Measure 5, a flood: 10 000 requests from one client through one Lambda handler instance
(the whole stack, 100/minute, DynamoDBStorage on moto's server behind a counting proxy). The
deny cache should answer the refused requests without a storage call: at most 101 calls
(100 admitted, one refused). The run starts 1 s into a window (the storage's clock is shifted,
time still flows) and ends well within it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import time
from collections import Counter

from bench._common import Context, Row, http_api_event, quiet_stdout
from bench._counting_proxy import CountingProxy
from bench.apps.one_route import ORIGIN, build_app

_TABLE = "bench-flood"
_REGION = "us-east-1"


def measure(smoke: bool) -> list[Row]:
    from moto.server import ThreadedMotoServer

    from asgi_lambda_mw import DynamoDBStorage, compose, lambda_handler
    from asgi_lambda_mw.cli.table import create_table

    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)  # moto accepts any
    requests, limit, period = (300, 10, 60) if smoke else (10_000, 100, 60)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        with contextlib.redirect_stdout(io.StringIO()):
            create_table(_TABLE, region=_REGION, endpoint_url=f"http://{host}:{port}")
        with CountingProxy(port) as proxy:
            shift = time.time() % period - 1.0
            storage = DynamoDBStorage(
                _TABLE,
                region=_REGION,
                endpoint_url=f"http://127.0.0.1:{proxy.port}",
                clock=lambda: time.time() - shift,
            )
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            handler = lambda_handler(
                compose(
                    build_app(),
                    rate_limit={"rate": f"{limit}/minute", "storage": storage},
                    cors={"allow_origins": [ORIGIN]},
                )
            )
            event, context = http_api_event(), Context()
            started = time.perf_counter()
            with quiet_stdout():
                statuses = Counter(handler(event, context)["statusCode"] for _ in range(requests))
            elapsed = time.perf_counter() - started
            calls = proxy.count
            handler.shutdown()
            loop.run_until_complete(storage.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            # Cancels the pool's keeper task, as asyncio.run would.
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
    finally:
        moto.stop()
    if elapsed > period - 2:
        raise RuntimeError(f"the flood took {elapsed:.0f} s, longer than one window")
    bound = limit + 1
    return [
        Row(
            measure=f"flood: {requests:,} requests from one client at {limit}/minute",
            a=f"{calls} storage calls",
            b=f"{requests:,} requests",
            ratio=calls / requests,
            target=f"calls <= {bound}",
            verdict="-" if smoke else ("PASS" if calls <= bound else "MISS"),
            note=(
                f"answers: {dict(sorted(statuses.items()))} in {elapsed:.1f} s; calls counted at "
                "a proxy in front of moto's server"
            ),
        )
    ]


if __name__ == "__main__":
    from bench._common import main

    main(measure)
