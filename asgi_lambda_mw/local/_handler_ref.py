"""``MODULE:HANDLER`` references: parsing, importing, and the dotted form awslambdaric expects.

The current directory is importable, like Lambda's task root, so ``demo_app.main:handler`` works
from a project checkout without installing it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["HandlerImportError", "HandlerRef", "load_handler"]


class HandlerImportError(Exception):
    """The handler reference is malformed, its module fails to import, or the name is missing."""


@dataclass(frozen=True)
class HandlerRef:
    """A handler as ``module`` and ``attribute``, from ``pkg.mod:name`` or ``pkg.mod.name``."""

    module: str
    attribute: str

    @classmethod
    def parse(cls, text: str) -> HandlerRef:
        module, colon, attribute = text.partition(":")
        if not colon:
            module, _, attribute = text.rpartition(".")
        if not module or not attribute or not attribute.isidentifier():
            raise HandlerImportError(
                f"bad handler {text!r}: expected MODULE:HANDLER, e.g. demo_app.main:handler"
            )
        return cls(module, attribute)

    def __str__(self) -> str:
        return f"{self.module}:{self.attribute}"

    @property
    def dotted(self) -> str:
        """``module.attribute``, the form awslambdaric's ``_HANDLER`` uses."""
        return f"{self.module}.{self.attribute}"


def load_handler(ref: HandlerRef) -> Callable[[Any, Any], Any]:
    """Import ``ref``'s module from the current directory and return the handler."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(ref.module)
    except ImportError as error:
        raise HandlerImportError(f"cannot import module {ref.module!r}: {error}") from error
    except Exception as error:
        # The module ran and raised (bad configuration, a syntax error, ...).
        raise HandlerImportError(
            f"importing {ref.module!r} failed: {type(error).__name__}: {error}"
        ) from error
    handler = getattr(module, ref.attribute, None)
    if handler is None:
        raise HandlerImportError(f"module {ref.module!r} has no attribute {ref.attribute!r}")
    if not callable(handler):
        raise HandlerImportError(f"{ref} is not callable")
    result: Callable[[Any, Any], Any] = handler
    return result
