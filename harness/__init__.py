"""Drive a real walkv server process from outside.

- ``harness.proc``: start, SIGKILL, SIGTERM a server like the lsfr harness does.
- ``harness.client``: a small HTTP/1.1 client (keep-alive, pipelining, one-shot).
- ``harness.oracle``: what each key may hold after a crash, given what clients saw.
- ``harness.workload``: concurrent random writers recorded by an oracle.
- ``harness.load``, ``harness.burst``: load generators behind ``python -m harness``.
- ``harness.bench`` (with ``bench_*``): ``python -m harness bench``, the benchmark.
- ``harness.ceiling``: the benchmark's yardstick, a bare dict server (``harness/ceiling/``).
"""
