"""`If-Match` and `If-None-Match` (RFC 9110 section 13): parsing the entity-tag lists,
judging a read on the value it found, and turning a write's preconditions into the
conditions of a transaction the committer evaluates.

walkv's entity tags are strong: the storage's ``etag`` of the value, 32 lowercase hex
digits, sent in quotes. If-Match compares strongly (a weak tag ``W/"..."`` never
matches, RFC 9110 section 13.1.1); If-None-Match weakly (``W/`` is ignored). A tag of
any other form can never match a walkv ETag, so it is judged as one that does not.

The order of evaluation is RFC 9110 section 13.2.2: If-Match first (false: 412), then
If-None-Match (false: 304 for a GET, 412 for a write). If-Unmodified-Since and
If-Modified-Since are ignored: walkv keeps no modification dates, and the RFC has a
server without them ignore those fields.

A write's preconditions become ``Compare`` conditions, which hold together (and): one
entity tag or ``*`` per field can be expressed; a list with several tags that could
match, or ``If-Match: *`` with an If-None-Match tag, cannot, and is answered 400
rather than judged wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from server.http.codec import Conditions
from server.http.replies import PROCEED
from storage import Check, Compare

_LIST: Final = re.compile(
    rb'[ \t]*(?:(?:W/)?"[\x21\x23-\x7e\x80-\xff]*")?[ \t]*'
    rb'(?:,[ \t]*(?:(?:W/)?"[\x21\x23-\x7e\x80-\xff]*")?[ \t]*)*')
_TAG: Final = re.compile(rb'(W/)?"([^"]*)"')
_WALKV_TAG: Final = re.compile(rb"[0-9a-f]{32}")


class PreconditionError(ValueError):
    """A precondition field that is malformed or that cannot be evaluated atomically;
    ``str(error)`` is the reason, said to the client with a 400."""


@dataclass(frozen=True, slots=True)
class TagList:
    """One parsed field: ``*`` (``any``), or the opaque tags of its entity tags."""

    any: bool = False
    strong: frozenset[bytes] = frozenset()
    weak: frozenset[bytes] = frozenset()

    def matches_strongly(self, tag: bytes) -> bool:
        """If-Match's comparison of a current entity tag."""
        return self.any or tag in self.strong

    def matches_weakly(self, tag: bytes) -> bool:
        """If-None-Match's comparison of a current entity tag."""
        return self.any or tag in self.strong or tag in self.weak

    def candidates(self, weak_too: bool) -> frozenset[bytes]:
        """The tags that could be a walkv entity tag."""
        tags = self.strong | self.weak if weak_too else self.strong
        return frozenset(t for t in tags if _WALKV_TAG.fullmatch(t))


def parse(name: str, field: bytes) -> TagList:
    """``"*"`` or a list of entity tags (``"a", W/"b"``; empty elements allowed)."""
    if field.strip(b" \t") == b"*":
        return TagList(any=True)
    if not _LIST.fullmatch(field):
        raise PreconditionError(f"invalid {name}")
    strong: set[bytes] = set()
    weak: set[bytes] = set()
    for w, tag in _TAG.findall(field):
        (weak if w else strong).add(tag)
    return TagList(strong=frozenset(strong), weak=frozenset(weak))


@dataclass(frozen=True, slots=True)
class Preconditions:
    """A request's parsed If-Match and If-None-Match (None: absent)."""

    if_match: TagList | None
    if_none_match: TagList | None

    @classmethod
    def of(cls, conditions: Conditions) -> Preconditions:
        """Parse both fields (PreconditionError if one is malformed)."""
        return cls(_parsed("If-Match", conditions.if_match),
                   _parsed("If-None-Match", conditions.if_none_match))

    def judge_read(self, tag: bytes | None) -> int:
        """A GET's verdict on the value read (``tag`` None: nothing found): ``PROCEED``,
        412 or 304."""
        if self.if_match is not None and (tag is None or not self.if_match.matches_strongly(tag)):
            return 412
        if self.if_none_match is not None and tag is not None \
                and self.if_none_match.matches_weakly(tag):
            return 304
        return PROCEED

    def for_write(self, key: bytes) -> WriteCondition | None:
        """What a write of ``key`` must check, or None if it need not check anything."""
        must = _condition(key, self.if_match, none_match=False)
        must_not = _condition(key, self.if_none_match, none_match=True)
        if must is None or must_not is None:
            return must or must_not
        if must.compare is None or must_not.compare is None:
            return NEVER
        return _both(must.compare, must_not.compare)


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """The condition a write needs: ``compare`` must hold (``negated``: must not);
    ``compare`` None: it can never hold (``NEVER``)."""

    compare: Compare | None
    negated: bool = False


NEVER: Final = WriteCondition(None)
"""The preconditions cannot hold, whatever the key holds: 412 without a transaction."""


def _both(must: Compare, must_not: Compare) -> WriteCondition:
    """If-Match and If-None-Match together. If-Match holding means the key is present
    with one known tag, so If-None-Match adds nothing unless it names that very tag."""
    if must.check is Check.ETAG:
        if must_not.check is Check.ABSENT or must_not.operand == must.operand:
            return NEVER
        return WriteCondition(must)
    if must_not.check is Check.ABSENT:
        return NEVER  # present and absent at once
    raise PreconditionError(
        "precondition not supported: If-Match: * with an If-None-Match entity tag")


def _parsed(name: str, field: bytes | None) -> TagList | None:
    return None if field is None else parse(name, field)


def _condition(key: bytes, tags: TagList | None, none_match: bool) -> WriteCondition | None:
    """One field as a condition: If-Match, or If-None-Match (``none_match``), which
    holds where If-Match would not (and compares weakly)."""
    if tags is None:
        return None
    if tags.any:
        return WriteCondition(Compare(key, Check.ABSENT if none_match else Check.PRESENT))
    tag = _one(tags.candidates(weak_too=none_match))
    if tag is None:  # no walkv tag listed: If-Match never holds, If-None-Match always
        return None if none_match else NEVER
    return WriteCondition(Compare(key, Check.ETAG, tag), negated=none_match)


def _one(tags: frozenset[bytes]) -> bytes | None:
    if len(tags) > 1:
        raise PreconditionError(
            "precondition not supported: more than one entity tag that could match")
    return next(iter(tags), None)
