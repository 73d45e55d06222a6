"""The function process of `asgi-lambda watch`, supervised like a Lambda execution environment.

FunctionHost starts the process on demand (a real cold start), with its own Runtime API server
and Lambda's environment variables; delivers invocations through the Runtime API; contains
crashes (the invocation gets a crash outcome, the next one a fresh process) and kills a process
that runs past its deadline, as Lambda does.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ._context import new_request_id, new_trace_id
from ._runtime_api import Invocation, InvocationQueue, Outcome, RuntimeAPIServer

__all__ = ["FunctionHost", "FunctionSettings"]

logger = logging.getLogger("asgi_lambda_mw.local.function")

INIT_TIMEOUT = 10.0
"""Seconds Lambda gives an execution environment to initialise before it gives up."""
_STOP_GRACE = 2.0
_DEADLINE_GRACE = 0.5
_RESTART_PAUSE = 0.2


@dataclass(frozen=True)
class FunctionSettings:
    """How to start the function: the command (runtime loop) and its environment.

    ``command(runtime_api_address)`` builds the argv; ``environment`` is the whole environment
    except AWS_LAMBDA_RUNTIME_API, which the host adds per process.
    """

    command: Callable[[str], Sequence[str]]
    environment: Mapping[str, str]
    function_arn: str
    timeout: float = 30.0
    init_timeout: float = INIT_TIMEOUT
    cwd: str | None = None


@dataclass(frozen=True)
class InvokeResult:
    """An invocation's outcome, with what the request log line reports."""

    outcome: Outcome
    request_id: str
    cold_start: bool
    duration_ms: float


class FunctionHost:
    """One execution environment at a time; invocations queue for it (concurrency 1)."""

    def __init__(
        self, settings: FunctionSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._queue = InvocationQueue()
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._server: RuntimeAPIServer | None = None
        self._init_error: bytes | None = None
        self._stopping = False
        self.starts = 0
        """How many function processes have been started (cold starts)."""

    def invoke(self, payload: bytes, *, trace_id: str | None = None) -> InvokeResult:
        """Run one invocation and wait for its outcome (crash, timeout included)."""
        started = self._clock()
        timeout = self._settings.timeout
        invocation = Invocation(
            request_id=new_request_id(),
            payload=payload,
            trace_id=trace_id or new_trace_id(),
            timeout=timeout,
        )
        ahead = self._queue.submit(invocation)
        self._ensure_running()
        # Those ahead may each take the full timeout; a cold start may take the init timeout.
        if not invocation.dequeued.wait(self._settings.init_timeout + timeout * (ahead + 1)):
            self._queue.withdraw(invocation, Outcome("timeout"))
            if invocation.deadline_ms is None:  # no runtime ever took it
                logger.warning("the function did not take the invocation in time: restarting")
                self.restart()
        elif not invocation.done.wait(timeout + _DEADLINE_GRACE):
            self._queue.withdraw(invocation, Outcome("timeout"))
            if invocation.outcome is not None and invocation.outcome.kind == "timeout":
                # Lambda ends an execution environment that runs past its deadline.
                logger.warning("task timed out after %.2f seconds: restarting", timeout)
                self.restart()
        assert invocation.outcome is not None  # set before done is set
        return InvokeResult(
            invocation.outcome,
            invocation.request_id,
            invocation.cold_start,
            (self._clock() - started) * 1000,
        )

    def restart(self, *, graceful: bool = False) -> None:
        """Stop the current process; the next invocation starts a new one (a cold start).

        ``graceful``: let the invocations it is running finish first (up to the timeout) while
        new ones go to the new process.
        """
        with self._lock:
            process, server = self._process, self._server
            self._process = self._server = None
        if not graceful or server is None:
            self._terminate(process, server)
            return
        server.stop_taking()
        threading.Thread(
            target=self._drain, args=(process, server), name="function-drain", daemon=True
        ).start()

    def _drain(self, process: subprocess.Popen[bytes] | None, server: RuntimeAPIServer) -> None:
        deadline = self._clock() + self._settings.timeout + _DEADLINE_GRACE
        while self._queue.in_flight(owner=server) and self._clock() < deadline:
            time.sleep(0.05)
        self._terminate(process, server)

    def stop(self) -> None:
        """Stop the process and fail whatever is still waiting."""
        self._stopping = True
        self.restart()
        self._queue.fail_all(Outcome("crash", error_type="Runtime.Stopped"))

    def _ensure_running(self) -> None:
        with self._lock:
            if self._stopping or (self._process is not None and self._process.poll() is None):
                return
            if self._server is not None:  # its process has died; its monitor may not know yet
                self._server.close()
            self._start()

    def _start(self) -> None:
        self._init_error = None
        server = RuntimeAPIServer(
            self._queue,
            function_arn=self._settings.function_arn,
            on_init_error=self._record_init_error,
        )
        server.start()
        environment = dict(self._settings.environment)
        environment["AWS_LAMBDA_RUNTIME_API"] = server.address
        argv = list(self._settings.command(server.address))
        logger.debug("starting function process: %s", " ".join(argv))
        process = subprocess.Popen(
            argv,
            env=environment,
            cwd=self._settings.cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches watch, which stops the function itself
        )
        self._process, self._server = process, server
        self.starts += 1
        threading.Thread(
            target=self._watch_process, args=(process, server), name="function-monitor", daemon=True
        ).start()

    def _record_init_error(self, body: bytes) -> None:
        self._init_error = body

    def _watch_process(self, process: subprocess.Popen[bytes], server: RuntimeAPIServer) -> None:
        status = process.wait()
        server_was_current = False
        with self._lock:
            if self._process is process:
                self._process = self._server = None
                server_was_current = True
        if server_was_current:
            server.close()
        if self._stopping:
            return
        crashed = self._queue.fail_in_flight(
            Outcome("crash", error_type="Runtime.ExitError"), owner=server
        )
        if not server.served_invocation and server_was_current:
            # It died initialising: the invocation that started it fails (Lambda's init error).
            self._queue.fail_oldest_pending(
                Outcome("init_error", self._init_error or b"", "Runtime.InitError")
            )
        if server_was_current:
            logger.warning(
                "function process exited with status %s%s",
                _exit_text(status),
                " during an invocation" if crashed else "",
            )
        if self._queue.has_pending():
            time.sleep(_RESTART_PAUSE)  # no hot loop when every start fails
            self._ensure_running()

    @staticmethod
    def _terminate(
        process: subprocess.Popen[bytes] | None, server: RuntimeAPIServer | None
    ) -> None:
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if server is not None:
            server.close()


def _exit_text(status: int) -> str:
    if status < 0:
        try:
            return f"{status} ({signal.Signals(-status).name})"
        except ValueError:
            return str(status)
    return str(status)


def python_command(*module_args: str) -> list[str]:
    """``python -m ...`` with this interpreter."""
    return [sys.executable, "-m", *module_args]
