"""``python -m sessionwal``: the same as the ``sessionwal`` console script."""

from sessionwal.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
