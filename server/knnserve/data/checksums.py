"""File and content digests, and the comparison that fails with a message naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from knnserve.data.files import read_content
from knnserve.errors import DatasetError

_CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str) -> str:
    """Return the hex digest of the bytes of ``path`` as stored (``md5`` or ``sha256``)."""
    digest = hashlib.new(algorithm)
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise DatasetError(f"{path}: cannot read file for its {algorithm} ({error})") from error
    return digest.hexdigest()


def content_sha256(content: bytes) -> str:
    """Return the sha256 hex digest of decompressed content."""
    return hashlib.sha256(content).hexdigest()


def check_digest(actual: str, expected: str, source: str | Path, what: str) -> None:
    """Raise DatasetError unless ``actual`` equals ``expected``.

    Parameters
    ----------
    what
        Names the digest in the message, e.g. ``"md5 of the file"`` or
        ``"sha256 of the decompressed content"``.
    """
    if actual.lower() != expected.lower():
        raise DatasetError(
            f"{source}: checksum mismatch; expected {what} {expected}, got {actual}. "
            f"The file is corrupt or not the published one: delete it and fetch it again."
        )


def verify_file(path: Path, md5: str | None = None, sha256: str | None = None) -> None:
    """Verify a stored file the way loading does: by content sha256 when known, else by file md5.

    The content digest is preferred because it survives recompression (Debian's
    Fashion-MNIST ``.gz`` files differ from upstream's but hold the same bytes).
    """
    if sha256 is not None:
        check_digest(content_sha256(read_content(path)), sha256, path, "sha256 of the decompressed content")
    elif md5 is not None:
        check_digest(file_digest(path, "md5"), md5, path, "md5 of the file")
