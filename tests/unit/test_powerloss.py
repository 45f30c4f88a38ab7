"""The power-loss explorer passes walkv and catches each deliberately broken store.

A short exploration of the real engine must find nothing; the same exploration of
an engine that acknowledges before fsync, skips the directory fsync after a rename,
keeps a torn tail instead of cutting it, never logs deletes, drops deadlines from
the log, or writes one commit group as two frames must report a violation, with a
reproduction that rebuilds exactly the failing crash state. An engine whose answers
break the contract (an increment counted twice) is caught while recording.

The checks themselves are also fed states built by hand from a recorded round:
a counter below its acknowledged increments, a transaction half there, a value
stored past its deadline reading back, a far deadline lost.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import storage.committer
import storage.format
import storage.ops
from harness.history import KeyspaceModel, Table, expired, visible
from harness.oracle import ViolationKind
from harness.powerloss import (
    DISAGREES,
    SWEEP,
    VARIANTS,
    Checker,
    ExplorerEngine,
    PowerLossConfig,
    PowerLossStats,
    Recording,
    StateId,
    record_round,
    run_powerloss,
)
from storage import (
    Add,
    Append,
    Check,
    Compare,
    EngineOptions,
    Expire,
    Fetch,
    Outcome,
    Remove,
    Store,
    Txn,
    TxnResult,
)
from storage.committer import Committer
from storage.engine import SWEEP_INTERVAL
from storage.testing import FsOp
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
    # The workload is more than plain writes: every kind of operation ran.
    for kind in ("transactions", "failed_conditions", "refused_steps", "increments",
                 "deadlines_future", "deadlines_past", "sweeps"):
        assert data[kind] > 0, kind


def _shape(journal: Sequence[FsOp]) -> list[tuple[Any, ...]]:
    # Frames carry their commit time and deadlines are relative to the clock, so only
    # the bytes differ between runs, never where and how many.
    return [(op.seq, op.kind, op.path, op.offset, len(op.data), op.dst) for op in journal]


def test_recording_is_deterministic_per_seed() -> None:
    first = record_round(SHORT, 0)
    again = record_round(SHORT, 0)
    assert _shape(first.journal) == _shape(again.journal)
    assert first.acked_at == again.acked_at
    assert _shape(record_round(PowerLossConfig(seed=4), 0).journal) != _shape(first.journal)


def test_explorer_engine_sweeps_only_when_asked() -> None:
    engine = ExplorerEngine.start(MemFileSystem(), EngineOptions(checkpoint_bytes=0))
    try:
        past = engine.now_ms() - 3_600_000
        outcome, _ = engine.transact(Txn((), (Store(b"gone", b"v", past),)))
        assert outcome is Outcome.OK
        time.sleep(3 * SWEEP_INTERVAL)  # a periodic sweep would have reclaimed it
        assert b"gone" in engine.table and engine.get(b"gone") is None
        assert engine.sweep_now() == 1
        assert b"gone" not in engine.table
    finally:
        engine.close()


# -- broken stores ---------------------------------------------------------------------------

_real_encode_group = storage.format.encode_group
_real_durable = Committer._durable
_real_add = storage.ops.Evaluation._add


def _encode_without_deadlines(first: int, ops: bytes, keys: Sequence[bytes],
                              values: Sequence[bytes | None], deadlines: Any,
                              time_ms: int) -> bytes:
    """Logs every record without its deadline; the live table still has them."""
    return _real_encode_group(first, ops, keys, values, None, time_ms)


def _durable_in_two_frames(self: Committer, ops: bytes, keys: Sequence[bytes],
                           values: Sequence[bytes | None], deadlines: Any,
                           time_ms: int, touched: bool = False) -> Outcome:
    """Writes a commit group as two frames, each synced: a cut between them halves it."""
    if len(ops) < 2:
        return _real_durable(self, ops, keys, values, deadlines, time_ms, touched)
    half = len(ops) // 2
    for part in (slice(None, half), slice(half, None)):
        outcome = _real_durable(self, ops[part], keys[part], values[part],
                                None if deadlines is None else deadlines[part], time_ms,
                                touched)
        if outcome is not Outcome.OK:
            return outcome
    return Outcome.OK


def _add_twice(self: storage.ops.Evaluation, step: Add) -> int:
    """Counts every increment twice."""
    _real_add(self, step)
    return _real_add(self, step)


BROKEN: dict[str, type[MemFileSystem] | str | tuple[Any, str, Any]] = {
    "ack-before-fsync": "ack-before-fsync",
    "skip-dir-fsync-after-rename": SkipDirSyncAfterRenameFs,
    "torn-tail-appended-to": "torn-tail-kept",
    "deletes-never-logged": "deletes-not-logged",
    "deadlines-never-logged": (storage.committer, "encode_group", _encode_without_deadlines),
    "group-in-two-frames": (Committer, "_durable", _durable_in_two_frames),
}
EXPECTED: dict[str, set[str]] = {
    "deadlines-never-logged": {ViolationKind.WRONG_DEADLINE.value,
                               ViolationKind.EXPIRED_VISIBLE.value},
    "group-in-two-frames": {ViolationKind.TORN_TRANSACTION.value,
                            ViolationKind.NOT_A_PREFIX.value},
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
    elif isinstance(broken, tuple):
        monkeypatch.setattr(*broken)
    else:
        fs_class = broken
    report = run_powerloss(SHORT, fs_class=fs_class)
    assert not report.ok, f"{name} was not caught in {report.data['states']} states"
    kind = report.findings[0].kind
    assert kind != DISAGREES, report.findings[0].detail  # found by a crash state
    assert kind in EXPECTED.get(name, {kind}), report.findings[0]
    failed = report.data["failed_state"]
    assert f"--round {failed['round']} --point {failed['point']}" in report.reproduce
    # The reproduction checks that one state alone and finds the same violation.
    only = StateId(failed["round"], failed["point"], failed["variant"])
    again = run_powerloss(PowerLossConfig(seed=SHORT.seed, only=only), fs_class=fs_class)
    assert again.data["states"] == 1
    assert [f.kind for f in again.findings] == [kind]


def test_engine_answer_unlike_the_contract_is_caught_while_recording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage.ops.Evaluation, "_add", _add_twice)
    report = run_powerloss(SHORT)
    assert [f.kind for f in report.findings] == [DISAGREES]
    assert "add " in report.findings[0].detail
    assert report.data["states"] == 0
    assert report.reproduce.endswith("--round 0 --point 0 --variant durable")


# -- the checks, on states built by hand -------------------------------------------------


@pytest.fixture(scope="module")
def recording() -> Recording:
    return record_round(SHORT, 0)


def _verdict(rec: Recording, table: Table, shown: dict[bytes, bytes] | None = None,
             point: int | None = None) -> str | None:
    checker = Checker(SHORT, rec, PowerLossStats())
    k = len(rec.journal) if point is None else point
    acked, sent = checker.bounds(k)
    found = checker.verify(k, acked, sent, table, visible(table, rec.now) if shown is None
                           else shown)
    return None if found is None else found[0]


def _final(rec: Recording) -> Table:
    return dict(rec.states[len(rec.actions)])


def _counter(rec: Recording) -> tuple[bytes, int]:
    table = _final(rec)
    return next((c, int(table[c][0])) for c in rec.keys.counters
                if c in table and int(table[c][0]) > 0)


def test_acknowledged_state_passes_and_entries_past_their_deadline_may_be_reclaimed(
    recording: Recording,
) -> None:
    rec = recording
    checker = Checker(SHORT, rec, PowerLossStats())
    # The first cut after which the acknowledged state holds an entry past its deadline.
    point, acked = next((k, acked) for k in rec.acked_at
                        for acked, _ in [checker.bounds(k)]
                        if any(expired(e, rec.now) for e in rec.states[acked].values()))
    table = dict(rec.states[acked])
    assert _verdict(rec, table, point=point) is None
    live = {k: e for k, e in table.items() if not expired(e, rec.now)}
    assert _verdict(rec, live, point=point) is None
    assert _verdict(rec, _final(rec)) is None


def test_counter_below_its_acknowledged_increments_is_a_lost_increment(
    recording: Recording,
) -> None:
    counter, value = _counter(recording)
    table = _final(recording) | {counter: (b"%d" % (value - 1), None)}
    assert _verdict(recording, table) == ViolationKind.LOST_INCREMENT.value


def test_counter_above_acknowledged_plus_in_flight_is_an_increment_from_nowhere(
    recording: Recording,
) -> None:
    counter, value = _counter(recording)
    table = _final(recording) | {counter: (b"%d" % (value + 1), None)}
    assert _verdict(recording, table) == ViolationKind.EXCESS_INCREMENT.value


def test_increments_in_flight_may_be_there_or_not_but_never_in_part(
    recording: Recording,
) -> None:
    rec = recording
    # A batch whose increments are in flight: cut right after it was submitted.
    batch = next(b for b in rec.batches
                 if len(b) > 1 and any(rec.applied[i].increments for i in b)
                 and rec.actions[b[0]] is not SWEEP)
    point = rec.submitted_at[batch[0]]
    before, after = rec.states[batch[0]], rec.states[batch[-1] + 1]
    assert _verdict(rec, dict(before), point=point) is None
    assert _verdict(rec, dict(after), point=point) is None
    counter = next(iter(rec.applied[next(i for i in batch if rec.applied[i].increments)]
                        .increments))
    low = int(before.get(counter, (b"0", None))[0])
    beyond = dict(after) | {counter: (b"%d" % (low + 1000), None)}
    assert _verdict(rec, beyond, point=point) == ViolationKind.EXCESS_INCREMENT.value


def _cuts(rec: Recording) -> list[tuple[int, int, int]]:
    """(point, acknowledged, submitted) for a cut right after each acknowledgement."""
    checker = Checker(SHORT, rec, PowerLossStats())
    return [(k, *checker.bounds(k)) for k in sorted(set(rec.acked_at))]


def _torn_candidate(rec: Recording, cut: tuple[int, int, int], t: int,
                    touches: dict[bytes, int]) -> bytes | None:
    """A key transaction ``t`` changed (not by storing a value of its own, not a counter)
    while it stored a value of its own elsewhere, all untouched until the cut."""
    _, acked, sent = cut
    final = {e.key: e.entry for e in rec.applied[t].effects}
    stored = [e.key for e in rec.applied[t].effects
              if e.stored and e.entry is not None and not expired(e.entry, rec.now)]
    others = [k for k in final if k not in stored and k not in rec.keys.counters
              and rec.states[t].get(k) != final[k]]
    if t < acked and stored and others and all(touches[k] >= sent for k in final):
        return others[0]
    return None


def test_transaction_half_there_is_torn(recording: Recording) -> None:
    rec = recording
    checker = Checker(SHORT, rec, PowerLossStats())
    (point, acked, _), t, key = next(
        (cut, t, key) for cut, (t, touches) in itertools.product(_cuts(rec),
                                                                 checker._touches.items())
        if (key := _torn_candidate(rec, cut, t, touches)) is not None)
    table = dict(rec.states[acked])
    old = rec.states[t].get(key)
    if old is None:
        del table[key]
    else:
        table[key] = old
    assert _verdict(rec, table, point=point) == ViolationKind.TORN_TRANSACTION.value


def test_value_stored_past_its_deadline_never_reads_back(recording: Recording) -> None:
    rec = recording
    effect = next(e for a in rec.applied for e in a.effects
                  if e.key in rec.keys.gone and e.entry is not None)
    assert effect.entry is not None and expired(effect.entry, rec.now)
    without_deadline = _final(rec) | {effect.key: (effect.entry[0], None)}
    assert _verdict(rec, without_deadline) == ViolationKind.EXPIRED_VISIBLE.value
    # A read that ignored a deadline still in the table is caught the same way.
    table = _final(rec) | {effect.key: effect.entry}
    shown = visible(table, rec.now) | {effect.key: effect.entry[0]}
    assert _verdict(rec, table, shown) == ViolationKind.EXPIRED_VISIBLE.value


def test_far_deadline_lost_is_a_wrong_deadline(recording: Recording) -> None:
    rec = recording
    checker = Checker(SHORT, rec, PowerLossStats())
    point, acked, key, (value, deadline) = next(
        (point, acked, k, e) for point, acked, sent in _cuts(rec)
        for k, e in rec.states[acked].items()
        if k in rec.keys.timed and e[1] is not None and not expired(e, rec.now)
        and rec.states[sent].get(k) == e and e[0] not in checker._expired_values.get(k, ()))
    table = dict(rec.states[acked])
    assert deadline is not None
    for wrong in (None, deadline + 1):
        verdict = _verdict(rec, table | {key: (value, wrong)}, point=point)
        assert verdict == ViolationKind.WRONG_DEADLINE.value


# -- the model ---------------------------------------------------------------------------------

NOW = 1_000_000
FUTURE, PAST = NOW + 10_000, NOW - 10_000


def test_model_runs_the_other_branch_when_a_condition_fails() -> None:
    model = KeyspaceModel({b"a": (b"1", None)}, NOW)
    txn = Txn((Compare(b"a", Check.PRESENT), Compare(b"b", Check.PRESENT)),
              (Store(b"c", b"then"),), (Store(b"c", b"else"), Fetch(b"a")))
    applied = model.transact(txn)
    assert applied.result == TxnResult(False, (None, b"1"), failed=1)
    assert model.visible() == {b"a": b"1", b"c": b"else"}


def test_model_applies_nothing_of_a_transaction_a_step_refuses() -> None:
    model = KeyspaceModel({b"n": (b"9223372036854775807", None), b"w": (b"word", None)}, NOW)
    before = dict(model.table)
    for step in (Add(b"n", 1), Add(b"w", 1)):
        applied = model.transact(Txn((), (Store(b"x", b"1"), Add(b"c", 2), step)))
        assert applied.result is not None and applied.result.error_step == 2
        assert applied.effects == [] and applied.increments == {}
    assert model.table == before


def test_model_treats_a_key_past_its_deadline_as_absent() -> None:
    model = KeyspaceModel({b"old": (b"5", PAST), b"ttl": (b"v", FUTURE)}, NOW)
    assert model.holds(Compare(b"old", Check.ABSENT))
    applied = model.transact(Txn((), (Add(b"old", 1), Store(b"ttl", b"w", keep_ttl=True),
                                      Append(b"ttl", b"!"), Remove(b"gone"))))
    assert applied.result == TxnResult(True, (1, b"v", 2, False))
    assert model.table == {b"old": (b"1", None), b"ttl": (b"w!", FUTURE)}
    model.transact(Txn((), (Store(b"x", b"1", PAST), Expire(b"ttl", PAST))))
    assert model.visible() == {b"old": b"1"}
    # An expiry already past deleted b"ttl" at once; the sweep reclaims the stored b"x".
    assert model.sweep().reclaimed == 1 and model.table == {b"old": (b"1", None)}

# -- the command line ------------------------------------------------------------------------

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
