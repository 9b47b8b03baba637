"""The anchor store: a copy of every checkpoint kept outside the database.

Whoever controls the database can rewrite or roll it back, but cannot unwrite what was
anchored: a directory locally, a GCS bucket with a retention policy in the cloud. Objects
are write-once (``<tenant>/<size, 20 digits>.note``) and an existing one is never replaced.
"""

from __future__ import annotations

import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.config import Settings

if TYPE_CHECKING:
    from google.cloud.storage import Client

NAME_WIDTH = 20
_ANCHOR = re.compile(rf"[0-9]{{{NAME_WIDTH}}}\.note")  # not the mirror's <tenant>/tiles/...


class AnchorConflict(Exception):
    """An anchor already holds a different checkpoint of that size."""


class AnchorStore(Protocol):
    def put(self, tenant: str, size: int, note: str) -> None: ...

    def get(self, tenant: str, size: int) -> str | None: ...

    def latest(self, tenant: str) -> tuple[int, str] | None: ...

    def sizes(self, tenant: str) -> list[int]: ...

    # Other write-once objects kept beside the anchors (an audit's parts: shared/audit/parts)
    def put_object(self, name: str, data: str) -> None: ...

    def get_object(self, name: str) -> str | None: ...

    def has_object(self, name: str) -> bool: ...


def _object_name(tenant: str, size: int) -> str:
    return f"{tenant}/{size:0{NAME_WIDTH}d}.note"


class _Anchors(ABC):
    """An anchor is the store's write-once object named for its tenant and size."""

    @abstractmethod
    def put_object(self, name: str, data: str) -> None: ...

    @abstractmethod
    def get_object(self, name: str) -> str | None: ...

    def put(self, tenant: str, size: int, note: str) -> None:
        try:
            self.put_object(_object_name(tenant, size), note)
        except AnchorConflict:
            raise AnchorConflict(f"anchor {tenant}@{size} holds another checkpoint") from None

    def get(self, tenant: str, size: int) -> str | None:
        return self.get_object(_object_name(tenant, size))


class DirectoryAnchors(_Anchors):
    """Anchors as files, each written whole under a temporary name and then linked into
    place: a concurrent reader never sees a half-written anchor, and ``link`` refuses an
    existing name, so each stays write-once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put_object(self, name: str, data: str) -> None:
        """``data`` under ``name``, unless it holds other data already (AnchorConflict)."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.chmod(temporary, 0o444)
            try:
                os.link(temporary, path)
            except FileExistsError:
                if path.read_text(encoding="utf-8") != data:
                    raise AnchorConflict(f"{name} holds other data") from None
        finally:
            os.unlink(temporary)

    def get_object(self, name: str) -> str | None:
        path = self.root / name
        return path.read_text(encoding="utf-8") if path.exists() else None

    def has_object(self, name: str) -> bool:
        return (self.root / name).exists()

    def latest(self, tenant: str) -> tuple[int, str] | None:
        folder = self.root / tenant
        if not folder.is_dir():
            return None
        names = sorted(p.name for p in folder.glob("*.note"))
        if not names:
            return None
        size = int(names[-1].removesuffix(".note"))
        return size, (folder / names[-1]).read_text(encoding="utf-8")

    def sizes(self, tenant: str) -> list[int]:
        """The size of every checkpoint anchored for the tenant, ascending."""
        folder = self.root / tenant
        names = folder.glob("*.note") if folder.is_dir() else ()
        return sorted(int(p.name.removesuffix(".note")) for p in names)


class BucketAnchors(_Anchors):
    """Anchors in a GCS bucket (retention policy set by Terraform); create-only writes."""

    def __init__(self, bucket: str, client: Client | None = None) -> None:
        from google.cloud.storage import Client  # cloud path only

        self._client = client or Client()
        self._bucket = self._client.bucket(bucket)

    def put_object(self, name: str, data: str) -> None:
        """``data`` under ``name``, unless it holds other data already (AnchorConflict)."""
        from google.api_core.exceptions import PreconditionFailed

        blob = self._bucket.blob(name)
        try:
            blob.upload_from_string(data, content_type="text/plain", if_generation_match=0)
        except PreconditionFailed:
            if self.get_object(name) != data:
                raise AnchorConflict(f"{name} holds other data") from None

    def get_object(self, name: str) -> str | None:
        blob = self._bucket.blob(name)
        return blob.download_as_text() if blob.exists() else None

    def has_object(self, name: str) -> bool:
        return bool(self._bucket.blob(name).exists())

    def latest(self, tenant: str) -> tuple[int, str] | None:
        listed = self._client.list_blobs(self._bucket, prefix=f"{tenant}/")
        names = sorted(b.name for b in listed if _ANCHOR.fullmatch(b.name.split("/", 1)[1]))
        if not names:
            return None
        size = int(names[-1].rsplit("/", 1)[1].removesuffix(".note"))
        return size, self.get(tenant, size) or ""

    def sizes(self, tenant: str) -> list[int]:
        """The size of every checkpoint anchored for the tenant, ascending."""
        blobs = self._client.list_blobs(self._bucket, prefix=f"{tenant}/")
        return sorted(int(b.name.rsplit("/", 1)[1].removesuffix(".note")) for b in blobs)


def anchor_store(cfg: Settings) -> AnchorStore:
    if cfg.anchor_bucket:
        return BucketAnchors(cfg.anchor_bucket)
    return DirectoryAnchors(cfg.anchor_dir or cfg.data_dir / "anchors")
