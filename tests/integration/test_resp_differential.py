"""walkv answers every RESP scenario (tests/resp_scenarios.py) as Redis 7 does.

The reference is a live ``redis-server`` when one is installed (started once for the
module on a free port, as ``tools/record_redis.py`` starts it), else the transcripts
in ``tests/fixtures/redis7/``; with neither, every scenario fails. Which one was used
is printed once and named in every failure.

Two switches check the machinery rather than walkv:

- ``WALKV_DIFF_SELFTEST=1``: the "walkv" side is a second redis-server started like
  walkv (the stand-in target of tools/record_redis.py), so every scenario must pass;
- ``WALKV_DIFF_REFERENCE=live|transcripts``: use that reference or fail (default:
  live when redis-server is installed, else transcripts).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import ServerStartError
from harness.proc import ServerProcess, port_accepts
from tests.resp_scenarios import (
    FIXTURES,
    SCENARIOS,
    Client,
    Observation,
    ProtocolError,
    ReplyReader,
    Scenario,
    ScenarioError,
    Step,
    TranscriptError,
    cmd,
    compare,
    load_transcript,
    parse_reply,
    run_scenario,
)
from tools.record_redis import live_redis, redis_server_binary, redis_version, standin_target

SHOWN_MISMATCHES = 3
"""How many mismatching steps of one scenario a failure spells out."""

PROBE_TIMEOUT_S = 2.0
"""A PING before each scenario: a walkv that hangs fails each scenario in this long,
not in a full reply timeout per scenario."""


@dataclass(frozen=True)
class Reference:
    """Where the expected replies come from, and how to say so in a report."""

    label: str
    observe: Callable[[Scenario], list[Observation]]


def _announce(config: pytest.Config, line: str) -> None:
    # Past output capture, so the choice shows in every run, not only on failure.
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(f"RESP differential: {line}")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"RESP differential: {line}")


def _transcript_observations(scenario: Scenario) -> list[Observation]:
    try:
        return list(load_transcript(scenario).observations)
    except TranscriptError as exc:
        pytest.fail(f"no usable transcript for {scenario.name}: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Reference]:
    """A live redis-server if installed, else the checked-in transcripts; else fail."""
    choice = os.environ.get("WALKV_DIFF_REFERENCE", "auto")
    if choice not in ("auto", "live", "transcripts"):
        pytest.fail(f"WALKV_DIFF_REFERENCE={choice!r}: use live or transcripts", pytrace=False)
    binary = redis_server_binary()
    if choice == "live" or (choice == "auto" and binary is not None):
        if binary is None:
            pytest.fail("WALKV_DIFF_REFERENCE=live but redis-server is not installed",
                        pytrace=False)
        yield from _live_reference(binary, tmp_path_factory.mktemp("redis-ref"), pytestconfig)
        return
    if not any(FIXTURES.glob("*.json")):
        pytest.fail(f"no reference: redis-server is not used ({choice}) and {FIXTURES} "
                    "holds no transcripts", pytrace=False)
    label = f"transcripts in {FIXTURES} (redis-server not used)"
    _announce(pytestconfig, label)
    yield Reference(label, _transcript_observations)


def _live_reference(binary: str, directory: Path, config: pytest.Config) -> Iterator[Reference]:
    try:
        with live_redis(directory, name="redis-reference") as redis:
            host, port = redis.resp_address
            label = f"live redis-server {redis_version(binary)} at {host}:{port}"
            _announce(config, label)
            yield Reference(label, lambda scenario: run_scenario(scenario, redis.resp_address))
    except ServerStartError as exc:
        pytest.fail(f"reference redis-server did not start: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def walkv(target: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """walkv serving RESP on a port it picks (or, for the self-test, a redis stand-in)."""
    tmp = tmp_path_factory.mktemp("walkv-resp")
    selftest = os.environ.get("WALKV_DIFF_SELFTEST") == "1"
    directory = standin_target(tmp / "standin") if selftest else target
    name = "walkv-selftest-redis" if selftest else "walkv-resp"
    with ServerProcess(directory, os.path.relpath(tmp / "data", directory),
                       log_dir=tmp / "logs", resp_port=0, name=name) as server:
        try:
            server.start()
        except ServerStartError as exc:
            pytest.fail(f"{name} did not start with --resp-port=0: {exc}", pytrace=False)
        yield server


# -- the differential test ----------------------------------------------------------


def _show(observation: Observation | None, limit: int = 400) -> str:
    if observation is None:
        return "<no reply>"
    text = " then ".join(repr(raw) for raw in observation)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _mismatches(
    scenario: Scenario, expected: list[Observation], actual: list[Observation]
) -> list[tuple[int, str]]:
    found = []
    for index, (step, want, got) in enumerate(
            zip(scenario.steps, expected, actual, strict=False)):
        reason = compare(step, want, got)
        if reason is not None:
            found.append((index, reason))
    return found


def _explain(scenario: Scenario, index: int, reason: str, expected: list[Observation],
             actual: list[Observation]) -> str:
    got = actual[index] if index < len(actual) else None
    return (f"  step {index} of {len(scenario.steps)}: {scenario.steps[index].describe()}\n"
            f"    redis: {_show(expected[index])}\n"
            f"    walkv: {_show(got)}\n"
            f"    why:   {reason}")


def _stderr_tail(walkv: ServerProcess) -> list[str]:
    lines = walkv.stderr_text().splitlines()[-10:] or ["<empty>"]
    return [f"walkv stderr ({walkv.stderr_path}), last lines:", *lines]


def _report(scenario: Scenario, reference: Reference, walkv: ServerProcess,
            failures: list[tuple[int, str]], expected: list[Observation],
            actual: list[Observation]) -> str:
    lines = [f"scenario {scenario.name}: walkv differs from {reference.label}"]
    lines += [_explain(scenario, index, reason, expected, actual)
              for index, reason in failures[:SHOWN_MISMATCHES]]
    if len(failures) > SHOWN_MISMATCHES:
        rest = ", ".join(str(index) for index, _ in failures[SHOWN_MISMATCHES:])
        lines.append(f"  (also steps {rest})")
    return "\n".join(lines + _stderr_tail(walkv))


def _probe(walkv: ServerProcess) -> None:
    probe = cmd("PING")
    try:
        client = Client(walkv.resp_address, timeout=PROBE_TIMEOUT_S)
        try:
            client.call(probe.args)
        finally:
            client.close()
    except (OSError, ProtocolError) as exc:
        lines = [f"walkv does not answer PING within {PROBE_TIMEOUT_S:.0f} s: {exc!r}"]
        pytest.fail("\n".join(lines + _stderr_tail(walkv)), pytrace=False)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_walkv_replies_like_redis(
    scenario: Scenario, walkv: ServerProcess, reference: Reference
) -> None:
    """Every reply of the scenario agrees with Redis's under the step's mode."""
    _probe(walkv)
    try:
        expected = reference.observe(scenario)
    except ScenarioError as exc:
        pytest.fail(f"the reference ({reference.label}) failed: {exc}", pytrace=False)
    try:
        actual = run_scenario(scenario, walkv.resp_address)
    except ScenarioError as exc:
        actual = exc.observed
        failures = _mismatches(scenario, expected, actual) or [(exc.index, exc.reason)]
    else:
        failures = _mismatches(scenario, expected, actual)
    if failures:
        pytest.fail(_report(scenario, reference, walkv, failures, expected, actual),
                    pytrace=False)


# -- the machinery ------------------------------------------------------------------

REPLY_SAMPLES = [
    b"+OK\r\n", b"-ERR syntax error\r\n", b":-42\r\n", b"$5\r\nhe\r\nl\r\n", b"$0\r\n\r\n",
    b"$-1\r\n", b"*-1\r\n", b"*0\r\n", b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", b"_\r\n",
    b",1.5\r\n", b"#t\r\n", b"(12345678901234567890\r\n", b"!3\r\nbad\r\n",
    b"=7\r\ntxt:abc\r\n", b"%1\r\n+k\r\n~2\r\n:1\r\n_\r\n", b">2\r\n+message\r\n$1\r\nx\r\n",
]


@pytest.mark.parametrize("raw", REPLY_SAMPLES, ids=repr)
def test_reply_reader_takes_each_reply_whole_and_byte_at_a_time(raw: bytes) -> None:
    whole = parse_reply(raw + b"+NEXT\r\n")
    assert whole is not None and whole[0].raw == raw and whole[1] == len(raw)
    reader = ReplyReader()
    for i in range(len(raw) - 1):
        reader.feed(raw[i:i + 1])
        assert reader.next_reply() is None
    reader.feed(raw[-1:] + b":1\r\n")
    reply = reader.next_reply()
    assert reply is not None and reply.raw == raw and reader.pending == b":1\r\n"


@pytest.mark.parametrize(("step", "want", "got", "agree"), [
    (cmd("TTL", "k", mode="ttl"), b":100\r\n", b":98\r\n", True),
    (cmd("TTL", "k", mode="ttl"), b":100\r\n", b":97\r\n", False),
    (cmd("TTL", "k", mode="ttl"), b":-1\r\n", b":1\r\n", False),
    (cmd("PTTL", "k", mode="ttl"), b":100000\r\n", b":98500\r\n", True),
    (cmd("KEYS", "*", mode="unordered"), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
     b"*2\r\n$1\r\nb\r\n$1\r\na\r\n", True),
    (cmd("KEYS", "*", mode="unordered"), b"*2\r\n$1\r\na\r\n$1\r\na\r\n",
     b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", False),
    (cmd("RANDOMKEY", mode="type"), b"$1\r\na\r\n", b"$2\r\nbb\r\n", True),
    (cmd("RANDOMKEY", mode="type"), b"$1\r\na\r\n", b"$-1\r\n", True),
    (cmd("RANDOMKEY", mode="type"), b"$1\r\na\r\n", b"+a\r\n", False),
    (cmd("GET", "k"), b"$1\r\na\r\n", b"$1\r\nb\r\n", False),
    (cmd("GET", "k", mode="skip"), b"$1\r\na\r\n", b"-ERR\r\n", True),
])
def test_compare_judges_by_mode(step: Step, want: bytes, got: bytes, agree: bool) -> None:
    assert (compare(step, (want,), (got,)) is None) is agree


def test_compare_scan_takes_the_union_of_pages() -> None:
    step = cmd("SCAN", "0", mode="scan")
    redis = (b"*2\r\n$1\r\n5\r\n*1\r\n$1\r\na\r\n", b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nb\r\n")
    other = (b"*2\r\n$1\r\n0\r\n*3\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\na\r\n",)
    assert compare(step, redis, other) is None
    assert compare(step, redis, (b"*2\r\n$1\r\n0\r\n*0\r\n",)) is not None


def test_every_scenario_has_a_transcript_that_matches_it() -> None:
    problems = []
    for scenario in SCENARIOS:
        try:
            load_transcript(scenario)
        except TranscriptError as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)


def test_server_process_learns_the_resp_port_on_every_start(tmp_path: Path) -> None:
    if redis_server_binary() is None:
        pytest.skip("needs redis-server for the stand-in server")
    target = standin_target(tmp_path / "standin")
    with ServerProcess(target, tmp_path / "data", log_dir=tmp_path / "logs", port=0,
                       resp_port=0) as server:
        for _ in range(2):
            server.start()
            host, port = server.resp_address
            assert server.port != 0 and port not in (0, server.port)
            assert port_accepts(host, server.port)
            client = Client((host, port))
            assert client.call([b"PING"]).raw == b"+PONG\r\n"
            client.close()
            assert server.terminate() == 0
