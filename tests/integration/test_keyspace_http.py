"""The keyspace operations over HTTP, checked from outside against the real server
(``./run.sh``): ETags and preconditions, time to live, the ordered listing and
transactions, including what concurrent clients and a SIGKILL can make of them.

Most tests share one server per module and use their own key prefix; tests that need
a special flag or a restart start their own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest

from harness.client import Connection, Response, kv_path, request_once
from harness.proc import ServerProcess

pytestmark = pytest.mark.timeout(120)

ServerFactory = Callable[..., ServerProcess]
TEXT_PLAIN = "text/plain; charset=utf-8"


@pytest.fixture(scope="module")
def shared(target: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that only need their own keys."""
    tmp = tmp_path_factory.mktemp("keyspace")
    with ServerProcess(target, tmp / "data", log_dir=tmp / "logs", name="keyspace",
                       extra_args=["--max-value-bytes=65536"]) as server:
        server.start()
        yield server


async def call(server: ServerProcess, method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None) -> Response:
    """One request on a new connection, as the lsfr harness sends it."""
    return await request_once(server.connect_host, server.port, method, path, body, headers)


async def txn(server: ServerProcess, document: object) -> tuple[int, Any]:
    """``POST /txn``; the status and the decoded JSON answer (or the text of a 4xx)."""
    response = await call(server, "POST", "/txn", json.dumps(document).encode())
    if response.header("content-type") == "application/json":
        return response.status, json.loads(response.body)
    return response.status, response.text


def etag_of(value: bytes) -> str:
    """The ETag a value must have: BLAKE2b-128 in hex, quoted."""
    return '"' + hashlib.blake2b(value, digest_size=16).hexdigest() + '"'


def assert_text(response: Response, status: int, text: str) -> None:
    assert (response.status, response.text) == (status, text), response
    assert response.header("content-type") == TEXT_PLAIN


# -- ETags ------------------------------------------------------------------------------


async def test_put_and_get_carry_the_etag_of_the_value(shared: ServerProcess) -> None:
    put = await call(shared, "PUT", kv_path("et-a"), b"\x00binary\xff")
    get = await call(shared, "GET", kv_path("et-a"))
    assert put.status == get.status == 200
    assert put.header("etag") == get.header("etag") == etag_of(b"\x00binary\xff")
    assert get.body == b"\x00binary\xff" and get.header("walkv-ttl") is None


async def test_the_etag_changes_with_the_value_and_comes_back_with_it(
        shared: ServerProcess) -> None:
    tags = [(await call(shared, "PUT", kv_path("et-b"), v)).header("etag")
            for v in (b"one", b"two", b"one")]
    assert tags[0] != tags[1] and tags[0] == tags[2]


async def test_if_none_match_with_the_current_etag_is_304_without_a_body(
        shared: ServerProcess) -> None:
    tag = (await call(shared, "PUT", kv_path("et-c"), b"cached")).header("etag")
    assert tag is not None
    for field in (tag, f'"x", {tag}', "W/" + tag, "*"):
        response = await call(shared, "GET", kv_path("et-c"), headers={"If-None-Match": field})
        assert (response.status, response.body) == (304, b""), field
        assert response.header("etag") == tag and response.header("content-length") is None
    changed = await call(shared, "GET", kv_path("et-c"), headers={"If-None-Match": '"x"'})
    assert (changed.status, changed.body) == (200, b"cached")


async def test_if_none_match_on_a_missing_key_is_404(shared: ServerProcess) -> None:
    response = await call(shared, "GET", kv_path("et-none"), headers={"If-None-Match": "*"})
    assert_text(response, 404, "key not found\n")


async def test_get_if_match_is_412_unless_the_value_has_that_strong_etag(
        shared: ServerProcess) -> None:
    tag = (await call(shared, "PUT", kv_path("et-d"), b"v")).header("etag")
    assert tag is not None
    ok = await call(shared, "GET", kv_path("et-d"), headers={"If-Match": tag})
    assert (ok.status, ok.body) == (200, b"v")
    for field in ('"other"', "W/" + tag):
        response = await call(shared, "GET", kv_path("et-d"), headers={"If-Match": field})
        assert_text(response, 412, "precondition failed\n")
    missing = await call(shared, "GET", kv_path("et-missing"), headers={"If-Match": "*"})
    assert_text(missing, 412, "precondition failed\n")


@pytest.mark.parametrize(("header", "text"), [("If-Match", "invalid If-Match\n"),
                                              ("If-None-Match", "invalid If-None-Match\n")])
async def test_a_malformed_entity_tag_list_is_400(shared: ServerProcess, header: str,
                                                  text: str) -> None:
    for method, body in (("GET", b""), ("PUT", b"v"), ("DELETE", b"")):
        response = await call(shared, method, kv_path("et-bad"), body, {header: "unquoted"})
        assert_text(response, 400, text)
    assert (await call(shared, "GET", kv_path("et-bad"))).status == 404  # nothing written


# -- conditional writes --------------------------------------------------------------------


async def test_compare_and_set_with_if_match(shared: ServerProcess) -> None:
    first = await call(shared, "PUT", kv_path("cas-a"), b"v1")
    tag = first.header("etag")
    assert tag is not None
    second = await call(shared, "PUT", kv_path("cas-a"), b"v2", {"If-Match": tag})
    assert (second.status, second.header("etag")) == (200, etag_of(b"v2"))
    stale = await call(shared, "PUT", kv_path("cas-a"), b"v3", {"If-Match": tag})
    assert_text(stale, 412, "precondition failed\n")
    assert (await call(shared, "GET", kv_path("cas-a"))).body == b"v2"


async def test_if_match_star_needs_the_key_to_exist(shared: ServerProcess) -> None:
    absent = await call(shared, "PUT", kv_path("cas-b"), b"v", {"If-Match": "*"})
    assert_text(absent, 412, "precondition failed\n")
    assert (await call(shared, "GET", kv_path("cas-b"))).status == 404
    await call(shared, "PUT", kv_path("cas-b"), b"old")
    assert (await call(shared, "PUT", kv_path("cas-b"), b"new", {"If-Match": "*"})).status == 200
    assert (await call(shared, "GET", kv_path("cas-b"))).body == b"new"


async def test_if_none_match_star_creates_only(shared: ServerProcess) -> None:
    assert (await call(shared, "PUT", kv_path("cas-c"), b"first",
                       {"If-None-Match": "*"})).status == 200
    again = await call(shared, "PUT", kv_path("cas-c"), b"second", {"If-None-Match": "*"})
    assert_text(again, 412, "precondition failed\n")
    assert (await call(shared, "GET", kv_path("cas-c"))).body == b"first"


async def test_if_none_match_a_tag_writes_unless_the_value_has_it(shared: ServerProcess) -> None:
    await call(shared, "PUT", kv_path("cas-d"), b"a")
    same = await call(shared, "PUT", kv_path("cas-d"), b"b", {"If-None-Match": etag_of(b"a")})
    assert_text(same, 412, "precondition failed\n")
    other = await call(shared, "PUT", kv_path("cas-d"), b"b", {"If-None-Match": etag_of(b"z")})
    assert other.status == 200
    assert (await call(shared, "GET", kv_path("cas-d"))).body == b"b"


async def test_conditional_delete(shared: ServerProcess) -> None:
    await call(shared, "PUT", kv_path("cas-e"), b"v")
    wrong = await call(shared, "DELETE", kv_path("cas-e"), headers={"If-Match": etag_of(b"w")})
    assert_text(wrong, 412, "precondition failed\n")
    right = await call(shared, "DELETE", kv_path("cas-e"), headers={"If-Match": etag_of(b"v")})
    assert (right.status, right.body) == (200, b"")
    assert (await call(shared, "GET", kv_path("cas-e"))).status == 404
    gone = await call(shared, "DELETE", kv_path("cas-e"), headers={"If-Match": "*"})
    assert_text(gone, 412, "precondition failed\n")


async def test_a_write_precondition_no_single_check_expresses_is_400(
        shared: ServerProcess) -> None:
    both = f"{etag_of(b'a')}, {etag_of(b'b')}"
    response = await call(shared, "PUT", kv_path("cas-f"), b"v", {"If-Match": both})
    assert_text(response, 400,
                "precondition not supported: more than one entity tag that could match\n")
    assert (await call(shared, "GET", kv_path("cas-f"))).status == 404


async def test_concurrent_create_only_puts_have_exactly_one_winner(
        shared: ServerProcess) -> None:
    values = [b"writer-%d" % i for i in range(24)]
    answers = await asyncio.gather(*(
        call(shared, "PUT", kv_path("race-create"), v, {"If-None-Match": "*"}) for v in values))
    statuses = [a.status for a in answers]
    assert sorted(statuses) == [200] + [412] * (len(values) - 1), statuses
    winner = values[statuses.index(200)]
    stored = await call(shared, "GET", kv_path("race-create"))
    assert stored.body == winner and stored.header("etag") == etag_of(winner)


async def test_concurrent_compare_and_set_from_one_version_has_one_winner(
        shared: ServerProcess) -> None:
    tag = (await call(shared, "PUT", kv_path("race-cas"), b"base")).header("etag")
    assert tag is not None
    answers = await asyncio.gather(*(
        call(shared, "PUT", kv_path("race-cas"), b"next-%d" % i, {"If-Match": tag})
        for i in range(16)))
    assert sorted(a.status for a in answers) == [200] + [412] * 15


# -- time to live -----------------------------------------------------------------------


async def test_a_key_with_a_ttl_says_so_and_expires(shared: ServerProcess) -> None:
    put = await call(shared, "PUT", kv_path("ttl-a") + "?ttl=0.2", b"brief")
    assert (put.status, put.header("etag")) == (200, etag_of(b"brief"))
    get = await call(shared, "GET", kv_path("ttl-a"))
    assert get.body == b"brief"
    ttl = get.header("walkv-ttl")
    assert ttl is not None and re.fullmatch(r"0\.[0-9]{3}", ttl) and 0 < float(ttl) <= 0.2
    await asyncio.sleep(0.3)
    assert_text(await call(shared, "GET", kv_path("ttl-a")), 404, "key not found\n")
    status, page = await list_page(shared, "prefix=ttl-a")
    assert (status, page["items"]) == (200, [])


async def test_a_plain_put_clears_the_ttl(shared: ServerProcess) -> None:
    await call(shared, "PUT", kv_path("ttl-b") + "?ttl=0.3", b"v")
    await call(shared, "PUT", kv_path("ttl-b"), b"kept")
    await asyncio.sleep(0.4)
    get = await call(shared, "GET", kv_path("ttl-b"))
    assert (get.status, get.body, get.header("walkv-ttl")) == (200, b"kept", None)


async def test_a_long_ttl_counts_down_in_seconds(shared: ServerProcess) -> None:
    await call(shared, "PUT", kv_path("ttl-c") + "?ttl=3600", b"v")
    ttl = (await call(shared, "GET", kv_path("ttl-c"))).header("walkv-ttl")
    assert ttl is not None and 3590 < float(ttl) <= 3600


@pytest.mark.parametrize("ttl", ["0", "-1", "abc", "", "315360001", "1&ttl=2"])
async def test_a_bad_ttl_is_400_and_nothing_is_stored(shared: ServerProcess, ttl: str) -> None:
    response = await call(shared, "PUT", kv_path("ttl-bad") + "?ttl=" + ttl, b"v")
    assert_text(response, 400, "invalid ttl\n")
    assert (await call(shared, "GET", kv_path("ttl-bad"))).status == 404


async def test_ttl_and_precondition_together(shared: ServerProcess) -> None:
    put = await call(shared, "PUT", kv_path("ttl-d") + "?ttl=0.2", b"v", {"If-None-Match": "*"})
    assert put.status == 200
    await asyncio.sleep(0.3)
    # expired, so absent: create-only succeeds again
    again = await call(shared, "PUT", kv_path("ttl-d"), b"w", {"If-None-Match": "*"})
    assert again.status == 200


# -- the listing ------------------------------------------------------------------------


async def list_page(server: ServerProcess, query: str) -> tuple[int, Any]:
    response = await call(server, "GET", "/kv?" + query)
    if response.status != 200:
        return response.status, response.text
    assert response.header("content-type") == "application/json"
    return 200, json.loads(response.body)


def item_key(item: dict[str, str]) -> bytes:
    if "key" in item:
        return item["key"].encode()
    return base64.b64decode(item["key_b64"])


async def put_many(server: ServerProcess, pairs: list[tuple[bytes, bytes]]) -> None:
    """Store many keys with a few transactions of up to 128 puts."""
    for start in range(0, len(pairs), 128):
        ops = [{"op": "put", "key_b64": base64.b64encode(k).decode(),
                "value_b64": base64.b64encode(v).decode()} for k, v in pairs[start:start + 128]]
        status, answer = await txn(server, {"ops": ops})
        assert status == 200, answer


async def test_listing_pages_through_2500_keys_in_byte_order(shared: ServerProcess) -> None:
    suffixes = [b"%04d" % i for i in range(2400)] + [
        "é".encode() + b"%02d" % i for i in range(50)] + [b"\xff\xfe%02d" % i for i in range(50)]
    keys = [b"page/" + s for s in suffixes]
    await put_many(shared, [(k, b"v" + k[-2:]) for k in keys])
    await call(shared, "PUT", kv_path("page0"), b"outside the prefix")
    for limit in (1000, 333):
        listed: list[bytes] = []
        cursor = None
        pages = 0
        while True:
            query = f"prefix=page%2F&limit={limit}" if cursor is None else \
                f"limit={limit}&cursor={cursor}"
            status, page = await list_page(shared, query)
            assert status == 200, page
            listed += [item_key(item) for item in page["items"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        assert listed == sorted(keys), f"limit {limit}"
        assert pages == -(-len(keys) // limit)


async def test_listing_with_values_and_bounds(shared: ServerProcess) -> None:
    await put_many(shared, [(b"lv/%d" % i, b"value %d" % i) for i in range(5)])
    status, page = await list_page(shared, "prefix=lv%2F&start_after=lv%2F1&end=lv%2F4"
                                           "&values=true")
    assert status == 200
    assert page == {"items": [{"key": "lv/2", "value": "value 2"},
                              {"key": "lv/3", "value": "value 3"}], "next": None}


async def test_keys_and_values_that_are_not_utf8_come_back_base64(shared: ServerProcess) -> None:
    key, value = b"b64/\xff\x00k", b"\x80\x81"
    path = "/kv/" + quote_from_bytes(key, safe="")
    assert (await call(shared, "PUT", path, value)).status == 200
    status, page = await list_page(shared, "prefix=b64%2F&values=true")
    assert status == 200
    assert page["items"] == [{"key_b64": base64.b64encode(key).decode(),
                              "value_b64": base64.b64encode(value).decode()}]


async def test_a_page_is_one_consistent_state_under_concurrent_writes(
        shared: ServerProcess) -> None:
    # A transaction moves a token between two keys; every listing must show exactly one.
    await put_many(shared, [(b"mv/a", b"token")])
    stop = asyncio.Event()

    async def mover() -> None:
        here, there = "mv/a", "mv/b"
        while not stop.is_set():
            status, answer = await txn(shared, {
                "compare": [{"key": here, "present": True}],
                "ops": [{"op": "delete", "key": here},
                        {"op": "put", "key": there, "value": "token"}]})
            assert status == 200, answer
            here, there = there, here

    task = asyncio.create_task(mover())
    try:
        for _ in range(40):
            status, page = await list_page(shared, "prefix=mv%2F")
            assert status == 200 and len(page["items"]) == 1, page
    finally:
        stop.set()
        await task


@pytest.mark.parametrize(("query", "text"), [
    ("limit=0", "invalid limit: 1 to 10000\n"), ("limit=10001", "invalid limit: 1 to 10000\n"),
    ("values=maybe", "invalid values: true or false\n"), ("cursor=%21", "invalid cursor\n"),
    ("prefix=a&prefix=b", "prefix given twice\n")])
async def test_bad_listing_parameters_are_400_naming_them(shared: ServerProcess, query: str,
                                                          text: str) -> None:
    assert_text(await call(shared, "GET", "/kv?" + query), 400, text)


async def test_other_methods_on_the_listing_and_txn_are_405(shared: ServerProcess) -> None:
    for method, path, allow in (("POST", "/kv", "GET"), ("DELETE", "/kv", "GET"),
                                ("GET", "/txn", "POST"), ("PUT", "/txn", "POST")):
        response = await call(shared, method, path, b"{}")
        assert_text(response, 405, "method not allowed\n")
        assert response.header("allow") == allow


# -- transactions -----------------------------------------------------------------------


async def test_a_transaction_runs_its_ops_and_reports_each(shared: ServerProcess) -> None:
    await call(shared, "PUT", kv_path("tx-a/old"), b"gone soon")
    status, answer = await txn(shared, {
        "compare": [{"key": "tx-a/n", "absent": True}, {"key": "tx-a/old", "present": True},
                    {"key": "tx-a/old", "etag": etag_of(b"gone soon")},
                    {"key": "tx-a/old", "value": "gone soon"}],
        "ops": [{"op": "incr", "key": "tx-a/n", "by": 5}, {"op": "incr", "key": "tx-a/n"},
                {"op": "put", "key": "tx-a/new", "value": "v"},
                {"op": "delete", "key": "tx-a/old"}, {"op": "delete", "key": "tx-a/never"},
                {"op": "get", "key": "tx-a/n"}, {"op": "get", "key": "tx-a/old"}]})
    assert (status, answer) == (200, {"succeeded": True, "results": [
        {"op": "incr", "value": 5}, {"op": "incr", "value": 6}, {"op": "put"},
        {"op": "delete", "deleted": True}, {"op": "delete", "deleted": False},
        {"op": "get", "found": True, "value": "6"}, {"op": "get", "found": False}]})
    assert (await call(shared, "GET", kv_path("tx-a/new"))).body == b"v"
    assert (await call(shared, "GET", kv_path("tx-a/old"))).status == 404


async def test_a_failed_condition_is_412_and_applies_nothing(shared: ServerProcess) -> None:
    status, answer = await txn(shared, {
        "compare": [{"key": "tx-b/x", "absent": True}, {"key": "tx-b/y", "present": True}],
        "ops": [{"op": "put", "key": "tx-b/x", "value": "v"}]})
    assert (status, answer) == (412, {"succeeded": False, "failed": {"index": 1, "key": "tx-b/y"}})
    assert (await call(shared, "GET", kv_path("tx-b/x"))).status == 404


async def test_an_op_that_cannot_run_is_409_and_applies_nothing(shared: ServerProcess) -> None:
    await call(shared, "PUT", kv_path("tx-c/word"), b"not a number")
    status, answer = await txn(shared, {"ops": [
        {"op": "put", "key": "tx-c/first", "value": "v"},
        {"op": "incr", "key": "tx-c/word"}]})
    assert (status, answer) == (409, {"error": "value is not an integer or out of range",
                                      "index": 1})
    assert (await call(shared, "GET", kv_path("tx-c/first"))).status == 404
    await call(shared, "PUT", kv_path("tx-c/max"), b"9223372036854775807")
    status, answer = await txn(shared, {"ops": [{"op": "incr", "key": "tx-c/max"}]})
    assert (status, answer) == (409, {"error": "increment or decrement would overflow",
                                      "index": 0})


async def test_concurrent_increments_all_count(shared: ServerProcess) -> None:
    answers = await asyncio.gather(*(
        txn(shared, {"ops": [{"op": "incr", "key": "tx-d/counter"}]}) for _ in range(40)))
    values = sorted(answer["results"][0]["value"] for status, answer in answers if status == 200)
    assert values == list(range(1, 41))
    assert (await call(shared, "GET", kv_path("tx-d/counter"))).body == b"40"


async def test_base64_keys_and_values_in_a_transaction(shared: ServerProcess) -> None:
    key, value = b"tx-e/\xfe", b"\x00\xff"
    encoded = {"key_b64": base64.b64encode(key).decode()}
    status, answer = await txn(shared, {"ops": [
        {"op": "put", **encoded, "value_b64": base64.b64encode(value).decode()},
        {"op": "get", **encoded}]})
    assert (status, answer["results"][1]) == (200, {
        "op": "get", "found": True, "value_b64": base64.b64encode(value).decode()})
    assert (await call(shared, "GET", "/kv/" + quote_from_bytes(key, safe=""))).body == value


async def test_a_put_with_a_ttl_in_a_transaction_expires(shared: ServerProcess) -> None:
    status, _ = await txn(shared, {"ops": [
        {"op": "put", "key": "tx-f", "value": "v", "ttl": 0.2}]})
    assert status == 200
    assert (await call(shared, "GET", kv_path("tx-f"))).header("walkv-ttl") is not None
    await asyncio.sleep(0.3)
    assert (await call(shared, "GET", kv_path("tx-f"))).status == 404


@pytest.mark.parametrize(("body", "where"), [
    (b"not json", "not JSON"), (b"[]", "the body is not a JSON object"),
    (json.dumps({"ops": [{"op": "put", "key": "k"}]}).encode(), "ops[0]: value missing"),
    (json.dumps({"ops": [{"op": "inc", "key": "k"}]}).encode(), "ops[0].op: must be one of"),
    (json.dumps({"compare": [{"key": "k", "absent": False}]}).encode(),
     "compare[0].absent: must be true")])
async def test_a_malformed_transaction_is_400_saying_where(shared: ServerProcess, body: bytes,
                                                           where: str) -> None:
    response = await call(shared, "POST", "/txn", body)
    assert response.status == 400 and response.header("content-type") == TEXT_PLAIN
    assert response.text.startswith("invalid transaction: ") and where in response.text


async def test_too_many_conditions_and_ops_is_413(shared: ServerProcess) -> None:
    status, text = await txn(shared, {"compare": [{"key": "k", "absent": True}] * 64,
                                      "ops": [{"op": "get", "key": "k"}] * 65})
    assert (status, text) == (413, "transaction too large: at most 128 conditions and "
                                   "operations\n")


async def test_a_body_over_the_value_limit_is_413(shared: ServerProcess) -> None:
    big = json.dumps({"ops": [{"op": "put", "key": "k", "value": "x" * 70_000}]}).encode()
    response = await call(shared, "POST", "/txn", big)
    assert_text(response, 413, "value too large\n")


async def test_answers_to_the_new_routes_are_counted_by_method_and_status(
        shared: ServerProcess) -> None:
    def count(text: str, method: str, status: int) -> float:
        found = re.search(rf'walkv_http_requests_total{{method="{method}",status="{status}"}} '
                          r"(\S+)", text)
        return float(found.group(1)) if found else 0.0

    before = (await call(shared, "GET", "/metrics")).text
    await txn(shared, {"ops": [{"op": "put", "key": f"m/{i}", "value": "v"} for i in range(5)]})
    await txn(shared, {"compare": [{"key": "m/never", "present": True}]})
    await call(shared, "PUT", kv_path("m/cas"), b"v", {"If-Match": "*"})
    await call(shared, "PUT", kv_path("m/plain"), b"v")
    after = (await call(shared, "GET", "/metrics")).text
    assert count(after, "POST", 200) - count(before, "POST", 200) == 1
    assert count(after, "POST", 412) - count(before, "POST", 412) == 1
    assert count(after, "PUT", 412) - count(before, "PUT", 412) == 1
    # the transaction's five records are effects, not PUT requests
    assert count(after, "PUT", 200) - count(before, "PUT", 200) == 1


# -- durability -------------------------------------------------------------------------


@pytest.mark.timeout(150)
async def test_acknowledged_transactions_and_deadlines_survive_sigkill(
        make_server: ServerFactory) -> None:
    server = make_server()
    server.start()
    conns = [await Connection.open(server.connect_host, server.port) for _ in range(4)]
    body = json.dumps({"ops": [{"op": "incr", "key": "k/counter"},
                               {"op": "put", "key": "k/long", "value": "v", "ttl": 3600}]})
    acknowledged = 0
    for _ in range(10):
        answers = await asyncio.gather(*(c.request("POST", "/txn", body.encode())
                                         for c in conns))
        acknowledged += sum(a.status == 200 for a in answers)
    server.kill()
    for conn in conns:
        conn.abort()
    server.start()
    assert (await call(server, "GET", kv_path("k/counter"))).body == str(acknowledged).encode()
    long = await call(server, "GET", kv_path("k/long"))
    ttl = long.header("walkv-ttl")
    assert long.status == 200 and ttl is not None and 3500 < float(ttl) <= 3600


# -- the README's example ------------------------------------------------------------------


async def test_the_readme_transaction_example_runs_as_documented(
        make_server: ServerFactory) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [block] = re.findall(r"```json\n(.*?)```", readme, re.S)
    server = make_server()
    server.start()
    assert (await call(server, "PUT", kv_path("stock"), b"3")).status == 200
    first = await call(server, "POST", "/txn", block.encode())
    second = await call(server, "POST", "/txn", block.encode())
    assert (first.status, json.loads(first.body)) == (200, {"succeeded": True, "results": [
        {"op": "incr", "value": 2}, {"op": "put"}, {"op": "get", "found": True, "value": "2"}]})
    assert (second.status, json.loads(second.body)) == (
        412, {"succeeded": False, "failed": {"index": 0, "key": "stock"}})
    order = await call(server, "GET", kv_path("order/17"))
    assert order.body == b"paid" and order.header("walkv-ttl") is not None
