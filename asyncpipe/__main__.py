"""`python -m asyncpipe`: the same entry point as the `asyncpipe` console script."""

from asyncpipe.cli import main

raise SystemExit(main())
