"""The offline tool for a stopped server's working directory (``python -m storage``).

``inspection.py`` gathers what ``check``, ``dump`` and ``stats`` show, judging with the
code a start runs; ``cli.py`` is the command line and its output.
"""
