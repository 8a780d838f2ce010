"""`python -m asyncpipe`: the same entry point as the `asyncpipe` console script."""

from asyncpipe.cli import main

# Guarded: the scoring pool's spawned workers import this module as `__mp_main__`,
# and must not start a run of their own.
if __name__ == "__main__":
    raise SystemExit(main())
