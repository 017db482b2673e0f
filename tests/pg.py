"""A throwaway PostgreSQL cluster for the tests: Debian's binaries, a temporary directory, a free
port on 127.0.0.1 and a unix socket in that directory; a fresh schema per test.

``cluster()`` starts it once per test session (``stop()`` ends it, and so does the session's
end); as root it runs as the
``postgres`` system user, since ``initdb`` refuses root. Without PostgreSQL installed, a test
that needs it skips saying how to install it, and fails under ``CI=true``.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server._procs import free_port

INSTALL = "apt-get install postgresql"


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


@dataclass
class Cluster:
    bin: Path
    root: Path
    port: int
    user: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def schema_url(self, schema: str) -> str:
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def fresh(self) -> str:
        """The URL of a new, empty schema of its own."""
        import psycopg

        schema = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return self.schema_url(schema)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_cluster: Cluster | None = None


def unavailable(reason: str, module: bool = False) -> None:
    """Skip for ``reason`` (the whole module, if ``module``), or fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; the PostgreSQL tests must run on CI", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def require_psycopg() -> None:
    """At the top of a test module that imports psycopg."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable('psycopg is not installed (pip install -e ".[postgres]")', module=True)


def cluster() -> Cluster:
    """The session's cluster, started on first use; skips (fails under CI=true) without PostgreSQL."""
    global _cluster
    if _cluster is not None:
        return _cluster
    found = binaries()
    reason = None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        reason = 'psycopg is not installed (pip install -e ".[postgres]")'
    if found is None:
        reason = f"PostgreSQL is not installed ({INSTALL})"
    if reason is not None:
        unavailable(reason)
    assert found is not None
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    root = Path(tempfile.mkdtemp(prefix="prefect-like-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    started = Cluster(found, root, free_port(), user)
    started._run("initdb", "-D", str(root / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    started._run(
        "pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-t", "60", "-o",
        f"-p {started.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        "start",
    )
    _cluster = started
    atexit.register(stop)  # whichever fixture started it, it ends with the test session
    return started


def stop() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None
