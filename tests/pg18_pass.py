"""The live-path tests again, on the embedded PostgreSQL 18 (`python -m tests.pg18_pass [pytest args]`).

The main pass runs on the machine's PostgreSQL (15). This one starts a server from the embedded wheel's
PostgreSQL 18 programs (the ones `bookmarks run` uses) on a free 127.0.0.1 port (the hub's probe test puts a
TCP proxy in front of the database), points `TEST_DATABASE_URL` at it and `TEST_POSTGRES_BINDIR` at those
programs (so the Postgres-restart and chaos tests make their private cluster from PostgreSQL 18 too), runs
the tests of the live path, then stops the server and removes its folder. `scripts/test` runs it when
no pytest arguments are given (the full run, as CI does), unless `PG18_PASS=0`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app import embedded
from tests.acceptance.cluster import binaries_cluster

LIVE_PATH_TESTS = (
    "tests/integration/db/test_triggers.py",  # seq under the row lock, pg_notify at commit
    "tests/integration/live/",  # the hub: LISTEN, reconnect, catch-up
    "tests/acceptance/test_live_delivery.py",  # sockets end to end, listener kills, web restarts
    "tests/acceptance/test_postgres_restart.py",
    "tests/acceptance/test_chaos.py",
)


def main(pytest_args: list[str]) -> int:
    bindir = embedded.bin_dir(embedded.EMBEDDED_MAJOR)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bookmarks-pg18-") as logs,
        binaries_cluster(bindir, Path(logs)) as (url, _),
    ):
        version = subprocess.run(
            [bindir / "postgres", "--version"], capture_output=True, text=True, check=True
        )
        print(f"{version.stdout.strip()} at {url}", flush=True)
        env = os.environ | {"TEST_DATABASE_URL": url, "TEST_POSTGRES_BINDIR": str(bindir)}
        command = [sys.executable, "-m", "pytest", *LIVE_PATH_TESTS, *pytest_args]
        returncode = subprocess.run(command, env=env, check=False).returncode
    print(f"PostgreSQL 18 pass: {time.monotonic() - started:.0f} s", flush=True)
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
