"""linewatch's exceptions: one root, grouped by what a caller can do about them.

    LinewatchError
    ├── ConfigError          settings that cannot work; fail at start-up
    ├── FrameRejected        one input record is bad; dead-letter it (carries a reason code)
    ├── ModelError
    │   ├── ModelNotFound    no such model, version or alias in the store
    │   └── ModelIntegrityError  hash, manifest or architecture mismatch; refuse to load
    ├── PublishError         Redis or the alert topic did not acknowledge; retry, do not commit
    └── ServiceUnavailable   a local service (Kafka, Redis) could not be started or reached

Kafka and Redis exceptions are translated into these only in their adapters.
"""

from __future__ import annotations


class LinewatchError(Exception):
    """Root of every error linewatch raises on purpose."""


class ConfigError(LinewatchError):
    """Settings that cannot work."""


class FrameRejected(LinewatchError):
    """A record that cannot be scored; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ModelError(LinewatchError):
    """A model could not be provided."""


class ModelNotFound(ModelError):
    """No such model, version or alias."""


class ModelIntegrityError(ModelError):
    """A model artifact failed its hash, manifest or architecture check."""


class PublishError(LinewatchError):
    """An output was not acknowledged; the frame's offset must not be committed."""


class ServiceUnavailable(LinewatchError):
    """A service linewatch depends on could not be started or reached."""
