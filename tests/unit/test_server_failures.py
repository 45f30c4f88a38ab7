"""The failure policy as clients see it: the real server code (codec, connection,
lifecycle) over an engine on the fault-injecting in-memory filesystem.

A full disk answers 507 and applies nothing, and writes work again once space is
back; an fsync error answers 503 from then on while reads keep working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from harness.client import KVClient
from tests.inprocess import Running, inprocess_server

BIG = b"x" * (5 << 20)


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with inprocess_server() as running:
        yield running


async def test_full_disk_answers_507_applies_nothing_and_recovers(server: Running) -> None:
    client = await KVClient.open("127.0.0.1", server.port)
    try:
        assert (await client.put("kept", b"v1")).status == 200
        # Leave room for nothing more than what is written (and preallocated) now; the
        # value is larger than the WAL's 4 MiB preallocation step.
        server.fs.space_limit = server.used()
        refused = await client.put("big", BIG)
        assert refused.status == 507
        assert refused.body == b"insufficient storage\n"
        assert (await client.get("big")).status == 404
        assert (await client.get("kept")).body == b"v1"

        server.fs.space_limit = None  # space is back
        assert (await client.put("big", BIG)).status == 200
        assert (await client.get("big")).body == BIG
    finally:
        await client.close()
    assert server.engine.failed is None


async def test_fsync_error_answers_503_for_good_and_reads_keep_working(server: Running) -> None:
    client = await KVClient.open("127.0.0.1", server.port)
    try:
        assert (await client.put("a", b"1")).status == 200
        server.fs.fail_sync_at = 1
        failed = await client.put("b", b"2")
        assert failed.status == 503
        assert failed.body == b"storage unavailable\n"
        # Sticky: later writes are refused without touching the disk again.
        syncs = server.fs.syncs
        assert (await client.put("c", b"3")).status == 503
        assert (await client.delete("a")).status == 503
        assert (await client.clear()).status == 503
        assert server.fs.syncs == syncs
        assert (await client.get("a")).body == b"1"
        assert (await client.get("b")).status == 404
    finally:
        await client.close()
