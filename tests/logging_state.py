"""Logging is global state, and the tracing layer installs handlers on the library's loggers:
tests that read log output start from clean loggers and leave them as they found them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def clean_loggers(*names: str) -> Iterator[list[logging.Logger]]:
    """The named loggers without handlers, propagating, at level NOTSET for the block (the root
    logger, named "", is only saved and restored), and as they were before it afterwards."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:  # earlier tests (any file) may have left handlers or propagate=False
        if logger is not logging.root:
            logger.handlers.clear()
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
    try:
        yield loggers
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:], logger.propagate = handlers, propagate
            logger.setLevel(level)
