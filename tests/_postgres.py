"""Start and stop a throwaway PostgreSQL cluster for tests (Debian's ``postgresql`` package binaries).

The cluster lives in a fresh temporary directory, listens on 127.0.0.1 only, on a free port, with
trust authentication. As root it runs as the ``postgres`` system user (``initdb`` refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def find_pg_bin() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl``: ``$PG_BIN``, the PATH, or /usr/lib/postgresql/<newest>/bin."""
    candidates = [os.environ.get("PG_BIN", "")]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def why_unavailable() -> str | None:
    """None when a cluster can be started here, else the reason (for ``pytest.skip``)."""
    if find_pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb as"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], user: str | None, timeout: float) -> None:
    res = subprocess.run(cmd, user=user, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({res.returncode}): {(res.stderr or res.stdout)[-800:]}")


@contextmanager
def postgres_server(timeout: float = 60.0) -> Iterator[str]:
    """Run a throwaway cluster; yields its connection string (database ``postgres``, user ``postgres``)."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise RuntimeError(why_unavailable() or "no PostgreSQL")
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="fourkagent-pg-"))
    data = root / "data"
    if user:
        shutil.chown(root, user=user)
    port = free_port()
    pg_ctl = [str(pg_bin / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        _run([str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--no-sync"], user, timeout)
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
        _run([*pg_ctl, "-l", str(root / "server.log"), "-o", opts, "-w", "-t", str(int(timeout)), "start"],
             user, timeout + 10)
        started = True
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait_ready(url, timeout)
        yield url
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], user=user, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
