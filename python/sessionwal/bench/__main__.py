"""``python -m sessionwal.bench``: the same as ``sessionwal bench``."""

from sessionwal.bench.cli import main

raise SystemExit(main())
