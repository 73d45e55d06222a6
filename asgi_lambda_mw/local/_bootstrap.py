"""The function process of `asgi-lambda watch`: a small Lambda runtime loop over the Runtime API.

``python -m asgi_lambda_mw.local._bootstrap MODULE:HANDLER`` with AWS_LAMBDA_RUNTIME_API set:
import the handler (reporting failures to /runtime/init/error, then exiting), then forever fetch
the next invocation, call the handler and post its answer or error, as AWS's own runtime does.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import traceback
from typing import Any

from ._context import LocalContext
from ._handler_ref import HandlerImportError, HandlerRef, load_handler

__all__ = ["main"]

_API = "/2018-06-01/runtime"


class _RuntimeClient:
    """The Runtime API over one keep-alive connection (stdlib only: this runs on every start)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._connection = http.client.HTTPConnection(host, int(port))

    def next(self) -> tuple[str, dict[str, str], bytes] | None:
        """The next invocation, or None when the Runtime API no longer serves this process."""
        try:
            response = self._request("GET", f"{_API}/invocation/next")
        except (OSError, http.client.HTTPException):
            return None
        if response.status != 200:
            return None
        headers = {name.lower(): value for name, value in response.getheaders()}
        return headers["lambda-runtime-aws-request-id"], headers, response.read()

    def respond(self, request_id: str, payload: bytes) -> None:
        self._request("POST", f"{_API}/invocation/{request_id}/response", payload).read()

    def fail(self, request_id: str, error: dict[str, Any]) -> None:
        self._post_error(f"{_API}/invocation/{request_id}/error", error)

    def fail_init(self, error: dict[str, Any]) -> None:
        self._post_error(f"{_API}/init/error", error)

    def _post_error(self, path: str, error: dict[str, Any]) -> None:
        body = json.dumps(error).encode()
        headers = {"Lambda-Runtime-Function-Error-Type": str(error["errorType"])}
        self._request("POST", path, body, headers).read()

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        self._connection.request(method, path, body=body, headers=headers or {})
        return self._connection.getresponse()


def _error_document(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m asgi_lambda_mw.local._bootstrap MODULE:HANDLER", file=sys.stderr)
        return 2
    client = _RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    try:
        handler = load_handler(HandlerRef.parse(args[0]))
    except HandlerImportError as error:
        cause = error.__cause__ or error
        traceback.print_exception(cause, file=sys.stderr)
        client.fail_init(_error_document(error, "Runtime.ImportModuleError"))
        return 1
    while (invocation := client.next()) is not None:
        request_id, headers, payload = invocation
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        context = LocalContext.from_environment(
            aws_request_id=request_id,
            deadline_ms=int(headers["lambda-runtime-deadline-ms"]),
            invoked_function_arn=headers.get("lambda-runtime-invoked-function-arn"),
        )
        try:
            answer = handler(json.loads(payload), context)
            result = json.dumps(answer).encode()
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            client.fail(request_id, _error_document(error))
            continue
        client.respond(request_id, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
