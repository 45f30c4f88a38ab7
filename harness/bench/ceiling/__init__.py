"""The benchmark's yardstick: ``run.sh`` starts ``server``, a bare uvloop + httptools dict.

Nothing here imports walkv or the rest of the harness (see ``server``).
"""
