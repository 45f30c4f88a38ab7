"""Drive real walkv servers (and the engine, for power loss) from outside.

The layout, imports pointing down::

    __main__.py       python -m harness load|burst|crash|powerloss|bench
    crash/            python -m harness crash: SIGKILL cycles (torture), file damage,
                      the random-write workload
    powerloss.py      python -m harness powerloss: power cuts at every fsync, in-process
    bench/            python -m harness bench: targets, measurements, load clients,
                      report; bench/ceiling/ is the yardstick server (imports nothing
                      from walkv or the harness)
    load.py, burst.py python -m harness load|burst: closed-loop load, new-connection bursts
    history.py        the exact oracle over a totally ordered history
    oracle.py         what each key may hold after a crash, given what clients saw
    report.py         progress bar and summary report of crash and powerloss
    client.py         the one HTTP/1.1 client: sans-IO encoding and parsing, fast reply
                      framing, async connections, one-shot requests (async and blocking)
    proc.py           start, SIGKILL, SIGTERM a server process like the lsfr harness
    eventloop.py      running coroutines on uvloop
    errors.py         what the harness raises

The harness reaches storage only through its public API (``storage``) and
``storage.testing``.
"""
