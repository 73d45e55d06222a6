"""Measure 4, the DynamoDB path. (a) Client CPU per UpdateItem (process CPU time, this process
pinned to CPU 0) against bench/_stub.py answering at once on CPU 1: DynamoDBStorage.hit and our
bare client vs boto3's update_item, and httpx + botocore's SigV4 signer as a reference.
(b) uvicorn with 32 connections, one storage call per request, the stub answering after 5 ms:
DynamoDBStorage vs boto3 in worker threads (anyio.to_thread); the stub's own capacity is measured
with wrk so it is known not to be the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bench import _wrk
from bench._common import (
    PYTHON,
    Row,
    Target,
    alternate,
    bench_env,
    free_port,
    median,
    pinned,
    process,
    row,
    skipped,
    uvicorn_command,
)
from bench.apps.one_route import BENCH_TABLE, UNLIMITED_RATE, update_item_request

_REGION = "us-east-1"


def _stub(port: int, *, delay_ms: float = 0.0, workers: int = 1) -> list[str]:
    return pinned(
        [
            PYTHON,
            "-m",
            "bench._stub",
            "--port",
            str(port),
            "--delay-ms",
            str(delay_ms),
            "--workers",
            str(workers),
        ],
        1,
    )


def _cpu_per_call(
    loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, object]], count: int
) -> float:
    async def block() -> None:
        for _ in range(count):
            await make()

    started = time.process_time()
    loop.run_until_complete(block())
    return (time.process_time() - started) / count * 1e6


def _sync_cpu_per_call(call: Callable[[], object], count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - started) / count * 1e6


def _client_cpu(smoke: bool) -> list[Row]:
    import boto3

    from asgi_lambda_mw import DynamoDBStorage, Rate
    from asgi_lambda_mw._aws.credentials import Credentials, StaticCredentialsProvider
    from asgi_lambda_mw._aws.dynamodb import DynamoDBClient

    count, rounds = (20, 2) if smoke else (500, 10)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    request = update_item_request("ip:198.51.100.23")
    rate = Rate.parse(UNLIMITED_RATE)
    credentials = StaticCredentialsProvider(Credentials("bench", "bench"))
    client = DynamoDBClient(region=_REGION, endpoint_url=endpoint, credentials=credentials)
    storage = DynamoDBStorage(BENCH_TABLE, client=client)
    boto = boto3.client(
        "dynamodb",
        region_name=_REGION,
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    loop = asyncio.new_event_loop()
    httpx_call, httpx_close = _httpx_botocore(endpoint)
    runs: dict[str, Callable[[], float]] = {
        "storage": lambda: _cpu_per_call(
            loop, lambda: storage.hit("ip:198.51.100.23", rate), count
        ),
        "client": lambda: _cpu_per_call(loop, lambda: client.call("UpdateItem", request), count),
        "boto3": lambda: _sync_cpu_per_call(lambda: boto.update_item(**request), count),
        "httpx": lambda: _cpu_per_call(loop, lambda: httpx_call(request), count),
    }
    affinity = os.sched_getaffinity(0)
    with process(_stub(port), port=port):
        try:
            os.sched_setaffinity(0, {0})
            for run in runs.values():  # connections, caches: uncounted
                run()
            results = alternate(list(runs.values()), rounds)
        finally:
            os.sched_setaffinity(0, affinity)
            loop.run_until_complete(client.aclose())
            loop.run_until_complete(httpx_close())
            loop.close()
            boto.close()
    cpu = {name: median(values) for name, values in zip(runs, results, strict=True)}
    note = (
        f"process CPU µs per call, median of {rounds} blocks of {count} in rotation; "
        f"our client alone {cpu['client']:.0f} µs, httpx + botocore signer {cpu['httpx']:.0f} µs"
    )
    return [
        row(
            "DynamoDB client CPU/call: DynamoDBStorage.hit vs boto3 update_item",
            cpu["storage"],
            cpu["boto3"],
            "µs",
            Target(0.30),
            smoke=smoke,
            digits=0,
            note=note,
        ),
        row(
            "DynamoDB client CPU/call: our client.call vs boto3 update_item",
            cpu["client"],
            cpu["boto3"],
            "µs",
            None,
            smoke=smoke,
            digits=0,
        ),
        row(
            "DynamoDB client CPU/call: httpx + botocore SigV4 vs boto3",
            cpu["httpx"],
            cpu["boto3"],
            "µs",
            None,
            smoke=smoke,
            digits=0,
        ),
    ]


def _httpx_botocore(
    endpoint: str,
) -> tuple[
    Callable[[dict[str, Any]], Coroutine[Any, Any, object]],
    Callable[[], Coroutine[Any, Any, None]],
]:
    """The cheap alternative we did not choose: httpx's async client, botocore's signer."""
    import json

    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    signer = SigV4Auth(BotoCredentials("bench", "bench"), "dynamodb", _REGION)
    http = httpx.AsyncClient()

    async def call(request: dict[str, Any]) -> object:
        body = json.dumps(request).encode()
        aws = AWSRequest(
            method="POST",
            url=endpoint + "/",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
            },
        )
        signer.add_auth(aws)
        response = await http.post(endpoint + "/", content=body, headers=dict(aws.headers))
        return response.json()

    return call, http.aclose


def _server(factory: str, port: int, endpoint: str) -> tuple[list[str], dict[str, str]]:
    return uvicorn_command(factory, port), bench_env(AWS_ENDPOINT_URL_DYNAMODB=endpoint)


def _throughput(smoke: bool) -> list[Row]:
    name = "uvicorn c=32, 5 ms DynamoDB: DynamoDBStorage vs boto3 in threads"
    if not _wrk.available():
        return [skipped(name, "wrk is not installed (apt-get install wrk)")]
    seconds, rounds = (1.0, 1) if smoke else (3.0, 5)
    stub_port, lean_port, boto_port = free_port(), free_port(), free_port()
    endpoint = f"http://127.0.0.1:{stub_port}"
    lean_command, env = _server("storage_lean", lean_port, endpoint)
    boto_command, _ = _server("storage_boto3_threads", boto_port, endpoint)
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(_stub(stub_port, delay_ms=5.0), port=stub_port))
        stub_alone = _wrk.requests_per_second(
            endpoint + "/", connections=32, seconds=seconds, post=True
        )
        stub_wide = _wrk.requests_per_second(
            endpoint + "/", connections=128, seconds=seconds, post=True
        )
        stack.enter_context(process(lean_command, port=lean_port, env=env))
        stack.enter_context(process(boto_command, port=boto_port, env=env))
        urls = {
            "lean": f"http://127.0.0.1:{lean_port}/hello/198.51.100.23",
            "boto3": f"http://127.0.0.1:{boto_port}/hello/198.51.100.23",
        }
        rps = _wrk.alternated_requests_per_second(urls, seconds=seconds, rounds=rounds)
    note = (
        f"median req/s of {rounds} wrk runs of {seconds:.0f} s in rotation; the stub alone "
        f"(5 ms, same CPU as wrk) answers {stub_alone:,.0f} req/s at c=32 and "
        f"{stub_wide:,.0f} req/s at c=128"
    )
    return [
        row(
            name,
            rps["lean"],
            rps["boto3"],
            "req/s",
            Target(4.0, at_most=False),
            smoke=smoke,
            digits=0,
            note=note,
        )
    ]


def measure(smoke: bool) -> list[Row]:
    return _client_cpu(smoke) + _throughput(smoke)


if __name__ == "__main__":
    from bench._common import main

    main(measure)
