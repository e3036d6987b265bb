"""A private PostgreSQL instance for the restart scenario, so the machine's shared server is never touched.

``initdb`` into a temporary directory and ``pg_ctl start`` on a free port with its socket in that
directory. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
(``runuser``); the scenario is skipped with the reason when neither works.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tianpay.entrypoints.launcher import free_port

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


class PrivatePostgres:
    def __init__(self) -> None:
        found = next((d for d in BIN_DIRS if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)
        if found is None:
            pytest.skip("no initdb/pg_ctl under /usr/lib/postgresql/*/bin: cannot start a private PostgreSQL")
        self._bin = found
        self._run_as: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run a private PostgreSQL as")
            if shutil.which("runuser") is None:
                pytest.skip("running as root and runuser is missing: PostgreSQL refuses to run as root")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="tianpay-pg-"))
        self.data = self.root / "data"
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self._pg(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._pg(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def restart(self) -> None:
        """An abrupt restart: ``immediate`` drops every connection at once, as a crash would."""
        self.stop("immediate")
        self.start()

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg(self, argv: list[str], *, check: bool = True) -> None:
        done = subprocess.run([*self._run_as, str(self._bin / argv[0]), *argv[1:]], capture_output=True, text=True,
                              check=False, timeout=120)  # fmt: skip
        if check and done.returncode != 0:
            pytest.skip(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")

