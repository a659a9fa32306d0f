"""Ed25519 signing keys: created on first use, kept in a configurable folder.

The folder is ``$AISEC_KEY_DIR``, else ``<data dir>/keys`` (see :func:`aisec.store.paths.data_dir`).
It holds ``ed25519.key`` (PKCS#8 PEM, mode 0600) and ``ed25519.pub`` (SubjectPublicKeyInfo PEM).
Public keys of other writers an auditor trusts go in ``<key dir>/trusted/*.pub``.

A key's id is the first 16 hex digits of the sha256 of its raw 32-byte public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aisec.store.errors import SigningKeyError
from aisec.store.paths import key_dir as default_key_dir

PRIVATE_NAME = "ed25519.key"
PUBLIC_NAME = "ed25519.pub"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_pem(text: str | bytes) -> Ed25519PublicKey:
    data = text.encode() if isinstance(text, str) else text
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def verify_signature(public: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Signer:
    """A private key and its id; :meth:`sign` returns a base64 signature."""

    private: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    @property
    def public_pem(self) -> str:
        return public_pem(self.public)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()

    @classmethod
    def load_or_create(cls, directory: str | Path | None = None) -> Signer:
        """Load the key in ``directory`` (default: the configured key dir), creating it if absent.

        Creation is atomic across processes: the key is written to a temporary file and published
        with a hard link, which fails if another process got there first; then that key is used.
        """
        d = Path(directory) if directory is not None else default_key_dir()
        path = d / PRIVATE_NAME
        if not path.exists():
            _create(d)
        return cls(private=_load_private(path), path=path)


def _create(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SigningKeyError(f"cannot create key folder {d}: {exc}. Set AISEC_KEY_DIR to a writable folder.") from exc
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = d / f".{PRIVATE_NAME}.{os.getpid()}.{time.monotonic_ns()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, d / PRIVATE_NAME)
    except FileExistsError:
        pass  # another process created it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
    pub = d / PUBLIC_NAME
    if not pub.exists():
        winner = _load_private(d / PRIVATE_NAME)
        tmp_pub = d / f".{PUBLIC_NAME}.{os.getpid()}.{time.monotonic_ns()}"
        tmp_pub.write_text(public_pem(winner.public_key()), encoding="utf-8")
        tmp_pub.replace(pub)


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, expected an Ed25519 private key")
    return key


def trusted_keys(
    directory: str | Path | None = None, extra: list[str | Path] | None = None
) -> dict[str, Ed25519PublicKey]:
    """Public keys to trust: this machine's own, ``<key dir>/trusted/*.pub`` and ``extra`` files."""
    d = Path(directory) if directory is not None else default_key_dir()
    files: list[Path] = []
    if (d / PUBLIC_NAME).is_file():
        files.append(d / PUBLIC_NAME)
    elif (d / PRIVATE_NAME).is_file():
        own = _load_private(d / PRIVATE_NAME).public_key()
        return {key_id(own): own, **_from_files(sorted((d / "trusted").glob("*.pub")) + [Path(p) for p in extra or []])}
    if (d / "trusted").is_dir():
        files += sorted((d / "trusted").glob("*.pub"))
    files += [Path(p) for p in extra or []]
    return _from_files(files)


def _from_files(files: list[Path]) -> dict[str, Ed25519PublicKey]:
    out: dict[str, Ed25519PublicKey] = {}
    for f in files:
        try:
            k = load_public_pem(f.read_bytes())
        except OSError as exc:
            raise SigningKeyError(f"cannot read public key {f}: {exc}") from exc
        out[key_id(k)] = k
    return out
