"""``python -m harness bench``: measure walkv, a baseline and the ceiling alike, from outside.

Imports point down this list:

- ``cli``: the command line, the targets, the plan of rounds; writes the outputs.
- ``resp``, ``resp_report``: ``--protocol resp``, walkv against Redis with
  ``appendfsync always`` under redis-benchmark; its report and goals. ``redis/``:
  Redis as a target (a ``run.sh``).
- ``run``: one measurement (throughput, burst, large key count) on a fresh server.
- ``probe``: what is seen of a running target from outside (``/stats``, HTTP probes,
  listing pages, CPU, RSS, checkpoint children).
- ``loadgen``: load clients as child processes (wrk, or ``loadclient``), their CPU time.
- ``loadclient``: the built-in closed-loop client, ``python -m harness.bench.loadclient``.
- ``report``, ``plot``, ``goals``, ``fold``: rounds folded into medians, goals, markdown,
  JSON and the latency plot.
- ``machine``, ``model``: machine facts and fdatasync latency; the plain result records.
- ``wrk/``: wrk scripts. ``ceiling/``: the yardstick target, a bare dict server that
  imports nothing from walkv or the harness.
"""
