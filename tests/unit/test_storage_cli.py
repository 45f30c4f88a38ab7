"""The offline tool (``python -m storage``) on directories the real engine wrote and
that were then damaged (``tests/unit/damaged_dirs.py``, the README's examples)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import Engine, Expire, Op, Store, Txn
from storage.fs import OsFileSystem
from storage.offline.cli import main
from tests.unit import damaged_dirs
from tests.unit.damaged_dirs import KEYS_AT_END, LAST_LSN, SNAPSHOT_LSN, TORN_FRAME, TORN_KEPT
from tests.unit.storage_util import (
    flip_bit,
    frame_spans,
    opened,
    options,
    read,
    segment_paths,
    snap_dir,
    tree_bytes,
)

REPO = Path(__file__).resolve().parents[2]

MakeDir = Callable[[str], str]


@pytest.fixture
def make(tmp_path: Path) -> MakeDir:
    """``make(kind)``: a fresh directory of that kind (see damaged_dirs.KINDS)."""

    def build(kind: str) -> str:
        root = str(tmp_path / kind)
        damaged_dirs.KINDS[kind](root)
        return root

    return build


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def files_except_lock(root: str) -> dict[str, bytes]:
    # Every verb takes LOCK as a server does, which records the holder's pid in it.
    return {k: v for k, v in tree_bytes(root).items() if k != "LOCK"}


# -- check ----------------------------------------------------------------------------


def test_check_on_clean_directory_lists_snapshot_and_segments_and_exits_0(make: MakeDir) -> None:
    root = make("clean")
    code, out = run("check", root)
    assert code == 0
    assert f"snap/{SNAPSHOT_LSN:016x}.snap  LSN {SNAPSHOT_LSN}" in out
    assert "29 keys  ok" in out
    names = [os.path.basename(p) for p in segment_paths(root)]
    assert f"wal/{names[0]}  LSN 1-{SNAPSHOT_LSN}" in out
    assert f"-{LAST_LSN}  " in out
    assert "torn tail: none" in out
    assert f"up to LSN {LAST_LSN}: {KEYS_AT_END} keys" in out
    assert out.rstrip().endswith("result: OK")


def test_check_on_torn_tail_names_offset_and_nonzero_bytes_and_exits_0(make: MakeDir) -> None:
    root = make("torn-tail")
    newest = segment_paths(root)[-1]
    cut_at = os.path.getsize(newest) - TORN_KEPT
    nonzero = sum(1 for b in TORN_FRAME[:TORN_KEPT] if b)
    code, out = run("check", root)
    assert code == 0, out
    rel = os.path.relpath(newest, root)
    assert (f"torn tail: {rel} at byte {cut_at}: {TORN_KEPT} bytes after the last valid frame, "
            f"{nonzero} of them non-zero") in out
    assert f"cut {TORN_KEPT} bytes at {rel}:{cut_at}" in out
    assert "problems: none" in out


def test_check_on_mid_log_damage_names_file_and_offset_and_exits_1(make: MakeDir) -> None:
    root = make("mid-log-damage")
    newest = segment_paths(root)[-1]
    second_frame = frame_spans(read(newest))[1][0]
    code, out = run("check", root)
    assert code == 1
    rel = os.path.relpath(newest, root)
    assert f"  {rel} at byte {second_frame}: checksum mismatch (a valid frame follows" in out
    assert f"a server start would refuse: {rel} at byte {second_frame}" in out
    assert out.rstrip().endswith("result: DAMAGED (1 problem)")


def test_check_on_missing_segment_names_the_gap_and_exits_1(make: MakeDir) -> None:
    root = make("missing-segment")
    after_gap = os.path.relpath(segment_paths(root)[-1], root)
    code, out = run("check", root)
    assert code == 1
    assert (f"{after_gap} at byte 0: segment starts at LSN {int(after_gap[4:20], 16)}, "
            f"expected {SNAPSHOT_LSN + 1}: the segment holding the LSNs between is missing") in out


def test_check_on_damaged_snapshot_reports_it_and_the_fallback(make: MakeDir) -> None:
    root = make("clean")
    snap = os.path.join(snap_dir(root), f"{SNAPSHOT_LSN:016x}.snap")
    flip_bit(snap, 100)
    code, out = run("check", root)
    assert code == 1
    assert "DAMAGED: checksum mismatch" in out
    assert "damaged snapshot: checksum mismatch" in out
    # The WAL still reaches LSN 1, so a start replays all of it instead.
    assert f"replay {LAST_LSN} records" in out


def test_check_changes_nothing(make: MakeDir) -> None:
    root = make("torn-tail")
    before = files_except_lock(root)
    run("check", root)
    run("check", root, "--json")
    assert files_except_lock(root) == before


def test_check_json_lists_segments_and_problems(make: MakeDir) -> None:
    root = make("mid-log-damage")
    code, out = run("check", root, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert [s["verdict"] for s in report["segments"]] == ["clean", "clean", "damaged"]
    assert report["problems"][0]["path"] == segment_paths(root)[-1]
    assert report["refusal"]["offset"] == report["problems"][0]["offset"]


# -- dump -----------------------------------------------------------------------------


def test_dump_from_lsn_prints_those_records_and_the_torn_end(make: MakeDir) -> None:
    root = make("torn-tail")
    code, out = run("dump", root, "--from-lsn", str(LAST_LSN - 1), "--values")
    assert code == 0
    lines = out.splitlines()
    records = [line.split()[:3] for line in lines if line.startswith("  ")]
    assert records == [[str(LAST_LSN - 1), "PUT", "order:0039"], [str(LAST_LSN), "PUT",
                                                                  "order:0040"]]
    assert "= item-0040;item-0040;" in out
    assert "end of valid frames: torn tail: 40 bytes follow" in lines[-1]


def test_dump_json_is_exact_for_binary_keys_and_values(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    with opened(root) as engine:
        engine.write(Op.PUT, b"\xff\x00key", b"\x80value")
        engine.write(Op.DELETE, b"plain")
        engine.write(Op.CLEAR)
    code, out = run("dump", root, "--json", "--values")
    assert code == 0
    frames = [json.loads(line) for line in out.splitlines()]
    records = [f["records"][0] for f in frames if "records" in f]
    assert base64.b64decode(records[0]["key_b64"]) == b"\xff\x00key"
    assert base64.b64decode(records[0]["value_b64"]) == b"\x80value"
    assert records[1] == {"lsn": 2, "op": "DELETE", "key": "plain"}
    assert records[2] == {"lsn": 3, "op": "CLEAR", "key": ""}


# -- repair ---------------------------------------------------------------------------


def test_repair_cuts_torn_tail_keeping_the_bytes_and_start_then_cuts_nothing(
        make: MakeDir) -> None:
    root = make("torn-tail")
    newest = segment_paths(root)[-1]
    cut_at = os.path.getsize(newest) - TORN_KEPT
    code, out = run("repair", root)
    assert code == 0
    rel = os.path.relpath(newest, root)
    assert f"cut {TORN_KEPT} bytes at {rel}:{cut_at}" in out
    assert f"bytes kept in {rel}.broken" in out
    assert os.path.getsize(newest) == cut_at
    assert read(newest + ".broken") == TORN_FRAME[:TORN_KEPT]
    with opened(root) as engine:
        assert engine.recovery_report.cuts == []
        assert len(engine.table) == KEYS_AT_END
    assert run("repair", root)[1].startswith("nothing to repair")


def test_repair_refuses_mid_log_damage_and_changes_nothing(make: MakeDir) -> None:
    root = make("mid-log-damage")
    before = files_except_lock(root)
    code, out = run("repair", root)
    assert code == 1
    assert out.startswith("not repaired, nothing changed:")
    assert "--point-in-time" in out
    assert files_except_lock(root) == before


def test_repair_point_in_time_keeps_the_valid_prefix(make: MakeDir) -> None:
    root = make("mid-log-damage")
    newest = segment_paths(root)[-1]
    second_frame = frame_spans(read(newest))[1][0]
    code, out = run("repair", root, "--point-in-time")
    assert code == 0
    assert "DROPPED (point-in-time)" in out
    assert os.path.getsize(newest) == second_frame
    assert run("check", root)[0] == 0


def test_repair_on_clean_directory_changes_nothing(make: MakeDir) -> None:
    root = make("clean")
    before = files_except_lock(root)
    code, out = run("repair", root)
    assert (code, out) == (0, "nothing to repair: no torn tail and no damage\n")
    assert files_except_lock(root) == before


# -- stats ----------------------------------------------------------------------------


def test_stats_reports_keys_live_bytes_and_wal_since_snapshot(make: MakeDir) -> None:
    root = make("torn-tail")
    code, out = run("stats", root, "--json")
    stats = json.loads(out)
    assert code == 0
    expected = damaged_table()
    assert stats["keys"] == len(expected) == KEYS_AT_END
    assert stats["live_bytes"] == sum(len(k) + len(v) for k, v in expected.items())
    assert stats["last_lsn"] == LAST_LSN
    assert stats["snapshot_lsn"] == SNAPSHOT_LSN
    newest_frames = sum(end - start for start, end in frame_spans(read(segment_paths(root)[-1])))
    assert stats["wal_bytes_since_snapshot"] > newest_frames
    assert 0 <= stats["snapshot_age_seconds"] < 600
    text = run("stats", root)[1]
    assert f"keys: {KEYS_AT_END}" in text
    assert f"WAL bytes since the last snapshot: {stats['wal_bytes_since_snapshot']:,}" in text


def damaged_table() -> dict[bytes, bytes]:
    """The table ``damaged_dirs.write_history`` leaves, built independently."""
    table = {b"user:%04d" % i: b"name-%04d;" % i * 10 for i in range(1, 31)}
    del table[b"user:0007"]
    table.update({b"order:%04d" % i: b"item-%04d;" % i * 12 for i in range(1, 41)})
    return table


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["check", "dump", "repair", "stats"])
def test_every_verb_refuses_a_directory_locked_by_a_live_server(
        make: MakeDir, verb: str) -> None:
    root = make("torn-tail")
    engine = Engine.open(root)  # holds LOCK, as a running server does
    try:
        done = subprocess.run([sys.executable, "-m", "storage", verb, root], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        engine.close()
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("walkv-storage: error: ")
    assert f"{root}/LOCK is held by a running walkv server (pid {os.getpid()})" in line


def test_lock_refusal_leaves_the_directory_untouched(make: MakeDir,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = make("torn-tail")
    before = tree_bytes(root)
    lock = OsFileSystem().lock(os.path.join(root, "LOCK"))  # the lock a server takes
    try:
        after_lock = tree_bytes(root)
        assert run("repair", root)[0] == 2
        assert tree_bytes(root) == after_lock
    finally:
        lock.release()
    assert {k: v for k, v in before.items() if k != "LOCK"} == files_except_lock(root)
    assert "is held by a running walkv server" in capsys.readouterr().err


@pytest.mark.parametrize("setup", ["missing", "not-walkv"])
def test_a_directory_that_is_not_walkv_exits_2_with_one_line(
        tmp_path: Path, setup: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "x"
    if setup == "not-walkv":
        root.mkdir()
        (root / "notes.txt").write_text("hi")
    assert run("check", str(root))[0] == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("walkv-storage: error: ")
    assert not (root / "LOCK").exists()


def test_dump_into_a_closed_pipe_exits_quietly(make: MakeDir) -> None:
    # `walkv-storage dump DIR | head -1`: the reader leaves early; that is not an error.
    # The dump is far larger than a pipe's buffer, so the writer surely meets the close.
    root = make("clean")
    engine = Engine.open(root)
    try:
        for i in range(3000):
            engine.submit(Op.PUT, b"bulk:%05d" % i, b"v" * 10, _Ignored())
        engine.write(Op.PUT, b"last", b"v")
    finally:
        engine.close()
    proc = subprocess.Popen([sys.executable, "-m", "storage", "dump", root], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert err == b""


class _Ignored:
    """A waiter whose outcome nobody needs (the write after it is waited for)."""

    def deliver(self, outcome: object, result: object = None) -> None:
        pass


def test_dump_shows_deadlines_and_expire_records(tmp_path: Path) -> None:
    root = str(tmp_path / "ttl")
    engine = Engine.open(root, options(checkpoint_on_close=False))
    try:
        engine.transact(Txn(then=(Store(b"a", b"1", deadline=2_000_000_000_000),)))
        engine.transact(Txn(then=(Expire(b"a", None),)))
    finally:
        engine.close()
    code, out = run("dump", root)
    assert code == 0
    assert "PUT     a  (1 byte)  expires 2033-05-18T03:33:20.000+00:00" in out
    assert "EXPIRE  a  never expires" in out
    code, out = run("dump", "--json", root)
    records = [json.loads(line)["records"][0] for line in out.splitlines()]
    assert [r.get("deadline_ms", "none") for r in records] == [2_000_000_000_000, None]
