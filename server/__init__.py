"""walkv's network front ends on asyncio + uvloop, over the engine in ``storage``.

The modules, imports pointing down (``server`` knows no file formats)::

    __main__.py      python -m server: configuration, the build choice, then app
    app.py           lifecycle: start (lock, recover, listen), serve, drain, stop
    native.py        which modules are compiled (mypyc), and choosing the build
    config.py        Config: every setting, from the command line and environment
    state.py         ServerState (connections, limits, the read path)
    pipeline.py      per connection: ordered answers, deferral, write batches,
                     backpressure, idle, per-front-end Counters -- shared by every
                     protocol
    commands.py      protocol-neutral commands: Get, Put, Delete, Clear, Introspect
    introspection.py the numbers behind /metrics, /stats, /healthz
    logs.py, errors.py
    http/            HTTP/1.1: codec (sans-IO), router, replies (the answer tables),
                     service (shared by its connections), protocol (asyncio); the
                     rarer routes, interpreted: keyops, listing, txn (with
                     preconditions, query, jsonbytes)

The outcome of every command is a ``storage.Outcome``; only a protocol package turns
outcomes into its own bytes, in one table.
"""
