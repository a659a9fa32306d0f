"""The hash chain and its verification (pure functions; the store and bundles both use them).

Each record ``i`` in a store gets a link::

    hash_i = sha256("aisec-evidence-chain/1\\n" + prev_hash + "\\n" + prev_id + "\\n" + canonical_json_i)
    signature_i = Ed25519(hash_i as ASCII hex)

with ``prev_hash``/``prev_id`` the hash and evidence id of the record before it (``GENESIS`` and
``""`` for the first). The head (last seq, record count, last id, last hash) is signed the same way,
so removing the newest record is detected too. The position (``seq``) is *not* hashed: the links
define the order, and a position that disagrees with them is reported as a reordering.

:func:`verify_chain` names what is wrong:

- ``edited``: a record's content (or an indexed column) no longer matches its hash or signature,
  and the chain still points at it;
- ``inserted``: a record that fails its hash/signature and that no record or head points at;
- ``removed``: a record the chain points at is missing (named by its id), or the head counts more;
- ``reordered``: the stored order disagrees with the links (the fewest records that moved);
- ``head``: the head itself is unsigned, badly signed or inconsistent.

- ``run``: a run's fields (plan, status, digests, ...) no longer match their signed hash, or the
  set of runs no longer matches the signed head's ``runs_digest``;
- ``untrusted``: every signature verifies, but by a key that is not in your trust store;
- ``empty`` / ``missing_head``: there is nothing to verify, or the head row itself is gone;
- ``unsigned``: a bundle that is not signed as a whole (format 1).

Since format 2 the head message also carries ``runs_digest``, the sha256 over every run's id and
signed hash, so editing, adding or deleting a run is detected like a record.

What a chain cannot show by itself: rolling a whole store back to an earlier signed state by
someone who holds the signing key. Pin the head elsewhere (``aisec evidence verify --head HASH`` or
``--head FILE`` with the JSON of an earlier ``verify --json``, a Clouditor push) to detect that.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

from aisec.store.keys import verify_signature
from aisec.store.tables import GENESIS

LINK_PREFIX = b"aisec-evidence-chain/1\n"
HEAD_PREFIX = b"aisec-chain-head/1\n"
HEAD_PREFIX_V2 = b"aisec-chain-head/2\n"
RUN_PREFIX = b"aisec-run/1\n"
META_PREFIX = b"aisec-evidence-meta/1\n"
BUNDLE_PREFIX = b"aisec-evidence-bundle/2\n"

IssueKind = Literal["edited", "inserted", "removed", "reordered", "head", "run", "untrusted", "empty",
                    "missing_head", "unsigned"]

EXIT_OK = 0
EXIT_TAMPERED = 4
"""Records, runs, head or bundle were changed, removed, inserted or reordered, or a signature fails."""
EXIT_UNTRUSTED = 5
"""Every signature verifies, but some by a key that is not in your trust store."""
EXIT_NO_STORE = 6
"""There is no store at the path or URL (nothing was created)."""
EXIT_NOT_A_STORE = 7
"""The file or database exists but holds no aisec evidence store (e.g. a 0-byte file)."""
EXIT_EMPTY = 8
"""The store holds no records and no signed head: nothing to vouch for."""
EXIT_NO_HEAD = 9
"""The chain head row is missing."""

_EXIT_BY_KIND: dict[str, int] = {"missing_head": EXIT_NO_HEAD, "edited": EXIT_TAMPERED, "inserted": EXIT_TAMPERED,
                                 "removed": EXIT_TAMPERED, "reordered": EXIT_TAMPERED, "head": EXIT_TAMPERED,
                                 "run": EXIT_TAMPERED, "unsigned": EXIT_TAMPERED, "empty": EXIT_EMPTY,
                                 "untrusted": EXIT_UNTRUSTED}
_EXIT_PRECEDENCE = (EXIT_NO_HEAD, EXIT_TAMPERED, EXIT_EMPTY, EXIT_UNTRUSTED)


def link_hash(prev_hash: str, prev_id: str, body: bytes) -> str:
    """The chain hash of a record whose canonical JSON is ``body``."""
    return hashlib.sha256(LINK_PREFIX + prev_hash.encode() + b"\n" + prev_id.encode() + b"\n" + body).hexdigest()


def head_message(seq: int, count: int, last_id: str, last_hash: str, runs_digest: str | None = None) -> bytes:
    """What the head signature covers: format 1 without ``runs_digest`` (legacy stores), else format 2."""
    if runs_digest is None:
        return HEAD_PREFIX + f"{seq}\n{count}\n{last_id}\n{last_hash}".encode()
    return HEAD_PREFIX_V2 + f"{seq}\n{count}\n{last_id}\n{last_hash}\n{runs_digest}".encode()


def canonical(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes that get hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def run_hash(fields: Mapping[str, Any]) -> str:
    """The signed hash of a run's fields (plan text, status, digests, times as ISO strings, ...)."""
    return hashlib.sha256(RUN_PREFIX + canonical(dict(fields))).hexdigest()


def runs_digest(hashes: Iterable[tuple[str, str]]) -> str:
    """sha256 over ``run id SP run hash`` lines sorted by id: what the head signs about the set of runs."""
    text = "".join(f"{rid} {h}\n" for rid, h in sorted(hashes))
    return hashlib.sha256(b"aisec-runs/1\n" + text.encode()).hexdigest()


def meta_message(link_hash_: str, origin: str | None, source: str, stored_at: str) -> bytes:
    """What a record's metadata signature covers: its link hash, original link, source and storage time."""
    return META_PREFIX + canonical({"hash": link_hash_, "origin": origin, "source": source,
                                    "stored_at": stored_at})


class KeyRing:
    """Which keys a verification accepts: ``trusted`` silently, ``known`` (found in a store or bundle) only
    as "untrusted"; every use of a known-only key is remembered in :attr:`untrusted`."""

    def __init__(self, trusted: Mapping[str, Ed25519PublicKey],
                 known: Mapping[str, Ed25519PublicKey] | None = None) -> None:
        self.trusted = dict(trusted)
        self.known = dict(known or {})
        self.untrusted: set[str] = set()

    def check(self, kid: str | None, sig: str | None, message: bytes) -> str | None:
        """None when the signature verifies under a trusted or known key, else the reason."""
        kid = kid or ""
        key = self.trusted.get(kid)
        if key is None and kid in self.known:
            key = self.known[kid]
            if verify_signature(key, sig or "", message):
                self.untrusted.add(kid)
                return None
        if key is None:
            return f"it is signed by unknown key {kid or '(none)'}"
        return None if verify_signature(key, sig or "", message) else f"its signature by key {kid} does not verify"

    def untrusted_issue(self, allow: bool) -> tuple[list[Issue], list[str]]:
        """The issue (or, when ``allow``, the warning) naming every untrusted key used."""
        if not self.untrusted:
            return [], []
        msg = (f"signed by key(s) {sorted(self.untrusted)} that are not in your trust store (keys found in a "
               "store or bundle are never trusted by that alone). Check the fingerprint with its owner, then "
               "`aisec evidence trust add KEY.pub`, or pass --allow-untrusted to accept it for this run")
        return ([], [msg]) if allow else ([Issue(kind="untrusted", detail=msg)], [])


class Link(BaseModel):
    """A record's place in the chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    prev_hash: str
    prev_id: str
    hash: str
    key_id: str
    signature: str


class ChainEntry(BaseModel):
    """A record as the chain sees it: its id, canonical JSON and link."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    body: str
    link: Link
    origin: Link | None = None
    """For an imported record: the link its original signer made (``link`` is the importer's)."""


class Head(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    count: int
    last_id: str
    last_hash: str
    key_id: str
    signature: str
    runs_digest: str | None = None

    def message(self) -> bytes:
        return head_message(self.seq, self.count, self.last_id, self.last_hash, self.runs_digest)

    @property
    def legacy(self) -> bool:
        """Signed in format 1: the runs (plan, status, digests) are outside the signature."""
        return self.runs_digest is None


class Issue(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: IssueKind
    evidence_id: str | None = None
    position: int | None = None
    detail: str

    def __str__(self) -> str:
        where = f" {self.evidence_id}" if self.evidence_id else ""
        pos = f" (#{self.position})" if self.position is not None else ""
        return f"{self.kind}{where}{pos}: {self.detail}"


class VerifyReport(BaseModel):
    """What :func:`verify_chain` found. ``ok`` is False when any issue was found."""

    ok: bool
    records: int
    issues: list[Issue]
    warnings: list[str]
    head: Head | None = None
    legacy: bool = False
    """The store or bundle predates signed run fields ("legacy, run fields unsigned")."""

    @property
    def exit_code(self) -> int:
        """The ``aisec evidence verify`` exit code: 0, or the most serious problem found (see the ``EXIT_*``)."""
        found = {_EXIT_BY_KIND[i.kind] for i in self.issues}
        return next((code for code in _EXIT_PRECEDENCE if code in found), EXIT_OK)

    def text(self) -> str:
        state = "OK" if self.ok else "FAILED"
        if self.legacy:
            state += " (legacy, run fields unsigned)"
        lines = [f"{state}: {self.records} record(s) checked, {len(self.issues)} issue(s)"]
        lines += [f"  {i}" for i in self.issues]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def verify_chain(
    entries: Sequence[ChainEntry],
    head: Head | None,
    trusted: Mapping[str, Ed25519PublicKey] | KeyRing,
    known: Mapping[str, Ed25519PublicKey] | None = None,
    *,
    extra: Mapping[str, list[str]] | None = None,
    strict: bool = True,
    partial: bool = False,
    allow_untrusted: bool | None = None,
) -> VerifyReport:
    """Check every link, signature and the order of ``entries`` (given in stored order).

    Args:
        trusted: public keys whose signatures are accepted (or a :class:`KeyRing` shared with other checks,
            whose untrusted keys the caller reports).
        known: further keys (e.g. from the store's key table or a bundle); a valid signature by one of
            them is an ``untrusted`` issue, or only a warning with ``allow_untrusted``.
        extra: per evidence id, reasons found outside the chain (e.g. an indexed column that
            disagrees with the record); they make the record count as tampered.
        strict: kept for callers written before 2027-01; ``strict=False`` means ``allow_untrusted=True``.
        partial: the entries are a filtered subset (an export with filters): check each record's
            hash and signature only, not completeness or order.
    """
    allow = (not strict) if allow_untrusted is None else allow_untrusted
    own_ring = not isinstance(trusted, KeyRing)
    ring = KeyRing(trusted, known) if not isinstance(trusted, KeyRing) else trusted
    issues: list[Issue] = []
    warnings: list[str] = []

    bad: dict[str, list[str]] = {}
    for e in entries:
        reasons = list((extra or {}).get(e.id, []))
        if link_hash(e.link.prev_hash, e.link.prev_id, e.body.encode()) != e.link.hash:
            reasons.append("its content no longer matches its chain hash")
        why = ring.check(e.link.key_id, e.link.signature, e.link.hash.encode())
        if why:
            reasons.append(why)
        if reasons:
            bad[e.id] = reasons

    head_ok = True
    if head is not None and not partial and (head.count or head.signature):
        why = ring.check(head.key_id, head.signature, head.message())
        if why:
            head_ok = False
            issues.append(Issue(kind="head", detail=f"the chain head cannot be trusted: {why}"))
    # A tampered record still pointed at by an intact one (or by the head) was edited in place;
    # one nothing points at was inserted. Edited records vouch for their predecessors in turn.
    referenced = {e.link.prev_id for e in entries if e.id not in bad}
    if head is not None and head_ok:
        referenced.add(head.last_id)
    grew = True
    while grew:
        more = {e.link.prev_id for e in entries if e.id in bad and e.id in referenced} - referenced
        referenced |= more
        grew = bool(more)
    inserted: set[str] = set()
    for e in entries:
        if e.id not in bad:
            continue
        why_text = "; ".join(bad[e.id])
        if partial or e.id in referenced:
            issues.append(Issue(kind="edited", evidence_id=e.id, position=e.link.seq, detail=why_text))
        else:
            inserted.add(e.id)
            issues.append(Issue(kind="inserted", evidence_id=e.id, position=e.link.seq,
                                detail=f"no record or head links to it, and {why_text}"))
    members = [e for e in entries if e.id not in inserted]
    if not partial:
        issues += _structure(members, head if head_ok else None)
    if own_ring:
        more_issues, more_warnings = ring.untrusted_issue(allow)
        issues += more_issues
        warnings += more_warnings
    return VerifyReport(ok=not issues, records=len(entries), issues=issues, warnings=warnings, head=head)


def _structure(members: list[ChainEntry], head: Head | None) -> list[Issue]:
    issues: list[Issue] = []
    by_id = {e.id: e for e in members}
    succ: dict[str, list[ChainEntry]] = {}
    for e in members:
        succ.setdefault(e.link.prev_id, []).append(e)
    for prev_id, nexts in succ.items():
        for e in nexts[1:]:
            issues.append(Issue(kind="inserted", evidence_id=e.id, position=e.link.seq,
                                detail=f"it forks the chain: {nexts[0].id} already follows {prev_id or 'the start'}"))
    named_removed = 0
    for e in members:
        if e.link.prev_id and e.link.prev_id not in by_id:
            named_removed += 1
            issues.append(Issue(kind="removed", evidence_id=e.link.prev_id,
                                detail=f"it is missing; record {e.id} (#{e.link.seq}) links to it"))
        elif not e.link.prev_id and e.link.prev_hash != GENESIS:
            issues.append(Issue(kind="edited", evidence_id=e.id, position=e.link.seq,
                                detail="its link names no predecessor but is not the first record"))
    if head is None:
        pass
    elif head.count == 0 and not head.signature:
        if members:
            issues.append(Issue(kind="head", detail=f"the chain head is unset although {len(members)} record(s) exist"))
    else:
        if head.last_id not in by_id:
            named_removed += 1
            issues.append(Issue(kind="removed", evidence_id=head.last_id,
                                detail="it is missing; it was the newest record according to the signed head"))
        elif by_id[head.last_id].link.hash != head.last_hash:
            issues.append(Issue(kind="head", evidence_id=head.last_id,
                                detail="the signed head names a different hash for the newest record"))
        elif succ.get(head.last_id):
            for e in succ[head.last_id]:
                issues.append(Issue(kind="inserted", evidence_id=e.id, position=e.link.seq,
                                    detail="it follows the newest record of the signed head"))
        missing = head.count - len(members)
        if missing > named_removed:
            issues.append(Issue(kind="removed", detail=f"{missing - named_removed} more record(s) missing: the signed "
                                f"head counts {head.count}, {len(members)} found"))
        elif missing < 0:
            issues.append(Issue(kind="head",
                                detail=f"the signed head counts {head.count} records, {len(members)} found"))
    issues += _reordered(members, succ, by_id)
    return issues


def _reordered(members: list[ChainEntry], succ: dict[str, list[ChainEntry]],
               by_id: dict[str, ChainEntry]) -> list[Issue]:
    """Records whose stored position disagrees with the links: those outside a longest run in order."""
    stored = {e.id: i for i, e in enumerate(members)}
    starts = [e for e in members if not e.link.prev_id or e.link.prev_id not in by_id]
    order: list[ChainEntry] = []
    seen: set[str] = set()
    for s in sorted(starts, key=lambda e: stored[e.id]):
        cur: ChainEntry | None = s
        while cur is not None and cur.id not in seen:
            seen.add(cur.id)
            order.append(cur)
            nxt = succ.get(cur.id, [])
            cur = nxt[0] if nxt else None
    order += [e for e in members if e.id not in seen]  # cycles cannot occur with valid hashes; be safe
    rank = {e.id: i for i, e in enumerate(order)}
    seq = [rank[e.id] for e in members]
    keep = set(_lis(seq))
    issues = []
    for i, e in enumerate(members):
        if i not in keep:
            after = e.link.prev_id or "the start"
            issues.append(Issue(kind="reordered", evidence_id=e.id, position=e.link.seq,
                                detail=f"its stored position disagrees with the chain, which puts it after {after}"))
    return issues


def _lis(values: Sequence[int]) -> list[int]:
    """Indices of one longest strictly increasing subsequence (patience sorting, O(n log n))."""
    tails: list[int] = []
    tails_idx: list[int] = []
    parent = [-1] * len(values)
    for i, v in enumerate(values):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tails_idx.append(i)
        else:
            tails[k] = v
            tails_idx[k] = i
        parent[i] = tails_idx[k - 1] if k else -1
    out: list[int] = []
    i = tails_idx[-1] if tails_idx else -1
    while i != -1:
        out.append(i)
        i = parent[i]
    return out[::-1]

