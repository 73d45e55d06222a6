"""AWS credentials for the DynamoDB client: the environment first (what Lambda provides), else
botocore's full chain (profiles, SSO, containers, IMDS), imported only then and refreshed off the
event loop. The signer (_aws.sigv4) consumes the frozen Credentials this yields."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..exceptions import StorageError

__all__ = [
    "Credentials",
    "CredentialsProvider",
    "StaticCredentialsProvider",
    "default_credentials",
]

logger = logging.getLogger("asgi_lambda_mw.aws")


# A NamedTuple, not a frozen dataclass: as immutable, ~0.6 ms less at a cold start.
class Credentials(NamedTuple):
    """An access key pair, with the session token that temporary credentials carry."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never print the secret or the token in logs or tracebacks
        token = "None" if self.token is None else "'***'"
        return f"Credentials(access_key={self.access_key!r}, secret_key='***', token={token})"


@runtime_checkable
class CredentialsProvider(Protocol):
    """Something that yields current credentials; called before every signed request."""

    async def get(self) -> Credentials: ...


class StaticCredentialsProvider:
    """Always the same credentials (tests, or keys handed over explicitly)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    async def get(self) -> Credentials:
        return self._credentials


def default_credentials() -> CredentialsProvider:
    """The environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the
    botocore credential chain. Resolved on first use; raises StorageError when none is found."""
    return _DefaultCredentialsProvider()


def _from_environment() -> Credentials | None:
    # Lambda sets these once per execution environment and never rotates them within it,
    # so reading them once is enough.
    access_key = os.environ.get("AWS_ACCESS_KEY_ID", "").strip()
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if not access_key and not secret_key:
        return None
    if not access_key or not secret_key:
        missing = "AWS_ACCESS_KEY_ID" if not access_key else "AWS_SECRET_ACCESS_KEY"
        present = "AWS_SECRET_ACCESS_KEY" if not access_key else "AWS_ACCESS_KEY_ID"
        raise StorageError(f"{present} is set but {missing} is not: set both, or neither")
    token = os.environ.get("AWS_SESSION_TOKEN", "").strip() or None
    return Credentials(access_key, secret_key, token)


def _load_botocore_chain() -> Any:
    """botocore's resolved credentials object; blocking (it may call IMDS), run in a thread."""
    try:
        import botocore.session  # only here: off Lambda, and only without env credentials
    except ImportError:
        raise StorageError(
            "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and "
            "botocore (for profiles, SSO, containers and instance roles) is not installed; "
            "install asgi-lambda-mw[aws] or set the variables"
        ) from None
    try:
        credentials = botocore.session.get_session().get_credentials()
    except Exception as exc:  # botocore's many credential errors: one clear message
        raise StorageError(f"could not load AWS credentials through botocore: {exc}") from exc
    if credentials is None:
        raise StorageError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "configure a profile, SSO, a container role or an instance role"
        )
    return credentials


def _freeze(botocore_credentials: Any) -> Credentials:
    """Blocking: may refresh temporary credentials (STS, SSO, IMDS)."""
    try:
        frozen = botocore_credentials.get_frozen_credentials()
    except Exception as exc:
        raise StorageError(f"could not refresh AWS credentials through botocore: {exc}") from exc
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


class _DefaultCredentialsProvider:
    """Environment first, botocore's chain otherwise; the cheap path is one attribute check."""

    def __init__(self) -> None:
        self._static: Credentials | None = None
        self._botocore: Any = None
        self._frozen: Credentials | None = None

    async def get(self) -> Credentials:
        if self._static is not None:
            return self._static
        if self._botocore is None:
            static = _from_environment()
            if static is not None:
                self._static = static
                return static
            self._botocore = await asyncio.to_thread(_load_botocore_chain)
            logger.debug("aws credentials from botocore chain: %s", self._botocore.method)
        return await self._from_botocore()

    async def _from_botocore(self) -> Credentials:
        frozen = self._frozen
        # RefreshableCredentials says when it nears expiry; plain Credentials never do.
        refresh_needed = getattr(self._botocore, "refresh_needed", None)
        if frozen is None or (refresh_needed is not None and refresh_needed()):
            frozen = await asyncio.to_thread(_freeze, self._botocore)
            self._frozen = frozen
        return frozen
