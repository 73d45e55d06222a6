"""`asgi-lambda watch --reload`: notice changed Python files by polling their modification times.

No file-watching dependency: a scan of the ``.py`` files under the project directory (skipping
virtualenvs, caches and hidden directories) every ``interval`` seconds is cheap enough locally.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["SourceWatcher", "snapshot"]

logger = logging.getLogger("asgi_lambda_mw.local.reload")

_SKIPPED_DIRECTORIES = frozenset(
    {"__pycache__", "node_modules", "venv", "site-packages", "build", "dist"}
)

Snapshot = dict[str, int]


def snapshot(root: Path) -> Snapshot:
    """Path -> modification time (ns) of every ``.py`` file under ``root``."""
    found: Snapshot = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [
            name
            for name in subdirectories
            if not name.startswith(".") and name not in _SKIPPED_DIRECTORIES
        ]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except OSError:  # removed between listing and stat
                    continue
    return found


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots, sorted."""
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


class SourceWatcher:
    """Calls ``on_change(paths)`` from a daemon thread when ``.py`` files under ``root`` change."""

    def __init__(
        self,
        root: Path,
        on_change: Callable[[list[str]], None],
        *,
        interval: float = 0.5,
    ) -> None:
        self._root = root
        self._on_change = on_change
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        current = snapshot(self._root)
        while not self._stop.wait(self._interval):
            latest = snapshot(self._root)
            changes = changed_files(current, latest)
            current = latest
            if changes:
                try:
                    self._on_change(changes)
                except Exception:
                    logger.exception("reload failed")
