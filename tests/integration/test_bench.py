"""``python -m harness bench --short`` runs end to end and writes well-formed outputs.

Nothing here looks at a number's size: CI machines are slow and shared. The checks
are that every measurement ran (exit status 0, no problems), that the markdown has
the expected rows, the JSON the expected keys and records, and the plot is a PNG.
The built-in client always runs (it is what a machine without wrk uses); wrk runs a
smaller selection when it is installed. ``--protocol resp`` runs when redis-server and
redis-benchmark are installed, and is skipped, saying so, when they are not.
"""

from __future__ import annotations

import bisect
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.bench.probe import LISTING_LIMIT, LISTING_PAGES, LISTING_SEED

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def run_bench(target: Path, out: Path, *args: str) -> dict[str, Any]:
    """Run the bench in short mode; return results.json after checking the files."""
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--short", "--target", str(target),
         "--out", str(out), *args],
        cwd=REPO, capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "latency.png").read_bytes()[:8] == PNG_SIGNATURE
    markdown = (out / "results.md").read_text()
    assert done.stdout.strip() == markdown.strip()  # the report is also printed
    assert not (out / "work").exists(), "server data is removed after the run"
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert data["problems"] == []
    assert data["mode"] == "short"
    return data


def assert_throughput(data: dict[str, Any], ops: list[str], conns: list[int],
                      targets: list[str], client: str) -> None:
    """One well-formed record per (op, connections, target), each with no errors."""
    seen = {(r["op"], r["connections"], r["target"]) for r in data["throughput"]}
    assert seen == {(op, c, t) for op in ops for c in conns for t in targets}
    for record in data["throughput"]:
        assert record["client"] == client
        assert record["requests"] > 0 and record["errors"] == 0, record
        assert 0 < record["p50_ms"] <= record["p99_ms"] <= record["p999_ms"], record
        assert record["client_cpu"] >= 0 and record["server_cpu"] >= 0


def assert_listing(data: dict[str, Any], name: str) -> None:
    """walkv answered every listing page well; the ceiling has no listing route."""
    listings = {run["target"]: run["listing"] for run in data["large"]}
    mine = listings[name]
    assert mine["route"] and mine["error"] == "", mine["error"]
    assert mine["first_ms"] > 0 and len(mine["page_ms"]) == 50
    assert all(ms > 0 for ms in mine["page_ms"])
    # Each page holds the 1,000 keys after its start key, or those up to the last key.
    ordered = sorted(f"load-{index}" for index in range(20_000))
    rng = random.Random(LISTING_SEED)
    starts = [f"load-{rng.randrange(20_000)}" for _ in range(LISTING_PAGES + 1)][1:]
    after = [len(ordered) - bisect.bisect_right(ordered, start) for start in starts]
    assert mine["items"] == sum(min(LISTING_LIMIT, count) for count in after)
    assert listings["ceiling"] == {"limit": 1000, "route": False, "first_ms": None,
                                   "page_ms": [], "items": 0, "error": ""}
    cells = {cell["target"]: cell["listing"] for cell in data["summary"]["large"]}
    cell = cells[name]
    assert cell["pages"] == 50 and cell["note"] == ""
    assert 0 < cell["median_ms"] <= cell["p90_ms"] <= cell["max_ms"] == max(mine["page_ms"])
    assert cells["ceiling"]["note"] == "n/a: no listing route"


def target_name(target: Path) -> str:
    """What the bench calls the target (``harness.bench.cli.build_targets``)."""
    return "walkv" if target.resolve() == REPO else target.resolve().name


def test_short_bench_with_the_builtin_client(target: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    data = run_bench(target, out, "--client", "builtin")
    name = target_name(target)
    assert data["facts"]["load_generator"] == "builtin"
    assert data["facts"]["fdatasync_p50_ms"] > 0
    assert_throughput(data, ["put", "get", "mix"], [1, 16, 256], [name, "ceiling"], "builtin")
    walkv_put = [r for r in data["throughput"] if r["target"] == name and r["op"] == "put"]
    assert all(r["groups"] is None or r["groups"]["writes"] > 0 for r in walkv_put)
    bursts = {b["target"]: b for b in data["bursts"]}
    assert set(bursts) == {name, "ceiling"}
    for burst in bursts.values():
        assert burst["ok"] + sum(burst["failures"].values()) == burst["requests"] == 1000
    large = {run["target"]: run for run in data["large"]}
    assert large[name]["keys"] == 20_000 and large[name]["rss_bytes"] > 0
    assert len(large[name]["restart_s"]) == 1
    assert large[name]["checkpoint"] is not None
    assert large["ceiling"]["restart_s"] == []  # the ceiling keeps nothing across restarts
    assert_listing(data, name)
    assert {goal["status"] for goal in data["goals"]} <= {"PASS", "MISS", "n/a"}
    assert len(data["goals"]) == 8
    markdown = (out / "results.md").read_text()
    for heading in ("## Machine", "## Goals", "## Throughput", "## Burst", "## Large",
                    "## Listing"):
        assert heading in markdown
    assert "| ceiling | 20,000 | n/a: no listing route |" in markdown
    assert "| GET | 256 | ceiling |" in markdown
    assert "| durable PUT @256 conns >= 0.85x ceiling |" in markdown


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_short_bench_with_wrk(target: Path, tmp_path: Path) -> None:
    data = run_bench(target, tmp_path / "results", "--client", "wrk", "--only", "put,get,mix",
                     "--connections", "16")
    assert data["facts"]["load_generator"] == "wrk"
    assert_throughput(data, ["put", "get", "mix"], [16], [target_name(target), "ceiling"], "wrk")
    assert data["bursts"] == [] and data["large"] == []


def test_short_resp_bench_against_redis(target: Path, tmp_path: Path) -> None:
    missing = [tool for tool in ("redis-server", "redis-benchmark") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian packages redis-server, "
                    "redis-tools): the RESP bench against Redis did not run")
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--protocol", "resp", "--short", "--target",
         str(target), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (out / "results.md").read_text()
    assert done.stdout.strip() == markdown.strip()
    assert not (out / "work").exists(), "server data is removed after the run"
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert data["problems"] == [] and data["mode"] == "short" and data["protocol"] == "resp"
    name = target_name(target)
    settings = {(1, 1), (16, 1), (256, 1), (16, 16)}
    seen = {(r["target"], r["test"], r["connections"], r["pipeline"]) for r in data["runs"]}
    assert seen == {(t, test, c, p) for t in (name, "redis") for test in ("SET", "GET")
                    for c, p in settings}
    for record in data["runs"]:
        assert record["requests_per_s"] > 0 and 0 < record["p50_ms"] <= record["max_ms"], record
    assert [g["status"] in {"PASS", "MISS"} for g in data["goals"]] == [True] * 5
    for row in (f"| SET | 16 conns -P 16 | {name} |", "| GET | 256 conns | redis |",
                "| SET @1 conn |", "| SET @256 conns >= 1.0x Redis (appendfsync always) |",
                "| GET @16 conns >= 0.8x Redis (appendfsync always) |"):
        assert row in markdown, row
