"""Where the store's bytes live. Local directory now; the interface is small enough for S3.

Keys are '/'-separated paths relative to the store root ("draem/v0003/manifest.json"). Two
operations carry the store's guarantees:
- `write_atomic(key, data)`: readers see the old or the new content, never half (aliases).
- `put_tree_exclusive(prefix, files)`: a version appears complete or not at all, and never
  overwrites an existing one (versions are immutable).
An S3 backend would do the first with a single PUT and the second by writing the files and then a
`_COMPLETE` marker with If-None-Match; it is not implemented yet.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol


class StorageBackend(Protocol):
    def read_bytes(self, key: str) -> bytes: ...  # FileNotFoundError when absent
    def write_atomic(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list_children(self, prefix: str) -> list[str]: ...  # immediate child names, sorted
    def put_tree_exclusive(self, prefix: str, files: dict[str, bytes]) -> None: ...  # FileExistsError
    def delete_tree(self, prefix: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...  # for tools that want a file (export, reports)
    def stamp(self, key: str) -> str | None: ...  # changes whenever the key is rewritten; None when absent (S3: ETag)


class LocalBackend:
    """A directory tree; atomicity from os.replace / os.rename on one filesystem."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _p(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in (p, *p.parents):
            raise ValueError(f"key escapes the store root: {key!r}")
        return p

    def read_bytes(self, key: str) -> bytes:
        return self._p(key).read_bytes()

    def write_atomic(self, key: str, data: bytes) -> None:
        dest = self._p(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)

    def exists(self, key: str) -> bool:
        return self._p(key).exists()

    def list_children(self, prefix: str) -> list[str]:
        d = self._p(prefix) if prefix else self.root
        if not d.is_dir():
            return []
        return sorted(c.name for c in d.iterdir() if not c.name.startswith("."))

    def put_tree_exclusive(self, prefix: str, files: dict[str, bytes]) -> None:
        dest = self._p(prefix)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.with_name(f".staging-{dest.name}-{uuid.uuid4().hex}")
        staging.mkdir()
        try:
            for name, data in files.items():
                with open(staging / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            if dest.exists():
                raise FileExistsError(str(dest))
            # rename onto a non-existent path is atomic; a racing writer that got there first makes
            # this fail (ENOTEMPTY / EEXIST) rather than overwrite.
            os.rename(staging, dest)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def delete_tree(self, prefix: str) -> None:
        target = self._p(prefix)
        # move aside first so a reader never sees a half-deleted version
        trash = target.with_name(f".deleting-{target.name}-{uuid.uuid4().hex}")
        os.rename(target, trash)
        shutil.rmtree(trash)

    def local_path(self, key: str) -> Path | None:
        return self._p(key)

    def stamp(self, key: str) -> str | None:
        """One stat(): write_atomic's os.replace gives every rewrite a new inode, so this changes even
        when two writes fall in the same mtime tick."""
        try:
            st = self._p(key).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


class S3Backend:
    """Placeholder for an S3-compatible bucket (see the module docstring for the plan)."""

    def __init__(self, url: str) -> None:
        raise NotImplementedError(f"S3 backend not implemented yet ({url}); use a local directory")
