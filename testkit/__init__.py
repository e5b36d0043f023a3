"""What the tests and the benchmarks share: the app as a real server process, socket clients that keep a
ledger, a raw RFC 6455 socket, accounts, and the fake YouTube.

Only `tests/` and `bench/` import this package; the app, the database layer and the workers never do
(an import-linter contract in pyproject.toml).
"""
