"""If-Match and If-None-Match: the entity-tag lists as sent, a read's verdict (RFC 9110
section 13.2.2) and a write's condition, each table fed whole."""

from __future__ import annotations

import pytest

from server.http.codec import Conditions
from server.http.preconditions import (
    NEVER,
    PreconditionError,
    Preconditions,
    TagList,
    WriteCondition,
    parse,
)
from server.http.replies import PROCEED
from storage import Check, Compare, etag

TAG = etag(b"value").encode()
OTHER = etag(b"other").encode()
Q, QO = b'"' + TAG + b'"', b'"' + OTHER + b'"'

PARSED = {
    "star": (b"*", TagList(any=True)),
    "star_with_spaces": (b"  * ", TagList(any=True)),
    "one": (b'"a"', TagList(strong=frozenset({b"a"}))),
    "weak": (b'W/"a"', TagList(weak=frozenset({b"a"}))),
    "list": (b'"a", W/"b" ,"c"', TagList(strong=frozenset({b"a", b"c"}),
                                          weak=frozenset({b"b"}))),
    "empty_elements": (b', "a",, ,"b",', TagList(strong=frozenset({b"a", b"b"}))),
    "comma_inside": (b'"a,b"', TagList(strong=frozenset({b"a,b"}))),
    "empty_tag": (b'""', TagList(strong=frozenset({b""}))),
    "star_inside_quotes": (b'"*"', TagList(strong=frozenset({b"*"}))),
    "obs_text": (b'"\xe9"', TagList(strong=frozenset({b"\xe9"}))),
    "empty_list": (b"", TagList()),
}


@pytest.mark.parametrize(("field", "tags"), PARSED.values(), ids=PARSED.keys())
def test_entity_tag_lists_are_parsed(field: bytes, tags: TagList) -> None:
    assert parse("If-Match", field) == tags


@pytest.mark.parametrize("field", [
    b"abc", b'"abc', b'abc"', b'"a" "b"', b'*, "a"', b'w/"a"', b'W/ "a"', b'"a\x01"',
    b'"a"b', b"**"])
def test_malformed_lists_are_refused_naming_the_field(field: bytes) -> None:
    with pytest.raises(PreconditionError, match=r"^invalid If-None-Match$"):
        parse("If-None-Match", field)


def pre(if_match: bytes | None = None, if_none_match: bytes | None = None) -> Preconditions:
    return Preconditions.of(Conditions(if_match, if_none_match))


# -- reads ------------------------------------------------------------------------------

READS = {
    # (If-Match, If-None-Match, entity tag found or None): verdict
    "match_star_found": (b"*", None, TAG, PROCEED),
    "match_star_missing": (b"*", None, None, 412),
    "match_tag": (Q, None, TAG, PROCEED),
    "match_one_of_a_list": (b'"x", ' + Q, None, TAG, PROCEED),
    "match_other_tag": (QO, None, TAG, 412),
    "match_weak_never": (b"W/" + Q, None, TAG, 412),
    "match_tag_missing": (Q, None, None, 412),
    "none_match_star_found": (None, b"*", TAG, 304),
    "none_match_star_missing": (None, b"*", None, PROCEED),
    "none_match_tag": (None, Q, TAG, 304),
    "none_match_weak_compares_weakly": (None, b"W/" + Q, TAG, 304),
    "none_match_other": (None, QO, TAG, PROCEED),
    "none_match_missing": (None, Q, None, PROCEED),
    "if_match_first": (QO, Q, TAG, 412),
    "both_hold": (Q, QO, TAG, PROCEED),
    "match_then_not_modified": (Q, Q, TAG, 304),
}


@pytest.mark.parametrize(("if_match", "if_none_match", "found", "verdict"), READS.values(),
                         ids=READS.keys())
def test_a_read_is_judged_as_rfc_9110_orders_it(
        if_match: bytes | None, if_none_match: bytes | None, found: bytes | None,
        verdict: int) -> None:
    assert pre(if_match, if_none_match).judge_read(found) == verdict


# -- writes -----------------------------------------------------------------------------

K = b"k"
WRITES = {
    "nothing": (None, None, None),
    "match_star": (b"*", None, WriteCondition(Compare(K, Check.PRESENT))),
    "match_tag": (Q, None, WriteCondition(Compare(K, Check.ETAG, TAG))),
    "match_tag_among_impossible_ones": (b'"x", W/' + QO + b", " + Q, None,
                                        WriteCondition(Compare(K, Check.ETAG, TAG))),
    "match_only_impossible_tags": (b'"x", W/' + Q, None, NEVER),
    "none_match_star": (None, b"*", WriteCondition(Compare(K, Check.ABSENT))),
    "none_match_tag": (None, Q, WriteCondition(Compare(K, Check.ETAG, TAG), negated=True)),
    "none_match_weak_tag": (None, b"W/" + Q,
                            WriteCondition(Compare(K, Check.ETAG, TAG), negated=True)),
    "none_match_only_impossible_tags": (None, b'"x", "y"', None),
    "both_star": (b"*", b"*", NEVER),
    "match_tag_none_match_star": (Q, b"*", NEVER),
    "match_and_none_match_same_tag": (Q, b"W/" + Q, NEVER),
    "match_tag_none_match_other": (Q, QO, WriteCondition(Compare(K, Check.ETAG, TAG))),
    "match_impossible_none_match_star": (b'"x"', b"*", NEVER),
    "match_star_none_match_impossible": (b"*", b'"x"', WriteCondition(Compare(K, Check.PRESENT))),
}


@pytest.mark.parametrize(("if_match", "if_none_match", "condition"), WRITES.values(),
                         ids=WRITES.keys())
def test_a_write_becomes_one_condition(
        if_match: bytes | None, if_none_match: bytes | None,
        condition: WriteCondition | None) -> None:
    assert pre(if_match, if_none_match).for_write(K) == condition


@pytest.mark.parametrize(("if_match", "if_none_match", "reason"), [
    (Q + b", " + QO, None, "more than one entity tag"),
    (None, QO + b", W/" + Q, "more than one entity tag"),
    (b"*", Q, "If-Match: \\* with an If-None-Match entity tag"),
])
def test_a_write_condition_no_transaction_can_express_is_refused(
        if_match: bytes | None, if_none_match: bytes | None, reason: str) -> None:
    with pytest.raises(PreconditionError, match=reason):
        pre(if_match, if_none_match).for_write(K)


def test_a_list_naming_one_tag_twice_is_one_tag() -> None:
    assert pre(Q + b", " + Q).for_write(K) == WriteCondition(Compare(K, Check.ETAG, TAG))
