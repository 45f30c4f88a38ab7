"""/metrics, /stats, /healthz and the JSON logs, on the real server (``./run.sh``) and,
for disk failures, on the real server code over the fault-injecting filesystem."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from harness.client import KVClient, Response, request_once
from harness.proc import ServerProcess
from tests.inprocess import FILL_ALLOCATION, Running, inprocess_server

ServerFactory = Callable[..., ServerProcess]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def get(port: int, path: str, method: str = "GET") -> Response:
    return await request_once("127.0.0.1", port, method, path)


async def scrape(port: int) -> Samples:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    response = await get(port, "/metrics")
    assert response.status == 200
    assert response.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests(samples: Samples, method: str, status: int) -> float:
    return sample(samples, "walkv_http_requests_total", method=method, status=str(status))


async def test_metrics_parse_and_move_as_writes_happen(server: ServerProcess) -> None:
    before = await scrape(server.port)
    client = await KVClient.open(server.connect_host, server.port)
    try:
        for i in range(5):
            assert (await client.put(f"m{i}", b"v" * 100)).status == 200
        assert (await client.get("m0")).status == 200
        assert (await client.get("missing")).status == 404
        assert (await client.delete("m4")).status == 200
        assert (await client.put("", b"x")).status == 400
    finally:
        await client.close()
    after = await scrape(server.port)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert requests(after, "PUT", 200) - requests(before, "PUT", 200) == 5
    assert requests(after, "GET", 404) - requests(before, "GET", 404) == 1
    assert requests(after, "DELETE", 200) - requests(before, "DELETE", 200) == 1
    assert requests(after, "PUT", 400) - requests(before, "PUT", 400) == 1
    assert delta("walkv_records_committed_total", op="PUT") == 5
    assert delta("walkv_records_committed_total", op="DELETE") == 1
    assert delta("walkv_keys") == 4
    assert delta("walkv_last_lsn") == 6
    groups = delta("walkv_commit_groups_total")
    assert 1 <= groups <= 6
    assert delta("walkv_wal_sync_seconds_count") == groups
    assert delta("walkv_group_writes_sum") == 6
    assert delta("walkv_wal_bytes_written_total") > 500
    assert sample(after, "walkv_healthy") == 1
    assert sample(after, "walkv_http_connections_open") >= 1  # the scrape's own
    assert sample(after, "process_resident_memory_bytes") > 0


async def test_stats_holds_the_recovery_report_of_a_torn_tail(
        make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server()
    server.start()
    client = await KVClient.open(server.connect_host, server.port)
    try:
        assert (await client.put("kept", b"v")).status == 200
    finally:
        await client.close()
    server.kill()
    wal = tmp_path / "data" / "wal"
    newest = sorted(p for p in wal.iterdir() if p.suffix == ".wal")[-1]
    with open(newest, "r+b") as f:  # a group torn by the crash, after the last frame
        f.seek(_end_of_frames(newest.read_bytes()))
        f.write(b"\x2a\x00\x00\x00torn")
    server.start()

    response = await get(server.port, "/stats")
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    stats = json.loads(response.body)
    recovery = stats["storage"]["recovery"]
    [cut] = [c for c in recovery["cuts"] if c["kept_in"]]
    assert cut["reason"].startswith("torn tail") and cut["kept_in"].endswith(".broken")
    assert recovery["keys"] == 1 and stats["storage"]["keys"] == 1
    assert stats["healthy"] is True and stats["unhealthy_reason"] is None
    metrics = await scrape(server.port)
    cut_total = sum(c["length"] for c in recovery["cuts"])
    assert sample(metrics, "walkv_recovery_bytes_cut") == cut_total >= 8


def _end_of_frames(data: bytes) -> int:
    pos = 24
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "little")
        if length == 0:
            break
        pos += 8 + length
    return pos


async def test_healthz_is_200_ok_while_serving_and_405_for_other_methods(
        server: ServerProcess) -> None:
    ok = await get(server.port, "/healthz")
    assert (ok.status, ok.body) == (200, b"ok\n")
    for path in ("/healthz", "/metrics", "/stats"):
        refused = await get(server.port, path, method="POST")
        assert refused.status == 405 and refused.header("allow") == "GET"


async def test_healthz_flips_to_503_when_fsync_fails_and_metrics_say_so() -> None:
    async with inprocess_server() as running:
        assert (await get(running.port, "/healthz")).status == 200
        running.fs.fail_sync_at = 1
        client = await KVClient.open("127.0.0.1", running.port)
        try:
            assert (await client.put("a", b"1")).status == 503
            assert (await client.put("b", b"2")).status == 503  # refused before the disk
        finally:
            await client.close()
        health = await get(running.port, "/healthz")
        assert health.status == 503
        assert health.text.startswith("storage failed (writes refused until restart): ")
        metrics = await scrape(running.port)
        assert sample(metrics, "walkv_storage_failed") == 1
        assert sample(metrics, "walkv_healthy") == 0
        assert requests(metrics, "PUT", 503) == 2


async def test_healthz_is_503_while_the_disk_is_full_and_200_once_space_is_back() -> None:
    async with inprocess_server() as running:
        await put_status(running, "filler", FILL_ALLOCATION, 200)
        running.fill_disk()
        await put_status(running, "a", b"1", 507)
        health = await get(running.port, "/healthz")
        assert (health.status, health.text) == (
            503, "no space left on device (writes refused with 507 until space is freed)\n")
        metrics = await scrape(running.port)
        assert sample(metrics, "walkv_storage_out_of_space") == 1
        assert sample(metrics, "walkv_no_space_groups_total") == 1
        assert requests(metrics, "PUT", 507) == 1

        running.fs.space_limit = None
        assert (await get(running.port, "/healthz")).status == 503  # until a write succeeds
        await put_status(running, "a", b"1", 200)
        assert (await get(running.port, "/healthz")).status == 200


async def put_status(running: Running, key: str, value: bytes, status: int) -> None:
    client = await KVClient.open("127.0.0.1", running.port)
    try:
        assert (await client.put(key, value)).status == status
    finally:
        await client.close()


async def test_json_logs_are_one_object_per_line_naming_each_event(
        make_server: ServerFactory) -> None:
    server = make_server(extra_args=["--log-format=json", "--checkpoint-mode=thread"])
    server.start()
    client = await KVClient.open(server.connect_host, server.port)
    try:
        assert (await client.put("k", b"v")).status == 200
    finally:
        await client.close()
    assert server.terminate() == 0
    lines = server.stderr_text().splitlines()
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    events = [o.get("event") for o in objects]
    for expected in ("start", "recovery", "listening", "shutdown", "rotation",
                     "checkpoint_end", "stopped"):
        assert expected in events, (expected, lines)
    [recovery] = [o for o in objects if o.get("event") == "recovery"]
    assert recovery["recovery"]["keys"] == 0 and recovery["message"].startswith("recovery: ")
    [end] = [o for o in objects if o.get("event") == "checkpoint_end"]
    assert end["bytes"] > 0 and end["duration_s"] >= 0 and end["lsn"] == 1
    assert all({"time", "level", "logger", "message"} <= o.keys() for o in objects)
