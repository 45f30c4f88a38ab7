"""The crash harness passes walkv and catches deliberately broken servers.

``python -m harness crash`` is run for a few cycles against this repository (every
kind of file damage included, transactions, increments and times to live among the
writes) and must report no violation. Then the same loop is pointed at stand-in
targets whose ``run.sh`` starts the real server with one durability bug patched in
(``tests/fixtures/broken_server.py``, and two bugs of the keyspace operations here:
deadlines left out of the log, an increment applied but not logged); each must be
caught. A server that acknowledges before fsync is not among them: SIGKILL keeps the
page cache, so only the power-loss explorer can see that (tests/unit/test_powerloss.py).

``--protocol resp`` runs the same loop over the Redis protocol: a short run must pass,
and servers that lose an acknowledged SET, tear an MSET or MULTI/EXEC, or drop an
EXEC's increment (patched like the keyspace bugs), or ignore corruption
(``broken_server.py``, which serves RESP too), must be caught over RESP as well.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.crash.damage import DamageKind
from harness.crash.resp import RespCrashLoop
from harness.crash.torture import CrashConfig, Failure, Mode, run_crash
from harness.oracle import ViolationKind

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_crash_cli_short_run_passes_with_file_damage(target: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    argv = [sys.executable, "-m", "harness", "crash", "--target", str(target), "--cycles", "8",
            "--seed", "5", "--clients", "16", "--kill-after", "0.05,0.4", "--damage-every", "1",
            "--report", str(report_path), "--work-dir", str(tmp_path / "work"), "--no-progress"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=110,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["cycles"] == 8 and report["seed"] == 5
    assert all(count == 0 for count in report["violations"].values())
    assert report["acked_ops"] > 100
    assert report["kills_with_in_flight"] >= 6
    applied = {kind: c["applied"] for kind, c in report["damage"].items() if c["applied"]}
    assert sum(applied.values()) == 8 and len(applied) >= 4, report["damage"]
    assert 0 < report["restart_s"]["max"] < 15
    assert report["keyspace_ops"] == "on"
    for kind in ("txn", "refused txn", "incr", "short ttl", "long ttl"):
        assert report["requests"][kind] > 0, kind
    assert "PASS: 0 violations" in done.stdout


@pytest.mark.timeout(120)
async def test_serial_cycles_are_checked_exactly_after_damage(
    target: Path, tmp_path: Path
) -> None:
    kinds = (DamageKind.TAIL_TRUNCATE, DamageKind.FRAME_BITFLIP, DamageKind.MISSING_SEGMENT,
             DamageKind.TAIL_BITFLIP)
    # Plain writes only: one record per request, so every damage maps to a prefix.
    config = CrashConfig(target=target, cycles=6, seed=9, mode=Mode.SERIAL, damage=kinds,
                         damage_every=1, kill_after=(0.3, 0.6), keyspace_ops=False,
                         server_args=("--segment-bytes=64K", "--checkpoint-bytes=1M"))
    report = await run_crash(config, tmp_path / "work")
    assert report.ok, [f"{f.kind} at {f.where}: {f.detail}" for f in report.findings]
    assert report.data["serial_cycles"] == 6
    assert report.data["exact_checks"] == 6
    applied = {kind for kind, c in report.data["damage"].items() if c["applied"]}
    assert {"frame-bitflip", "missing-segment"} & applied, report.data["damage"]


@pytest.mark.timeout(120)
async def test_serial_cycles_with_transactions_are_checked_exactly(
    target: Path, tmp_path: Path
) -> None:
    config = CrashConfig(target=target, cycles=4, seed=4, mode=Mode.SERIAL, damage=(),
                         kill_after=(0.3, 0.6), keyspace_ops=True, txn_ratio=0.25,
                         incr_ratio=0.1, ttl_ratio=0.2)
    report = await run_crash(config, tmp_path / "work")
    assert report.ok, [f"{f.kind} at {f.where}: {f.detail}" for f in report.findings]
    assert report.data["exact_checks"] == 4
    assert all(report.data["requests"][kind] > 0 for kind in ("txn", "incr", "short ttl"))


def broken_target(tmp_path: Path, variant: str) -> Path:
    """A target directory whose run.sh starts walkv with ``variant`` patched in."""
    directory = tmp_path / f"broken-{variant}"
    directory.mkdir()
    run = directory / "run.sh"
    run.write_text(
        "#!/usr/bin/env bash\n"
        f"export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={shlex.quote(str(REPO))}\n"
        f"exec {shlex.quote(sys.executable)} -m tests.fixtures.broken_server {variant} \"$@\"\n"
    )
    run.chmod(0o755)
    return directory


BROKEN = {
    # variant: (mode, damage kinds, the finding that must be reported)
    "deletes-not-logged": (Mode.CONCURRENT, (), ViolationKind.RESURRECTED_DELETE.value),
    "torn-tail-kept": (Mode.CONCURRENT, (DamageKind.TAIL_GARBAGE, DamageKind.TAIL_TRUNCATE),
                       Failure.NO_RESTART.value),
    "corruption-ignored": (Mode.CONCURRENT, (DamageKind.FRAME_BITFLIP,),
                           Failure.NOT_REFUSED.value),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", list(BROKEN))
async def test_broken_server_is_caught(target: Path, tmp_path: Path, variant: str) -> None:
    mode, kinds, expected = BROKEN[variant]
    # No checkpoints: a snapshot would cover (and so hide) what the bug left in the WAL.
    config = CrashConfig(target=broken_target(tmp_path, variant), cycles=8, seed=2, mode=mode,
                         damage=kinds, damage_every=1, kill_after=(0.2, 0.5),
                         server_args=("--segment-bytes=1M",))
    report = await run_crash(config, tmp_path / "work")
    assert not report.ok, f"{variant} passed {report.data['cycles']} cycles"
    assert expected in {f.kind for f in report.findings}, report.findings
    assert f"--seed {config.seed}" in report.reproduce


def patched_target(tmp_path: Path, name: str, patch: str) -> Path:
    """A target whose run.sh starts walkv after running ``patch`` (Python source)."""
    directory = tmp_path / f"broken-{name}"
    directory.mkdir()
    (directory / "serve.py").write_text(
        f"import sys\n{patch}\nfrom server.__main__ import main\nsys.exit(main(sys.argv[1:]))\n")
    run = directory / "run.sh"
    run.write_text(
        "#!/usr/bin/env bash\n"
        f"export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={shlex.quote(str(REPO))}\n"
        f"exec {shlex.quote(sys.executable)} {shlex.quote(str(directory / 'serve.py'))} \"$@\"\n"
    )
    run.chmod(0o755)
    return directory


DEADLINES_NOT_LOGGED = """
import storage.committer, storage.format
_encode = storage.format.encode_group
def encode_group(first, ops, keys, values, deadlines, time_ms):
    return _encode(first, ops, keys, values, None, time_ms)  # the table keeps them
storage.committer.encode_group = encode_group
"""

INCREMENT_NOT_LOGGED = """
from storage.committer import Committer
from storage.outcome import Outcome
_durable = Committer._durable
def durable(self, ops, keys, values, deadlines, time_ms, touched=False):
    # The last counter record of a group is applied and acknowledged, never logged.
    hit = [i for i, key in enumerate(keys) if key.startswith(b"counter:")]
    if not hit or len(ops) < 2:
        return _durable(self, ops, keys, values, deadlines, time_ms, touched)
    i = hit[-1]
    keep = [j for j in range(len(ops)) if j != i]
    cols = [bytes(ops[j] for j in keep), [keys[j] for j in keep], [values[j] for j in keep],
            None if deadlines is None else [deadlines[j] for j in keep]]
    outcome = _durable(self, *cols, time_ms, touched)
    if outcome is Outcome.OK:
        self._keyspace.apply(ops[i:i + 1], keys[i:i + 1], values[i:i + 1],
                             None if deadlines is None else deadlines[i:i + 1], time_ms)
    return outcome
Committer._durable = durable
"""

KEYSPACE_BROKEN = {
    "deadlines-not-logged": (DEADLINES_NOT_LOGGED, {ViolationKind.EXPIRED_VISIBLE.value,
                                                    ViolationKind.WRONG_DEADLINE.value}),
    "increment-not-logged": (INCREMENT_NOT_LOGGED, {ViolationKind.LOST_INCREMENT.value,
                                                    ViolationKind.TORN_TRANSACTION.value}),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", list(KEYSPACE_BROKEN))
async def test_broken_keyspace_operations_are_caught(tmp_path: Path, variant: str) -> None:
    patch, expected = KEYSPACE_BROKEN[variant]
    config = CrashConfig(target=patched_target(tmp_path, variant, patch), cycles=8, seed=3,
                         mode=Mode.CONCURRENT, damage=(), kill_after=(0.2, 0.5),
                         keyspace_ops=True, server_args=("--segment-bytes=1M",))
    report = await run_crash(config, tmp_path / "work")
    assert not report.ok, f"{variant} passed {report.data['cycles']} cycles"
    kinds = {f.kind for f in report.findings}
    assert kinds & expected == expected, report.findings
    assert f"--seed {config.seed}" in report.reproduce


@pytest.mark.timeout(60)
def test_crash_cli_exits_1_and_prints_the_seed_on_a_violation(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "harness", "crash", "--target",
            str(broken_target(tmp_path, "deletes-not-logged")), "--cycles", "5", "--seed", "17",
            "--mode", "concurrent", "--damage", "none", "--report", str(tmp_path / "r.json"),
            "--work-dir", str(tmp_path / "work"), "--no-progress"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=55,
                          check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "reproduce with: python -m harness crash --seed 17" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert not report["ok"] and report["violations"]["resurrected delete"] > 0


# -- the same loop over the Redis protocol -------------------------------------------------


@pytest.mark.timeout(120)
def test_crash_cli_resp_short_run_passes_with_file_damage(target: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    argv = [sys.executable, "-m", "harness", "crash", "--protocol", "resp", "--target",
            str(target), "--cycles", "6", "--seed", "5", "--clients", "16", "--kill-after",
            "0.05,0.4", "--damage-every", "2", "--report", str(report_path), "--work-dir",
            str(tmp_path / "work"), "--no-progress"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=110,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["protocol"] == "resp" and report["cycles"] == 6
    assert all(count == 0 for count in report["violations"].values())
    assert report["acked_ops"] > 100 and report["kills_with_in_flight"] >= 4
    assert sum(c["applied"] for c in report["damage"].values()) == 3, report["damage"]
    for kind in ("mset", "exec", "del of a slot", "incr", "short expire", "long expire"):
        assert report["requests"][kind] > 0, kind
    assert "PASS: 0 violations" in done.stdout


NOT_LOGGED = """
from storage.committer import Committer
from storage.outcome import Outcome
_durable = Committer._durable
def durable(self, ops, keys, values, deadlines, time_ms, *rest, **named):
    # The records pick() chooses are applied and acknowledged, never logged.
    hit = pick(keys)
    if not hit or len(hit) == len(ops):
        return _durable(self, ops, keys, values, deadlines, time_ms, *rest, **named)
    def columns(chosen):
        return (bytes(ops[j] for j in chosen), [keys[j] for j in chosen],
                [values[j] for j in chosen],
                None if deadlines is None else [deadlines[j] for j in chosen])
    kept = [j for j in range(len(ops)) if j not in hit]
    outcome = _durable(self, *columns(kept), time_ms, *rest, **named)
    if outcome is Outcome.OK:
        self._keyspace.apply(*columns(hit), time_ms)
    return outcome
Committer._durable = durable
"""

RESP_BROKEN = {
    # variant: (which records are never logged, the findings of which one must be reported)
    "set-not-logged": (  # the last write to a plain key of every group
        "def pick(keys):\n    return [i for i, k in enumerate(keys) "
        "if k.startswith(b'crash:')][-1:]",
        {ViolationKind.LOST_ACKED_WRITE.value, ViolationKind.RESURRECTED_DELETE.value}),
    "slot-torn": (  # the third key of every MSET, EXEC and DEL of a slot
        "def pick(keys):\n    return [i for i, k in enumerate(keys) if k.startswith(b'slot:') "
        "and k.endswith(b'/c')]",
        {ViolationKind.TORN_TRANSACTION.value}),
    "exec-increment-not-logged": (  # an EXEC's INCR, its SETs logged
        "def pick(keys):\n    return [i for i, k in enumerate(keys) if k.startswith(b'slot:') "
        "and k.endswith(b'/n')]",
        {ViolationKind.LOST_INCREMENT.value}),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", list(RESP_BROKEN))
async def test_broken_server_is_caught_over_resp(tmp_path: Path, variant: str) -> None:
    pick, expected = RESP_BROKEN[variant]
    config = CrashConfig(target=patched_target(tmp_path, variant, pick + "\n" + NOT_LOGGED),
                         cycles=6, seed=3, mode=Mode.CONCURRENT, damage=(),
                         kill_after=(0.2, 0.5), server_args=("--segment-bytes=1M",))
    report = await run_crash(config, tmp_path / "work", loop_class=RespCrashLoop)
    assert not report.ok, f"{variant} passed {report.data['cycles']} cycles"
    assert {f.kind for f in report.findings} & expected, report.findings
    assert f"--seed {config.seed}" in report.reproduce
    assert "--protocol resp" in report.reproduce


@pytest.mark.timeout(120)
async def test_ignored_corruption_is_caught_over_resp(target: Path, tmp_path: Path) -> None:
    config = CrashConfig(target=broken_target(tmp_path, "corruption-ignored"), cycles=6, seed=2,
                         mode=Mode.CONCURRENT, damage=(DamageKind.FRAME_BITFLIP,),
                         damage_every=1, kill_after=(0.2, 0.5),
                         server_args=("--segment-bytes=1M",))
    report = await run_crash(config, tmp_path / "work", loop_class=RespCrashLoop)
    assert not report.ok, f"passed {report.data['cycles']} cycles"
    assert Failure.NOT_REFUSED.value in {f.kind for f in report.findings}, report.findings
