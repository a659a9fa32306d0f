"""Unpacking a zipped model folder (a Hugging Face ``save_pretrained`` folder) sent to ``aisec serve``.

Why its own module: a zip from a browser is untrusted input. Every member is checked before anything is written
(no absolute or ``..`` names, no links or devices, at most :data:`MAX_MEMBERS` entries), and the bytes written are
counted as they are inflated (the sizes in the zip's header are the sender's claim), so a zip bomb stops at the
server's upload limit with the partial folder removed.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from aisec.core.errors import DataError

MAX_MEMBERS = 1000
_CHUNK = 1 << 20


class ZipTooLarge(DataError):
    """The zip inflates to more than the server's upload limit (a zip bomb, or just too big)."""


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataError(f"zip member '{info.filename}' points outside the folder; refused")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (Windows zips, writestr): a file
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise DataError(f"zip member '{info.filename}' is a link or device, not a file; refused")
    return p


def unpack_model_zip(archive: Path, dest: Path, *, max_bytes: int) -> Path:
    """Extract ``archive`` into ``dest`` (created); the model folder: ``dest``, or its single top-level folder.

    Raises:
        DataError: not a zip, an unsafe member, too many members, or more than ``max_bytes`` once inflated
            (``dest`` is removed then).
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive.name} is not a readable zip file: {exc}") from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise DataError(f"{archive.name} has {len(members)} entries; at most {MAX_MEMBERS} are accepted")
        paths = [(m, _member_path(m)) for m in members]
        dest.mkdir(parents=True)
        written = 0
        try:
            for info, rel in paths:
                if info.is_dir() or not rel.parts:
                    continue
                out = dest.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, out.open("wb") as fh:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise ZipTooLarge(f"{archive.name} inflates to more than {max_bytes} bytes; refused")
                        fh.write(chunk)
        except (DataError, zipfile.BadZipFile, OSError) as exc:
            shutil.rmtree(dest, ignore_errors=True)
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{archive.name} could not be unpacked: {exc}") from None
    entries = [p for p in dest.iterdir() if not p.name.startswith("__MACOSX")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


__all__ = ["MAX_MEMBERS", "ZipTooLarge", "unpack_model_zip"]
