"""Ed25519 signing keys: created on first use, kept in a configurable folder.

The folder is ``$AISEC_KEY_DIR``, else ``<data dir>/keys`` (see :func:`aisec.store.paths.data_dir`).
It holds ``ed25519.key`` (PKCS#8 PEM, mode 0600) and ``ed25519.pub`` (SubjectPublicKeyInfo PEM).

The trust store is ``<key dir>/trusted/``: one ``<key id>.pub`` per public key the user has decided
to trust (``aisec evidence trust add|list|remove``). This machine's own key (derived from the
private key, never from a ``.pub`` file beside it) is trusted too. Keys found inside a store or a
bundle are never trusted because they are there.

A key's id is the first 16 hex digits of the sha256 of its raw 32-byte public key; its fingerprint
is all 64 (``sha256:<hex>``); either identifies it on the command line.
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
from pydantic import BaseModel, ConfigDict

from aisec.store.errors import SigningKeyError
from aisec.store.paths import key_dir as default_key_dir

PRIVATE_NAME = "ed25519.key"
PUBLIC_NAME = "ed25519.pub"


def key_id(public: Ed25519PublicKey) -> str:
    return fingerprint(public)[:16]


def fingerprint(public: Ed25519PublicKey) -> str:
    """The full sha256 (hex) of the raw public key; its first 16 digits are the key id."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


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


def trust_dir(directory: str | Path | None = None) -> Path:
    """The trust store folder: ``<key dir>/trusted``."""
    return (Path(directory) if directory is not None else default_key_dir()) / "trusted"


def own_public(directory: str | Path | None = None) -> Ed25519PublicKey | None:
    """This machine's public key, derived from its private key (None when there is none yet; nothing is created).

    Raises:
        SigningKeyError: ``ed25519.pub`` beside the private key is a different key (someone replaced it).
    """
    d = Path(directory) if directory is not None else default_key_dir()
    if not (d / PRIVATE_NAME).is_file():
        return None
    own = _load_private(d / PRIVATE_NAME).public_key()
    pub = d / PUBLIC_NAME
    if pub.is_file():
        try:
            beside = load_public_pem(pub.read_bytes())
        except (OSError, SigningKeyError) as exc:
            raise SigningKeyError(f"{pub} is unreadable ({exc}); expected the public half of {d / PRIVATE_NAME}. "
                                  "Delete it: it is re-created from the private key.") from exc
        if key_id(beside) != key_id(own):
            raise SigningKeyError(
                f"{pub} holds key {key_id(beside)}, but the private key {d / PRIVATE_NAME} is key {key_id(own)}: "
                "the public file was replaced. Delete it (it is re-created from the private key) and check who "
                "wrote to the key folder.")
    return own


def trusted_keys(
    directory: str | Path | None = None, extra: list[str | Path] | None = None
) -> dict[str, Ed25519PublicKey]:
    """Public keys to trust: this machine's own, the trust store ``<key dir>/trusted/*.pub`` and ``extra`` files."""
    d = Path(directory) if directory is not None else default_key_dir()
    out: dict[str, Ed25519PublicKey] = {}
    own = own_public(d)
    if own is not None:
        out[key_id(own)] = own
    out.update(_from_files(sorted(trust_dir(d).glob("*.pub")) + [Path(p) for p in extra or []]))
    return out


class TrustedKey(BaseModel):
    """One entry of the trust store."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    fingerprint: str
    path: str | None
    own: bool = False


def list_trusted(directory: str | Path | None = None) -> list[TrustedKey]:
    """The trust store's keys (and this machine's own key first, marked ``own``)."""
    d = Path(directory) if directory is not None else default_key_dir()
    out = []
    own = own_public(d)
    if own is not None:
        out.append(TrustedKey(key_id=key_id(own), fingerprint=fingerprint(own), path=str(d / PRIVATE_NAME), own=True))
    for f in sorted(trust_dir(d).glob("*.pub")):
        k = _from_files([f])
        for kid, pub in k.items():
            out.append(TrustedKey(key_id=kid, fingerprint=fingerprint(pub), path=str(f)))
    return out


def add_trusted(pem: str | bytes, directory: str | Path | None = None) -> TrustedKey:
    """Put a public key (PEM text) into the trust store as ``<key id>.pub``; returns its entry (idempotent)."""
    pub = load_public_pem(pem)
    kid = key_id(pub)
    d = trust_dir(directory)
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = d / f"{kid}.pub"
        if not target.exists():
            tmp = d / f".{kid}.pub.{os.getpid()}.{time.monotonic_ns()}"
            tmp.write_text(public_pem(pub), encoding="utf-8")
            tmp.replace(target)
    except OSError as exc:
        raise SigningKeyError(f"cannot write to the trust store {d}: {exc}. Set AISEC_KEY_DIR to a writable "
                              "folder.") from exc
    return TrustedKey(key_id=kid, fingerprint=fingerprint(pub), path=str(target))


def remove_trusted(which: str, directory: str | Path | None = None) -> list[TrustedKey]:
    """Remove the trust store's keys matching a key id, fingerprint (``sha256:`` optional) or ``.pub`` file.

    Raises:
        SigningKeyError: nothing in the trust store matches (the own key cannot be removed this way).
    """
    wanted: str
    if Path(which).is_file():
        wanted = fingerprint(load_public_pem(Path(which).read_bytes()))
    else:
        wanted = normalize_fingerprint(which)
    gone = [t for t in list_trusted(directory) if not t.own and t.fingerprint.startswith(wanted)]
    if not gone:
        raise SigningKeyError(f"no key {which} in the trust store {trust_dir(directory)}; `aisec evidence trust list` "
                              "shows what is there")
    for t in gone:
        if t.path:
            Path(t.path).unlink(missing_ok=True)
    return gone


def normalize_fingerprint(text: str) -> str:
    """``sha256:ABC…`` / ``abc…`` -> lower-case hex; at least the 16 digits of a key id.

    Raises:
        SigningKeyError: not hex, or shorter than a key id.
    """
    t = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(t) < 16 or any(c not in "0123456789abcdef" for c in t):
        raise SigningKeyError(f"'{text}' is not a key fingerprint: expected a 16-digit key id or the 64-digit "
                              "sha256 fingerprint (see `aisec evidence trust list` or `aisec evidence key`)")
    return t


def _from_files(files: list[Path]) -> dict[str, Ed25519PublicKey]:
    out: dict[str, Ed25519PublicKey] = {}
    for f in files:
        try:
            k = load_public_pem(f.read_bytes())
        except OSError as exc:
            raise SigningKeyError(f"cannot read public key {f}: {exc}") from exc
        out[key_id(k)] = k
    return out
