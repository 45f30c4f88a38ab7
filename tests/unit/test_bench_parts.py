"""The benchmark's pure parts: reply framing, wrk output, rounds, goals, report, plot.

Results here are made up: these tests check arithmetic and formatting, never speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench.cli import FULL, SHORT, BenchOptions, build_targets, plan
from harness.bench.fold import fold, fold_cell
from harness.bench.goals import goals
from harness.bench.loadclient import ClientJob, RequestMaker
from harness.bench.loadgen import LoadSpec, parse_wrk, wrk_argv
from harness.bench.model import (
    BenchResults,
    BurstRun,
    CheckpointRun,
    LargeRun,
    MachineFacts,
    Target,
    ThroughputRun,
)
from harness.bench.plot import write_plot
from harness.bench.probe import find_engine_stats, group_stats
from harness.bench.report import render_markdown, to_json
from harness.client import frame_reply
from harness.errors import BenchError
from harness.load import LoadSummary

# -- reply framing and requests (built-in client) ----------------------------------------

GET_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: x\r\n\r\nabc"


@pytest.mark.parametrize("cut", range(len(GET_REPLY)))
def test_partial_reply_is_not_complete(cut: int) -> None:
    assert frame_reply(bytearray(GET_REPLY[:cut])) is None


def test_reply_framed_by_content_length_in_any_position() -> None:
    assert frame_reply(bytearray(GET_REPLY + b"HTTP/1.1")) == (200, len(GET_REPLY))
    last = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno"
    assert frame_reply(bytearray(last)) == (404, len(last))
    empty = b"HTTP/1.1 200 OK\r\n\r\n"
    assert frame_reply(bytearray(empty)) == (200, len(empty))


def test_put_requests_use_new_keys_and_gets_stay_in_the_key_space() -> None:
    maker = RequestMaker(ClientJob("127.0.0.1", 1, "put", 1, 1.0, keys=10), index=3)
    first, second = maker.next(), maker.next()
    assert first.startswith(b"PUT /kv/u-3-1 HTTP/1.1\r\n") and first.endswith(b"v" * 100)
    assert second.startswith(b"PUT /kv/u-3-2 ")
    getter = RequestMaker(ClientJob("127.0.0.1", 1, "get", 1, 1.0, keys=10), index=0)
    keys = {getter.next().split()[1] for _ in range(500)}
    assert keys == {b"/kv/load-%d" % i for i in range(10)}


# -- wrk -----------------------------------------------------------------------------------

WRK_LINE = ('WRK_JSON {"requests": 1010, "duration_us": 2000000, "connect_errors": 0, '
            '"read_errors": 1, "write_errors": 0, "status_errors": 10, "timeouts": 0, '
            '"p50_us": 150, "p99_us": 900, "p999_us": 2000, "max_us": 3000, "mean_us": 200.0}')


def test_wrk_result_counts_non_2xx_as_errors(tmp_path: Path) -> None:
    summary = parse_wrk("Running 2s test\n" + WRK_LINE + "\n", tmp_path / "log")
    assert (summary.requests, summary.requests_per_s) == (1000, 500.0)
    assert (summary.p50_ms, summary.p99_ms, summary.p999_ms) == (0.15, 0.9, 2.0)
    assert summary.errors == 11
    assert summary.error_kinds == {"read": 1, "status >= 400": 10}


def test_wrk_without_result_line_is_a_bench_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError):
        parse_wrk("unable to connect\n", tmp_path / "log")


def test_wrk_gets_key_space_and_whole_seconds() -> None:
    argv = wrk_argv(8080, LoadSpec("get", 1, 0.4, keys=123))
    assert argv[1:4] == ["-t1", "-c1", "-d1s"]
    assert argv[-3:] == ["http://127.0.0.1:8080", "--", "123"]
    assert argv[argv.index("-s") + 1].endswith("harness/bench/wrk/get.lua")


# -- /stats ---------------------------------------------------------------------------------

ENGINE = {"groups": 10, "records": 100, "max_group": 30, "fsync_seconds": 0.5}


def test_engine_stats_found_at_top_level_or_nested() -> None:
    assert find_engine_stats(ENGINE) == ENGINE
    assert find_engine_stats({"server": {}, "storage": ENGINE}) == ENGINE
    assert find_engine_stats({"groups": 1}) is None
    assert find_engine_stats([1, 2]) is None


def test_group_stats_are_differences_over_the_run() -> None:
    after = {"groups": 30, "records": 500, "max_group": 64, "fsync_seconds": 1.5}
    stats = group_stats(ENGINE, after, elapsed_s=2.0)
    assert stats is not None
    assert (stats.fsyncs, stats.writes, stats.mean_group, stats.max_group) == (20, 400, 20.0, 64)
    assert (stats.fsyncs_per_s, stats.mean_fsync_ms) == (10.0, 50.0)
    assert group_stats(ENGINE, ENGINE, 1.0) is None  # no writes
    assert group_stats(None, after, 1.0) is None


# -- plan -----------------------------------------------------------------------------------


def test_rounds_alternate_targets_and_unsafe_series_only_writes() -> None:
    options = BenchOptions(baseline=Path("/tmp/b"), also_unsafe=True, sizes=FULL,
                           only=frozenset({"put", "get", "burst"}))
    targets = build_targets(options)
    assert [t.name for t in targets] == ["walkv", "baseline", "ceiling", "walkv-no-fsync"]
    steps = list(plan(options, targets))
    first = [(s.part, s.connections, s.target.name, s.rnd) for s in steps[:8]]
    assert first == [("put", 1, "walkv", 1), ("put", 1, "baseline", 1), ("put", 1, "ceiling", 1),
                     ("put", 1, "walkv-no-fsync", 1), ("put", 1, "walkv", 2),
                     ("put", 1, "baseline", 2), ("put", 1, "ceiling", 2),
                     ("put", 1, "walkv-no-fsync", 2)]
    assert not any(s.target.name == "walkv-no-fsync" for s in steps if s.part != "put")
    assert {s.part for s in steps} == {"put", "get", "burst"}


# -- folding, goals, outputs ---------------------------------------------------------------


def _run(target: str, op: str, conns: int, rps: float, p50: float = 1.0, rnd: int = 1,
         ) -> ThroughputRun:
    summary = LoadSummary(int(rps), 1.0, rps, p50, p50 * 3, p50 * 5, p50 * 9, 0, {})
    return ThroughputRun(target, rnd, op, conns, "builtin", summary, 0.5, 0.9)


def _results() -> BenchResults:
    facts = MachineFacts("cpu", 2, "Linux", "ext4", "/w", "CPython 3.11", "0.19", "0.6",
                         None, "builtin", 0.150, 0.4)
    targets = [Target("walkv", Path("/a")), Target("ceiling", Path("/c"), durable=False)]
    results = BenchResults("2025-01-01 00:00:00", "full", facts, SHORT, targets)
    for conns, mine, ceiling in ((1, 2000, 20000), (16, 9000, 20000), (256, 30000, 32000)):
        results.throughput.append(_run("walkv", "put", conns, mine, p50=0.19))
        results.throughput.append(_run("ceiling", "put", conns, ceiling, p50=0.05))
    results.throughput.append(_run("walkv", "get", 16, 20000))
    results.throughput.append(_run("ceiling", "get", 16, 25000))
    checkpoint = CheckpointRun(1000, 2.0, 4.0, 3.0, 6.0, 8.0, 20.0, 100.0, 90.0, 1.2, 5.5)
    results.large += [LargeRun("walkv", 1, 1000, 1.0, 110 << 20, [0.8, 0.9], "", checkpoint),
                      LargeRun("ceiling", 1, 1000, 1.0, 100 << 20, [], "gone")]
    results.bursts.append(BurstRun("walkv", 1, 100, 99, 1.0, {"reset": 1}, 0.5))
    return results


def test_rounds_fold_to_the_median_with_spread() -> None:
    cell = fold_cell([_run("w", "put", 1, 100, rnd=1), _run("w", "put", 1, 120, rnd=2),
                      _run("w", "put", 1, 110, rnd=3)])
    assert (cell.requests_per_s, cell.rounds) == (110, 3)
    assert cell.spread_pct == pytest.approx(100 * 10 / 110)


def test_goals_compare_with_the_ceiling_in_the_same_run() -> None:
    rows = {g.name: g for g in goals(fold(_results()), "walkv", fdatasync_p50_ms=0.15)}
    statuses = [g.status for g in rows.values()]
    assert statuses == ["PASS", "PASS", "PASS", "MISS", "PASS", "PASS", "PASS", "MISS"]
    assert rows["durable PUT @256 conns >= 0.85x ceiling"].value == pytest.approx(30 / 32)
    assert rows["PUT @1 conn: p50 within 50 us of one fdatasync"].value == pytest.approx(40)
    assert rows["RSS with 1M keys <= 1.1x ceiling"].value == pytest.approx(1.1)


def test_ratio_goals_take_the_median_of_per_round_ratios() -> None:
    # The machine's speed drifts between rounds: per round walkv runs at 0.8, 0.9 and
    # 1.0 of the ceiling (median 0.9), while the ratio of medians would say 1.0.
    results = _results()
    results.throughput = [run for run in results.throughput
                          if (run.op, run.connections) != ("put", 256)]
    for rnd, mine, ceiling in ((1, 40000, 50000), (2, 18000, 20000), (3, 33000, 33000)):
        results.throughput += [_run("walkv", "put", 256, mine, rnd=rnd),
                               _run("ceiling", "put", 256, ceiling, rnd=rnd)]
    rows = {g.name: g for g in goals(fold(results), "walkv", 0.15)}
    goal = rows["durable PUT @256 conns >= 0.85x ceiling"]
    assert goal.value == pytest.approx(0.9)
    assert goal.status == "PASS"
    assert goal.measured == "0.90x (rounds 0.80-1.00; medians 33,000 vs 33,000/s)"


def test_goal_not_measured_is_na() -> None:
    results = _results()
    results.throughput = [run for run in results.throughput if run.op != "get"]
    rows = {g.name: g for g in goals(fold(results), "walkv", 0.15)}
    assert rows["GET @16 conns >= 0.95x ceiling"].status == "n/a"


def test_markdown_json_and_plot_are_written(tmp_path: Path) -> None:
    results = _results()
    markdown = render_markdown(results, "latency.png")
    assert "| durable PUT @256 conns >= 0.85x ceiling | PASS: 0.94x" in markdown
    assert "| PUT (new keys) | 16 | walkv | 9,000 |" in markdown
    assert "| walkv | 99/100 |" in markdown
    assert "2.00 -> 4.00 (+2.00)" in markdown
    data = json.loads(json.dumps(to_json(results)))
    assert {"facts", "throughput", "summary", "goals", "large", "bursts"} <= set(data)
    assert write_plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
