"""The parts of ``bench --protocol resp`` that need no server: redis-benchmark's CSV,
``-n`` sizing, the order of runs, goals from per-round ratios, the report, the flags."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.__main__ import main
from harness.bench.model import MachineFacts, RespResults, RespRun, RespSizes, Setting, Target
from harness.bench.resp import (
    FULL,
    REDIS_DIR,
    SHORT,
    RespBenchOptions,
    benchmark_argv,
    build_resp_targets,
    parse_csv,
    plan,
    requests_for,
)
from harness.bench.resp_report import REDIS, render_resp_markdown, resp_goals, resp_to_json

CSV = """\
"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","10638.30","1.381","0.296","0.967","3.807","6.175","8.039"
"GET","27777.78","0.388","0.064","0.175","1.527","5.279","9.359"
"""


def test_redis_benchmark_csv_gives_rate_and_latencies_per_test() -> None:
    rows = parse_csv("WARNING: could not fetch server CONFIG\n" + CSV)
    assert set(rows) == {"SET", "GET"}
    assert rows["SET"].requests_per_s == 10638.30
    assert (rows["SET"].p50_ms, rows["SET"].p99_ms, rows["SET"].max_ms) == (0.967, 6.175, 8.039)
    assert rows["GET"].avg_ms == 0.388
    with pytest.raises(ValueError, match="p50_latency_ms"):
        parse_csv('"test","rps"\n"SET","1.0"\n')


def test_requests_are_sized_to_the_duration_and_cover_every_connection() -> None:
    assert [requests_for(FULL, s) for s in FULL.settings()] == [15_000, 60_000, 125_000,
                                                                 250_000]
    assert [s.label() for s in SHORT.settings()] == ["1 conn", "16 conns", "256 conns",
                                                     "16 conns -P 16"]
    assert requests_for(SHORT, Setting(256)) == 2_500
    assert requests_for(SHORT, Setting(1024)) == 2_048  # at least two per connection


def test_the_benchmark_command_line() -> None:
    argv = benchmark_argv(6400, Setting(16, 16), 5000)
    assert argv[:5] == ["redis-benchmark", "-h", "127.0.0.1", "-p", "6400"]
    joined = " ".join(argv)
    for part in ("-t set,get", "-d 100", "-r 100000", "-n 5000", "-c 16", "-P 16", "--csv"):
        assert part in joined
    assert "-P" not in benchmark_argv(6400, Setting(1), 10)


def test_rounds_alternate_the_targets_per_setting(tmp_path: Path) -> None:
    targets = build_resp_targets(RespBenchOptions(baseline=tmp_path))
    assert [t.name for t in targets] == ["walkv", "baseline", REDIS]
    assert targets[-1].directory == REDIS_DIR
    sizes = RespSizes(1.0, (1,), 2, 10)
    order = [(s.label(), rnd, t.name) for s, rnd, t in plan(sizes, targets)]
    assert order[:6] == [("1 conn", 1, "walkv"), ("1 conn", 1, "baseline"), ("1 conn", 1, REDIS),
                         ("1 conn", 2, "walkv"), ("1 conn", 2, "baseline"), ("1 conn", 2, REDIS)]
    assert order[-1] == ("16 conns -P 16", 2, REDIS)


def run(target: str, rnd: int, test: str, setting: Setting, rps: float) -> RespRun:
    return RespRun(target, rnd, test, setting.connections, setting.pipeline, 1000, rps,
                   0.5, 0.4, 0.8, 0.9, 1.0, 0.3, 0.6)


def results(runs: list[RespRun]) -> RespResults:
    facts = MachineFacts("cpu", 2, "Linux", "ext4", "/w", "CPython 3.11", "0.23", "0.9", None,
                         "redis-benchmark", 0.18, 0.36)
    targets = [Target("walkv", Path("/repo")), Target(REDIS, REDIS_DIR)]
    return RespResults("2026-01-01 00:00:00", "full", facts, "Redis server v=7.0.15",
                       "redis-benchmark 7.0.15", RespSizes(5.0, (1, 16), 3, 10), targets, runs)


def test_goals_are_medians_of_per_round_ratios_against_redis() -> None:
    runs = []
    # SET @16: walkv is ahead in two rounds of three (ratios 1.2, 0.9, 1.1): PASS at 1.1x.
    for rnd, (mine, redis) in enumerate([(12_000, 10_000), (9_000, 10_000), (11_000, 10_000)], 1):
        runs += [run("walkv", rnd, "SET", Setting(16), mine),
                 run(REDIS, rnd, "SET", Setting(16), redis)]
    # SET @1: 0.85x, under its 0.9x goal.
    runs += [run("walkv", 1, "SET", Setting(1), 850), run(REDIS, 1, "SET", Setting(1), 1000)]
    goals = {goal.name: goal for goal in resp_goals(results(runs), "walkv")}
    set16 = goals["SET @16 conns >= 1.0x Redis (appendfsync always)"]
    assert set16.status == "PASS" and set16.value == pytest.approx(1.1)
    assert "rounds 0.90-1.20" in set16.measured
    assert goals["SET @1 conn >= 0.9x Redis (appendfsync always)"].status == "MISS"
    assert goals["SET @16 conns -P 16 >= 1.0x Redis (appendfsync always)"].status == "n/a"
    assert goals["GET @16 conns >= 0.8x Redis (appendfsync always)"].status == "n/a"
    assert len(goals) == 5


def test_the_report_has_a_row_per_test_setting_and_target() -> None:
    runs = [run(t, 1, test, s, rps) for t, rps in (("walkv", 900.0), (REDIS, 1000.0))
            for test in ("SET", "GET") for s in (Setting(1), Setting(16), Setting(16, 16))]
    data = results(runs)
    markdown = render_resp_markdown(data)
    for row in ("| SET | 16 conns -P 16 | walkv | 900 |", "| GET | 1 conn | redis | 1,000 |",
                "| SET @16 conns | 900 | 1,000 | 0.90x (0.90) |",
                "| GET @16 conns >= 0.8x Redis (appendfsync always) | PASS: 0.90x"):
        assert row in markdown, row
    json_data = resp_to_json(data)
    assert json_data["protocol"] == "resp" and len(json_data["runs"]) == 12
    assert {g["status"] for g in json_data["goals"]} == {"PASS", "MISS", "n/a"}  # no @256


def test_flags_of_the_http_bench_are_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "--protocol", "resp", "--also-unsafe", "--only", "put"]) == 2
    err = capsys.readouterr().err
    assert "--also-unsafe, --only: not for --protocol resp" in err


def test_the_redis_target_refuses_flags_it_does_not_know() -> None:
    done = subprocess.run([str(REDIS_DIR / "run.sh"), "--port=1", "--working-dir=/x", "--nope"],
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 2 and "unknown flag --nope" in done.stderr
