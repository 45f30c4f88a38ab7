"""The power-loss explorer passes walkv and catches each deliberately broken store.

A short exploration of the real engine must find nothing; the same exploration of
an engine that acknowledges before fsync, skips the directory fsync after a rename,
keeps a torn tail instead of cutting it, or never logs deletes must report a
violation, with a reproduction that rebuilds exactly the failing crash state.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.powerloss import VARIANTS, PowerLossConfig, StateId, record_round, run_powerloss
from storage.testing.memfs import MemFileSystem
from tests.fixtures.broken_storage import PATCHES, SkipDirSyncAfterRenameFs, install

SHORT = PowerLossConfig(states=900, seed=3)


def test_short_exploration_of_walkv_finds_no_violation() -> None:
    report = run_powerloss(SHORT)
    assert report.ok, [f"{f.kind} at {f.where}: {f.detail}" for f in report.findings]
    data = report.data
    assert data["states"] >= SHORT.states
    assert all(data["states_by_variant"].get(v, 0) > 0 for v in VARIANTS), data
    assert data["second_lives"] > 0
    assert data["recovery_crash_states"] > 0
    assert "--states" in report.reproduce


def test_recording_is_deterministic_per_seed() -> None:
    first = record_round(SHORT, 0)
    again = record_round(SHORT, 0)
    assert first.journal == again.journal
    assert first.acked_at == again.acked_at
    assert record_round(PowerLossConfig(seed=4), 0).journal != first.journal


BROKEN: dict[str, type[MemFileSystem] | str] = {
    "ack-before-fsync": "ack-before-fsync",
    "skip-dir-fsync-after-rename": SkipDirSyncAfterRenameFs,
    "torn-tail-appended-to": "torn-tail-kept",
    "deletes-never-logged": "deletes-not-logged",
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_store_is_caught_with_a_reproduction(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = BROKEN[name]
    fs_class = MemFileSystem
    if isinstance(broken, str):
        assert broken in PATCHES
        install(broken, monkeypatch.setattr)
    else:
        fs_class = broken
    report = run_powerloss(SHORT, fs_class=fs_class)
    assert not report.ok, f"{name} was not caught in {report.data['states']} states"
    failed = report.data["failed_state"]
    assert f"--round {failed['round']} --point {failed['point']}" in report.reproduce
    # The reproduction checks that one state alone and finds the same violation.
    only = StateId(failed["round"], failed["point"], failed["variant"])
    again = run_powerloss(PowerLossConfig(seed=SHORT.seed, only=only), fs_class=fs_class)
    assert again.data["states"] == 1
    assert [f.kind for f in again.findings] == [report.findings[0].kind]


def test_powerloss_cli_checks_one_state_and_writes_a_report(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    argv = [sys.executable, "-m", "harness", "powerloss", "--seed", "2", "--round", "0",
            "--point", "40", "--variant", "durable", "--report", str(report_path),
            "--no-progress"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["states"] == 1 and report["states_by_variant"] == {
        "durable": 1}
    assert "crash states explored" in done.stdout


def test_powerloss_cli_refuses_a_state_that_does_not_exist() -> None:
    argv = [sys.executable, "-m", "harness", "powerloss", "--seed", "2", "--round", "0",
            "--point", "0", "--variant", "torn-prefix", "--no-progress"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    assert "no crash state round 0, point 0, torn-prefix" in done.stderr
