"""One cold start, in a fresh process: import a handler module, then invoke it once with an
HTTP API event. ``python -m bench.apps.cold MODULE FD`` writes
``{"import_ms", "invoke_ms", "cpu_ms", "status"}`` as JSON to file descriptor FD.

Timing starts before anything but the standard library's time, os, sys and json is imported.
"""

import time

_started = time.perf_counter()

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


class _Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 1024
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2024/01/01/[$LATEST]bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> None:
    module_name, fd = sys.argv[1], int(sys.argv[2])
    event = json.loads(os.environ["BENCH_EVENT"])
    started = time.perf_counter()
    cpu_started = time.process_time()
    handler = importlib.import_module(module_name).handler
    imported = time.perf_counter()
    answer = handler(event, _Context())
    invoked = time.perf_counter()
    cpu = time.process_time() - cpu_started
    result = {
        "import_ms": (imported - started) * 1000,
        "invoke_ms": (invoked - imported) * 1000,
        "startup_ms": (started - _started) * 1000,
        "cpu_ms": cpu * 1000,
        "status": answer.get("statusCode"),
    }
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
