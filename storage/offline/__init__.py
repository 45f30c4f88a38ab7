"""The offline tool for a stopped server's working directory (``python -m storage``).

One module per verb, each gathering what it shows (judged by the code a start runs:
``recovery.recover`` as a dry run, ``wal.scan.SegmentScan``, ``snapshot.read_snapshot``)
and printing it as text or JSON::

    cli.py      the command line: options, the directory's LOCK, exit status, dispatch
    check.py    check DIR: verify every snapshot and frame, list every problem
    dump.py     dump DIR: the valid frames and their operations
    repair.py   repair DIR: a start's recovery without the server
    stats.py    stats DIR: what a start would recover, measured
    files.py    which snapshots and segments there are; one segment verified on its own
    render.py   output shared by the verbs: relative paths, counts, JSON, and what
                recovery did or would do

Nothing here imports the server: the tool runs with the storage package alone.
"""
