"""The static mirror (C2SP tlog-tiles): after each seal, the tenant's new full tiles, partial
tiles, entry bundles and then the checkpoint (with its cosignatures) are written where anyone
the operator shares them with can read and verify the log with nothing of ours running.

Locally under the anchor directory (``<tenant>/tiles/``); in the cloud in the mirror bucket
(``<tenant>/tiles/...``; PLANT_MIRROR_BUCKET, the anchor bucket's retention forbids replacing
the checkpoint). Tiles are written once (a path's bytes never change); the checkpoint is
replaced last, so a reader that finds it finds every tile under it. What is written is
``tiles.new_tiles(mirrored size, new size)``, from the size of the mirror's own checkpoint, so
a seal whose mirroring failed is caught up by the next one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.config import Settings, settings
from shared.integrity import note, tiles
from shared.storage import cosignatures, tree
from shared.storage.engine import database
from shared.tlog import tile_reads

if TYPE_CHECKING:
    from google.cloud.storage import Client

log = logging.getLogger("plant.mirror")
CHECKPOINT = "checkpoint"


class MirrorStore(Protocol):
    def read(self, path: str) -> bytes | None: ...

    def write_once(self, path: str, data: bytes) -> None: ...

    def replace(self, path: str, data: bytes) -> None: ...


class DirectoryMirror:
    """Files under ``root``, each written whole under a temporary name and renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, path: str) -> bytes | None:
        target = self.root / path
        return target.read_bytes() if target.is_file() else None

    def write_once(self, path: str, data: bytes) -> None:
        if (self.root / path).is_file():
            return
        self.replace(path, data)

    def replace(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temporary, 0o444)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise


class BucketMirror:
    """Objects ``<prefix><path>`` in a GCS bucket: tiles create-only, the checkpoint not cached."""

    def __init__(self, bucket: str, prefix: str, client: Client | None = None) -> None:
        from google.cloud.storage import Client  # cloud path only

        self._client = client or Client()
        self._bucket = self._client.bucket(bucket)
        self.prefix = prefix

    def read(self, path: str) -> bytes | None:
        blob = self._bucket.blob(self.prefix + path)
        return blob.download_as_bytes() if blob.exists() else None

    def write_once(self, path: str, data: bytes) -> None:
        from google.api_core.exceptions import PreconditionFailed

        blob = self._bucket.blob(self.prefix + path)
        blob.cache_control = "public, max-age=31536000, immutable"
        try:
            blob.upload_from_string(data, if_generation_match=0)
        except PreconditionFailed:
            return

    def replace(self, path: str, data: bytes) -> None:
        blob = self._bucket.blob(self.prefix + path)
        blob.cache_control = "no-store"
        blob.upload_from_string(data, content_type="text/plain; charset=utf-8")


def mirror_store(cfg: Settings, tenant: str) -> MirrorStore:
    bucket = cfg.mirror_bucket or cfg.anchor_bucket
    if bucket:
        return BucketMirror(bucket, f"{tenant}/tiles/")
    return DirectoryMirror((cfg.anchor_dir or cfg.data_dir / "anchors") / tenant / "tiles")


def mirrored_size(store: MirrorStore) -> int:
    """The size of the mirror's checkpoint (0: none, or one that does not parse)."""
    raw = store.read(CHECKPOINT)
    if raw is None:
        return 0
    try:
        text = raw.decode()
        return note.parse_checkpoint(text[: text.index("\n\n") + 1]).size
    except (UnicodeDecodeError, ValueError, note.NoteError):
        return 0


def publish(tenant: str, store: MirrorStore | None = None) -> int:
    """Write the tiles the mirror lacks, then the latest checkpoint; the number of tiles and
    bundles written. The caller logs a failure and carries on: the next seal catches up."""
    store = store or mirror_store(settings(), tenant)
    old = mirrored_size(store)
    with database().transaction(tenant, snapshot=True) as conn:
        last = tree.latest_checkpoint(conn)
        if last is None:
            return 0
        if old > last.size:
            log.error("mirror of %s holds size %d beyond the log's %d", tenant, old, last.size)
            return 0
        reader = tree.DbNodes(conn)
        written = 0
        wanted = tiles.new_tiles(old, last.size)
        for tile, data in zip(wanted, tile_reads.tiles_data(conn, reader, wanted), strict=True):
            if data is None:
                raise OSError(f"{tile.path}: stored nodes or entries are missing")
            store.write_once(tile.path, data)
            written += 1
        checkpoint = cosignatures.cosigned(conn, last).note.encode()
    if store.read(CHECKPOINT) != checkpoint:
        store.replace(CHECKPOINT, checkpoint)
    return written
