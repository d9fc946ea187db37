"""linewatch's exceptions: one root, grouped by what a caller can do about them.

    LinewatchError
    ├── ConfigError          settings that cannot work; fail at start-up
    ├── FrameRejected        one input record is bad; dead-letter it (carries a reason code)
    ├── ModelError
    │   ├── ModelNotFound    no such model, version or alias in the store
    │   └── ModelIntegrityError  hash, manifest or architecture mismatch; refuse to load
    ├── PublishError         an output did not acknowledge; do not commit
    │   ├── OutputUnavailable  transient (connection, timeout, broker unavailable, Redis LOADING/BUSY):
    │   │                      pause intake and retry
    │   ├── OutputRefused      permanent for every record (ACL refused, topic missing, Redis OOM):
    │   │                      not ready, say why, exit non-zero after a while
    │   └── RecordRefused      permanent for this one record (script error on its data, too large):
    │                          dead-letter it, the line goes on
    ├── InputError           the frames topic could not be read (worker/frames_input.py)
    │   ├── InputUnavailable   transient (broker away): retry the poll
    │   ├── InputRefused       not allowed to read the topic or join the group: not ready, exit after a while
    │   └── InputBroken        the client failed on a record it could not step over: exit, restart
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


class OutputUnavailable(PublishError):
    """A transient failure: the same write may succeed later."""


class OutputRefused(PublishError):
    """A permanent failure for every record (permissions, missing topic, out of memory)."""


class RecordRefused(PublishError):
    """A permanent failure for one record; `reason` is a dead-letter reason code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InputError(LinewatchError):
    """The frames topic could not be read."""


class InputUnavailable(InputError):
    """The broker could not be read this time (transient)."""


class InputRefused(InputError):
    """This worker may not read the frames topic or join its group (permanent until fixed)."""


class InputBroken(InputError):
    """The client failed to parse records and the failing record could not be found."""


class ServiceUnavailable(LinewatchError):
    """A service linewatch depends on could not be started or reached."""
