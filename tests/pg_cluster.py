"""A throw-away PostgreSQL cluster for tests and benchmarks.

Uses the server binaries of the system (Debian's ``postgresql`` package puts them under
``/usr/lib/postgresql/<major>/bin``; ``WWTUNE_PG_BIN`` overrides). ``initdb`` refuses to run as root, so
when the tests run as root the cluster runs as the unprivileged system user ``wwtune-pg`` (created if
missing); otherwise it runs as the current user. The server listens on 127.0.0.1 only, on a free port,
with password (scram-sha-256) authentication for every connection, its data in a temporary folder that
:meth:`PgCluster.stop` removes.

    with PgCluster.start() as pg:
        url = pg.create_database("study1")   # postgresql://postgres:<pw>@127.0.0.1:<port>/study1
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PG_USER = "wwtune-pg"
SUPERUSER = "postgres"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries can be had on this machine (the only reason to skip)."""


def find_pg_bin() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or :class:`PgUnavailable`."""
    candidates = []
    if os.environ.get("WWTUNE_PG_BIN"):
        candidates.append(Path(os.environ["WWTUNE_PG_BIN"]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates += [Path(p) for p in versions]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PgUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found on PATH, in $WWTUNE_PG_BIN or "
        "under /usr/lib/postgresql/*/bin; install Debian's `postgresql` package (.ci/install-system-deps)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[int | None, int | None]:
    """(uid, gid) to run the server as: an unprivileged user when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None, None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class PgCluster:
    """A running throw-away cluster; build it with :meth:`start`, end it with :meth:`stop`."""

    bin_dir: Path
    root: Path
    port: int
    password: str
    uid: int | None = None
    gid: int | None = None
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @classmethod
    def start(cls, timeout_s: int = 60) -> PgCluster:
        bin_dir = find_pg_bin()
        uid, gid = _run_as()
        root = Path(tempfile.mkdtemp(prefix="wwtune-pg-"))
        cluster = cls(
            bin_dir=bin_dir, root=root, port=free_port(), password=secrets.token_urlsafe(16), uid=uid, gid=gid
        )
        try:
            cluster._init_and_start(timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _pg(self, tool: str, *args: str, timeout_s: int = 60) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        result = subprocess.run(
            [str(self.bin_dir / tool), *args],
            user=self.uid,
            group=self.gid,
            extra_groups=[] if self.uid is not None else None,
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{log}"
            )
        return result

    def _init_and_start(self, timeout_s: int) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.uid is not None:
            os.chown(self.root, self.uid, self.gid)
            os.chown(pwfile, self.uid, self.gid)
        pwfile.chmod(0o600)
        self._pg(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            timeout_s=timeout_s,
        )
        pwfile.unlink()
        server_options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",  # throw-away data
                "-c max_connections=200",
            ]
        )
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            server_options,
            "-w",
            "-t",
            str(timeout_s),
            "start",
            timeout_s=timeout_s + 10,
        )

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{pw}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg2

        conn = psycopg2.connect(self.url(database), connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database and return its URL (with the password)."""
        name = name or f"t_{secrets.token_hex(6)}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be alphanumeric/underscore but got {name!r}.")
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
