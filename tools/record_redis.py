"""Record what Redis 7 answers to the RESP scenarios: the differential test's reference.

    .venv/bin/python -m tools.record_redis                 # all -> tests/fixtures/redis7/
    .venv/bin/python -m tools.record_redis get_set scan    # only these scenarios
    .venv/bin/python -m tools.record_redis --check         # compare files with live redis

Needs ``redis-server`` on PATH (Debian: ``apt-get install redis-server redis-tools``;
the transcripts were made with 7.0.x). Each scenario of ``tests/resp_scenarios.py`` is
run twice on one fresh server and must compare equal to itself under its own modes
before it is written, so a step whose reply depends on luck or time cannot be
recorded as ``exact``.

redis-server is started the way the harness starts walkv: ``harness.proc.ServerProcess``
on a stand-in target whose ``run.sh`` takes walkv's flags and runs ``serve`` below,
which holds the HTTP port open (nothing answers on it) and execs redis-server on the
RESP port with ``--save "" --appendonly no --databases 1`` and the commands of
``UNKNOWN_TO_WALKV`` renamed away. The differential test uses the same stand-in for a
live reference and, with ``WALKV_DIFF_SELFTEST=1``, in place of walkv.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from harness.errors import ServerStartError
from harness.proc import REPO, ServerProcess, free_port
from tests.resp_scenarios import (
    BY_NAME,
    FIXTURES,
    REDIS_DATABASES,
    SCENARIOS,
    UNKNOWN_TO_WALKV,
    Observation,
    Scenario,
    ScenarioError,
    TranscriptError,
    compare,
    dump_transcript,
    load_transcript,
    run_scenario,
    transcript_path,
)

REDIS_CONFIG: tuple[str, ...] = (
    "--save", "", "--appendonly", "no", "--databases", str(REDIS_DATABASES),
    *(part for name in UNKNOWN_TO_WALKV for part in ("--rename-command", name, "")),
)
"""redis-server flags beyond port, address and directory: no persistence, one
database, and no command that walkv does not have but a scenario sends."""

_RUN_SH = """#!/bin/sh
# A redis-server that starts like walkv (tools/record_redis.py, "serve").
PYTHONPATH={repo}
export PYTHONPATH
exec {python} -m tools.record_redis serve "$@"
"""


def redis_server_binary() -> str | None:
    """The path of ``redis-server`` on PATH, or None."""
    return shutil.which("redis-server")


def redis_version(binary: str) -> str:
    """The version ``binary --version`` reports, e.g. ``7.0.15``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"\bv=(\S+)", out.stdout)
    return match.group(1) if match else out.stdout.strip()


def standin_target(directory: Path) -> Path:
    """Make ``directory`` a target whose ``run.sh`` starts redis-server like walkv."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "run.sh"
    script.write_text(_RUN_SH.format(repo=shlex.quote(str(REPO)),
                                     python=shlex.quote(sys.executable)))
    script.chmod(0o755)
    return directory


@contextlib.contextmanager
def live_redis(directory: Path, name: str = "redis") -> Iterator[ServerProcess]:
    """A started redis-server (stand-in target under ``directory``), stopped on exit.

    Its RESP address is ``server.resp_address``. Raises ServerStartError if it does
    not come up.
    """
    target = standin_target(directory / "target")
    with ServerProcess(target, directory / "data", log_dir=directory / "logs",
                       resp_port=0, name=name) as server:
        server.start()
        yield server
        server.terminate()


# -- the stand-in server ------------------------------------------------------------


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="record_redis serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--working-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--resp-port", type=int, required=True)
    return parser


def serve(argv: Sequence[str]) -> NoReturn:
    """Take walkv's flags, hold the HTTP port, become redis-server on the RESP port."""
    opts = _serve_parser().parse_args(argv)
    binary = redis_server_binary()
    if binary is None:
        sys.exit("record_redis serve: error: redis-server is not installed")
    workdir = Path(opts.working_dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # Inherited across exec, so the HTTP port keeps accepting (into its backlog).
    http = socket.create_server((opts.host, opts.port))
    http.set_inheritable(True)
    resp_port = opts.resp_port or free_port(opts.host)
    # Announced before redis-server binds: the harness waits for both ports to accept.
    print(f"listening on http://{opts.host}:{http.getsockname()[1]}", file=sys.stderr)
    print(f"listening on redis://{opts.host}:{resp_port}", file=sys.stderr, flush=True)
    os.execv(binary, [binary, "--port", str(resp_port), "--bind", opts.host,
                      "--dir", str(workdir), *REDIS_CONFIG])


# -- recording and checking ---------------------------------------------------------


def _self_check(scenario: Scenario, first: list[Observation],
                second: list[Observation]) -> list[str]:
    problems = []
    for step, a, b in zip(scenario.steps, first, second, strict=True):
        reason = compare(step, a, b)
        if reason is not None:
            problems.append(f"{scenario.name}: {step.describe()}: {reason}: {a!r} vs {b!r}")
    return problems


def _record_one(scenario: Scenario, address: tuple[str, int], version: str,
                directory: Path) -> list[str]:
    first = run_scenario(scenario, address)
    second = run_scenario(scenario, address)
    problems = _self_check(scenario, first, second)
    if not problems:
        path = transcript_path(scenario.name, directory)
        path.write_text(dump_transcript(scenario, version, first), encoding="utf-8")
        _note_resp3_sameness(scenario, first, address)
    return problems


def _note_resp3_sameness(scenario: Scenario, observed: list[Observation],
                         address: tuple[str, int]) -> None:
    # A RESP3 variant that answers exactly as RESP2 does is only extra run time.
    base = BY_NAME.get(scenario.name.removesuffix("_resp3"))
    if base is None or base is scenario:
        return
    plain = run_scenario(base, address)
    if _without_hello(scenario, observed) == _without_hello(base, plain):
        print(f"note: {scenario.name} replies exactly as {base.name} does", file=sys.stderr)


def _without_hello(scenario: Scenario, observed: list[Observation]) -> list[Observation]:
    return [obs for step, obs in zip(scenario.steps, observed, strict=True)
            if step.command != b"HELLO"]


def _check_one(scenario: Scenario, address: tuple[str, int], directory: Path) -> list[str]:
    try:
        transcript = load_transcript(scenario, directory)
    except TranscriptError as exc:
        return [str(exc)]
    live = run_scenario(scenario, address)
    return _self_check(scenario, list(transcript.observations), live)


def run(names: Sequence[str], directory: Path, *, check: bool) -> int:
    """Record (or with ``check`` compare) the named scenarios; return an exit status."""
    binary = redis_server_binary()
    if binary is None:
        print("record_redis: error: redis-server is not on PATH "
              "(apt-get install redis-server redis-tools)", file=sys.stderr)
        return 2
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        print(f"record_redis: error: no such scenario: {', '.join(unknown)}", file=sys.stderr)
        return 2
    selected = [BY_NAME[name] for name in names] if names else list(SCENARIOS)
    version = redis_version(binary)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="record-redis-") as tmp, \
            live_redis(Path(tmp)) as server:
        problems: list[str] = []
        for scenario in selected:
            if check:
                problems += _check_one(scenario, server.resp_address, directory)
            else:
                problems += _record_one(scenario, server.resp_address, version, directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    verb = "checked" if check else "recorded"
    print(f"{verb} {len(selected)} scenarios against redis {version}: "
          f"{len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        serve(args[1:])
    parser = argparse.ArgumentParser(prog="python -m tools.record_redis",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="compare the transcripts with a live redis-server; write nothing")
    parser.add_argument("--dir", type=Path, default=FIXTURES, help="transcript directory")
    opts = parser.parse_args(args)
    try:
        return run(opts.scenarios, opts.dir, check=opts.check)
    except (ServerStartError, ScenarioError) as exc:
        print(f"record_redis: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
