"""SIGKILL of the whole process group, then recovery, checked against what clients saw.

A crash is what the lsfr harness does: SIGKILL to the group, 1 s pause, a new start
on the same port and working directory. After each restart every acknowledged write
must read back exactly; the concurrent test also checks in-flight writes against an
oracle (harness/oracle.py) and reports lost acknowledged writes, resurrected deletes
and phantom values separately. Transactions, counters and times to live (``POST /txn``,
``PUT ?ttl=``) must come back whole, counted, and with their deadlines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

import pytest

from harness.burst import burst_items, burst_put, raise_nofile_limit
from harness.client import KVClient, kv_path, request_once
from harness.crash.workload import RandomWrites, fetch_state
from harness.oracle import Oracle
from harness.proc import ServerProcess

ServerFactory = Callable[..., ServerProcess]

CRASH_PAUSE_S = 1.0  # lsfr waits 1 s between the kill and the next start


async def crash_and_restart(server: ServerProcess) -> None:
    """SIGKILL the group, wait like lsfr does, start again on the same port."""
    server.kill()
    await asyncio.sleep(CRASH_PAUSE_S)
    await asyncio.to_thread(server.start)


async def put_once(server: ServerProcess, key: str | bytes, value: bytes) -> None:
    """PUT on a new connection; the reply must be 200 (an acknowledged write)."""
    response = await request_once(server.connect_host, server.port, "PUT", kv_path(key), value)
    assert response.status == 200, f"PUT {key!r}: {response.status} {response.text!r}"


async def delete_once(server: ServerProcess, key: str | bytes) -> None:
    """DELETE on a new connection; the reply must be 200."""
    response = await request_once(server.connect_host, server.port, "DELETE", kv_path(key))
    assert response.status == 200, f"DELETE {key!r}: {response.status} {response.text!r}"


async def assert_state(server: ServerProcess, expected: Mapping[bytes, bytes | None]) -> None:
    """Every key reads back exactly (None: must be 404)."""
    recovered = await fetch_state(server.connect_host, server.port, list(expected))
    wrong = {key: recovered[key] for key in expected if recovered[key] != expected[key]}
    if wrong:
        details = "\n".join(
            f"{key!r}: want {_short(expected[key])}, got {_short(got)}"
            for key, got in list(wrong.items())[:20]
        )
        pytest.fail(f"{len(wrong)} of {len(expected)} keys wrong after restart:\n{details}")


def _short(value: bytes | None) -> str:
    return "<absent>" if value is None else f"{value[:40]!r} ({len(value)} bytes)"


@pytest.mark.timeout(60)
async def test_binary_values_and_one_mib_value_survive_sigkill(server: ServerProcess) -> None:
    expected = {
        b"bin-all-bytes": bytes(range(256)) * 3,
        b"bin-invalid-utf8": b"\xff\xfe\xc3\x28\x00\x80",
        b"bin-crlf": b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"bin-one-mib": bytes(range(251)) * 4177 + b"end",  # 1 MiB + a bit, no 2^k pattern
        "bin-ключ/🔑".encode(): b"\x00unicode key\x00",
    }
    for key, value in expected.items():
        await put_once(server, key, value)
    await crash_and_restart(server)
    await assert_state(server, expected)


@pytest.mark.timeout(60)
async def test_put_overwrite_delete_sequence_survives_sigkill(server: ServerProcess) -> None:
    await put_once(server, "seq-a", b"a1")
    await put_once(server, "seq-b", b"b1")
    await put_once(server, "seq-c", b"c1")
    await put_once(server, "seq-a", b"a2, overwritten")
    await delete_once(server, "seq-b")
    await delete_once(server, "seq-never-existed")
    await put_once(server, "seq-c", b"c2")
    await delete_once(server, "seq-c")
    await put_once(server, "seq-c", b"c3, back again")
    await crash_and_restart(server)
    await assert_state(
        server,
        {
            b"seq-a": b"a2, overwritten",
            b"seq-b": None,
            b"seq-c": b"c3, back again",
            b"seq-never-existed": None,
        },
    )


@pytest.mark.timeout(60)
async def test_clear_survives_sigkill(server: ServerProcess) -> None:
    expected: dict[bytes, bytes | None] = {}
    for i in range(30):
        await put_once(server, b"before-clear-%d" % i, b"v%d" % i)
        expected[b"before-clear-%d" % i] = None
    response = await request_once(server.connect_host, server.port, "DELETE", "/clear")
    assert response.status == 200
    await put_once(server, "after-clear", b"kept")
    expected[b"after-clear"] = b"kept"
    await crash_and_restart(server)
    await assert_state(server, expected)


async def put_ttl_once(server: ServerProcess, key: str, value: bytes, ttl: float) -> None:
    """PUT with a time to live on a new connection; the reply must be 200."""
    response = await request_once(server.connect_host, server.port, "PUT",
                                  f"{kv_path(key)}?ttl={ttl}", value)
    assert response.status == 200, f"PUT {key!r}?ttl={ttl}: {response.status}"


async def txn_once(server: ServerProcess, body: object) -> tuple[int, object]:
    """POST /txn on a new connection: the status and the JSON reply."""
    response = await request_once(server.connect_host, server.port, "POST", "/txn",
                                  json.dumps(body).encode(),
                                  {"Content-Type": "application/json"})
    return response.status, json.loads(response.body)


@pytest.mark.timeout(60)
async def test_transactions_counters_and_ttls_survive_sigkill(server: ServerProcess) -> None:
    ops = [{"op": "put", "key": f"txn-{part}", "value": f"v-{part}"} for part in "abc"]
    assert (await txn_once(server, {"ops": ops}))[0] == 200
    refused = {"compare": [{"key": "txn-a", "absent": True}],
               "ops": [{"op": "put", "key": "txn-refused", "value": "never"}]}
    assert (await txn_once(server, refused))[0] == 412
    incr = {"ops": [{"op": "incr", "key": "counter", "by": 5}]}
    for want in (5, 10):
        status, reply = await txn_once(server, incr)
        assert status == 200 and reply == {"succeeded": True,
                                           "results": [{"op": "incr", "value": want}]}
    await put_ttl_once(server, "short-ttl", b"gone soon", 0.2)
    await put_once(server, "long-ttl", b"plain first")
    await put_ttl_once(server, "long-ttl", b"stays an hour", 3600)
    await crash_and_restart(server)  # the short ttl runs out during the pause
    await assert_state(server, {b"txn-a": b"v-a", b"txn-b": b"v-b", b"txn-c": b"v-c",
                                b"txn-refused": None, b"counter": b"10",
                                b"short-ttl": None, b"long-ttl": b"stays an hour"})
    response = await request_once(server.connect_host, server.port, "GET",
                                  kv_path("long-ttl"))
    ttl = response.header("walkv-ttl")
    assert ttl is not None and 3500 < float(ttl) <= 3600, response.headers


@pytest.mark.timeout(120)
async def test_four_cycles_of_writes_and_sigkill(server: ServerProcess) -> None:
    expected: dict[bytes, bytes | None] = {}
    for cycle in range(4):
        for i in range(40):
            key = b"cycle%d-%d" % (cycle, i)
            value = b"cycle %d value %d " % (cycle, i) + bytes([cycle, i]) * 8
            await put_once(server, key, value)
            expected[key] = value
        if cycle:
            for i in range(0, 40, 4):  # overwrite and delete keys of the last cycle
                overwritten, deleted = (
                    b"cycle%d-%d" % (cycle - 1, i),
                    b"cycle%d-%d" % (cycle - 1, i + 1),
                )
                value = b"overwritten in cycle %d" % cycle
                await put_once(server, overwritten, value)
                await delete_once(server, deleted)
                expected[overwritten], expected[deleted] = value, None
        await crash_and_restart(server)
        await assert_state(server, expected)


@pytest.mark.timeout(120)
async def test_500_sequential_1kb_puts_survive_sigkill(server: ServerProcess) -> None:
    expected: dict[bytes, bytes | None] = {}
    for i in range(500):
        key = b"seq1k-%03d" % i
        value = (b"%03d" % i) * 342  # 1026 bytes, distinct per key
        expected[key] = value[:1024]
        await put_once(server, key, value[:1024])
    await crash_and_restart(server)
    await assert_state(server, expected)


# Small segments and checkpoint intervals put rotations and forked checkpoints (and
# their WAL deletions) inside the kill window, not only plain commits.
SIZES = {
    "default-sizes": [],
    "small-segments-frequent-checkpoints": ["--segment-bytes=64K", "--checkpoint-bytes=256K"],
}


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("flags", list(SIZES.values()), ids=list(SIZES))
async def test_concurrent_random_writes_killed_mid_flight_match_the_oracle(
    make_server: ServerFactory, flags: list[str]
) -> None:
    """32 keep-alive clients, 200 shared keys, PUT/overwrite/DELETE; 3 kill cycles."""
    server = make_server(extra_args=flags)
    await asyncio.to_thread(server.start)
    keys = [b"oracle:%03d/" % i + "ключ".encode() for i in range(200)]
    oracle = Oracle()
    for cycle in range(3):
        writes = RandomWrites(
            server.connect_host,
            server.port,
            oracle,
            keys,
            clients=32,
            max_value_filler=2048,
            seed=cycle + 1,
        )
        await writes.start()
        await asyncio.sleep(3.0)
        # Nothing runs on the loop between these two calls, so the unanswered ops
        # are exactly those in flight at the kill.
        writes.stop()
        server.kill()
        in_flight = len(oracle.unanswered())
        await writes.join()
        assert writes.stats.non_2xx == 0, f"cycle {cycle}: {writes.stats.statuses}"
        assert writes.stats.acked >= 100, f"cycle {cycle}: only {writes.stats.acked} acks"
        assert in_flight > 0, "the kill did not happen while requests were in flight"

        await asyncio.sleep(CRASH_PAUSE_S)
        await asyncio.to_thread(server.start)
        recovered = await fetch_state(server.connect_host, server.port, keys)
        report = oracle.check(recovered)
        assert report.ok, f"cycle {cycle}, {in_flight} in flight at kill: {report.summary()}"
        oracle = oracle.next_round(recovered)
    if flags:
        # The last restart recovered from a snapshot a checkpoint wrote during the test.
        assert "recovery: snapshot " in server.stderr_text()


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("restart", ["sigkill", "sigterm"])
async def test_10000_concurrent_new_connection_puts_all_survive_restart(
    server: ServerProcess, restart: str
) -> None:
    raise_nofile_limit()  # 10,000 client sockets at once; the default soft limit is lower
    items = burst_items(10_000, prefix="burst", value_bytes=32)
    result = await burst_put(server.connect_host, server.port, items)
    assert result.ok == len(items), result.summary()

    if restart == "sigkill":
        await crash_and_restart(server)
    else:
        status = await asyncio.to_thread(server.terminate)
        assert status == 0, f"SIGTERM exit status {status}"
        await asyncio.to_thread(server.start)
    recovered = await fetch_state(
        server.connect_host, server.port, [key for key, _ in items], connections=16
    )
    missing = [key for key, value in items if recovered[key] != value]
    assert not missing, f"{len(missing)} of {len(items)} lost, e.g. {missing[:5]}"


@pytest.mark.timeout(60)
async def test_reads_right_after_restart_see_recovered_state(server: ServerProcess) -> None:
    """The port opens only after recovery: the first connection sees every write."""
    client = await KVClient.open(server.connect_host, server.port)
    for i in range(300):
        assert (await client.put(b"early-%d" % i, b"%d" % i)).status == 200
    await client.close()
    server.kill()
    await asyncio.sleep(CRASH_PAUSE_S)
    await asyncio.to_thread(server.start)  # returns at the first accepted connection
    response = await request_once(server.connect_host, server.port, "GET", kv_path("early-299"))
    assert (response.status, response.body) == (200, b"299")
