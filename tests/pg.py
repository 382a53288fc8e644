"""A private, throw-away PostgreSQL server for tests.

``start_postgres()`` finds ``initdb`` and ``pg_ctl`` (on ``PATH``, else the newest
``/usr/lib/postgresql/<version>/bin``), creates a cluster in a fresh temporary
directory (trust authentication, superuser ``postgres``, listening on 127.0.0.1 at a
free port, its unix socket in the same directory, ``fsync`` off: tests need no
durability), starts it and returns ``(url, stop)``: a SQLAlchemy URL
``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`` and a function that stops
the server and deletes the directory (idempotent; also run at interpreter exit).

PostgreSQL refuses to run as root: when the tests run as root, the directory is given
to the ``postgres`` user and the binaries are run through ``runuser -u postgres --``.

Anything that prevents a server (no binaries, no psycopg, no postgres user when root,
initdb or startup failing) raises :class:`PostgresUnavailable` with the reason, for a
fixture to turn into ``pytest.skip(reason)``.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["PostgresUnavailable", "create_database", "find_pg_bin", "start_postgres"]


class PostgresUnavailable(Exception):
    """No private PostgreSQL server can be started here; ``str()`` says why."""


def find_pg_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
    )
    for directory in reversed(candidates):
        if os.access(os.path.join(directory, "initdb"), os.X_OK) and os.access(
            os.path.join(directory, "pg_ctl"), os.X_OK
        ):
            return Path(directory)
    raise PostgresUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def start_postgres(timeout: float = 30.0, *, durable: bool = False,
                   socket: bool = False) -> tuple[str, Callable[[], None]]:
    """Start a private PostgreSQL server; return ``(sqlalchemy_url, stop)``. ``durable``: fsync and
    synchronous commits on (benchmarks compare it with SQLite's synchronous=FULL), else off (tests).
    ``socket``: the URL connects through the server's Unix socket instead of TCP on 127.0.0.1."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg is not installed (pip install 'psycopg[binary]')") from None
    bindir = find_pg_bin()
    prefix: list[str] = []
    owner: tuple[int, int] | None = None
    if os.geteuid() == 0:
        import pwd

        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresUnavailable("running as root and runuser is not available to drop privileges")
        prefix = [runuser, "-u", "postgres", "--"]
        owner = (entry.pw_uid, entry.pw_gid)

    base = Path(tempfile.mkdtemp(prefix="loraledger-pg-"))
    if owner is not None:
        os.chown(base, *owner)
    data = base / "data"
    log = base / "server.log"
    state = {"running": False, "removed": False}

    def run(*args: str, check_timeout: float = timeout) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=check_timeout, cwd=base
        )

    def stop() -> None:
        if state["running"]:
            state["running"] = False
            try:
                run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
            except (OSError, subprocess.SubprocessError):
                pass
        if not state["removed"]:
            state["removed"] = True
            shutil.rmtree(base, ignore_errors=True)

    try:
        result = run(
            str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {(result.stderr or result.stdout).strip()[-500:]}")
        for attempt in range(3):
            port = _free_port()
            with open(data / "postgresql.auto.conf", "a") as conf:
                conf.write(
                    f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                    f"unix_socket_directories = '{base}'\n"
                    + ("" if durable else "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n") +
                    "max_connections = 100\nshared_buffers = 128MB\n"
                )
            result = run(
                str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(int(timeout)), "start"
            )
            if result.returncode == 0:
                state["running"] = True
                atexit.register(stop)
                if socket:
                    return f"postgresql+psycopg://postgres@/postgres?host={base}&port={port}", stop
                return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop
            if "in use" not in _tail(log) or attempt == 2:
                raise PostgresUnavailable(
                    f"PostgreSQL did not start: {(result.stderr or result.stdout).strip()[-300:]} {_tail(log)}"
                )
            time.sleep(0.2)  # the free port was taken meanwhile: try another
        raise PostgresUnavailable("PostgreSQL did not start")  # not reached
    except subprocess.TimeoutExpired:
        stop()
        raise PostgresUnavailable(f"PostgreSQL did not start within {timeout:.0f} s") from None
    except OSError as exc:
        stop()
        raise PostgresUnavailable(f"PostgreSQL could not be run: {exc}") from None
    except PostgresUnavailable:
        stop()
        raise


def create_database(admin_url: str, name: str) -> str:
    """Create the database ``name`` on the server of ``admin_url``; return its URL."""
    import psycopg

    conninfo = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name
