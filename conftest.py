"""Here so that pytest puts the repository root on sys.path: test modules import helpers as ``tests.conftest``
whether the suite runs as ``python -m pytest`` (as ``make test`` does) or as ``.venv/bin/pytest``."""
