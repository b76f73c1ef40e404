"""A throw-away PostgreSQL server for the tests: ``initdb`` in a temporary directory, on
a free loopback port, as an unprivileged user (PostgreSQL refuses to run as root, and CI
runs as root). Password authentication, so that a wrong password is a real refusal.
Where no server programs exist, ``start`` raises ``Unavailable`` with the reason."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "ecdp"
PASSWORD = "pg-secret-PASSWORD-93b1"


class Unavailable(Exception):
    pass


def _bindir() -> Path:
    for candidate in [os.environ.get("PG_BINDIR", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise Unavailable("no PostgreSQL server programs (initdb, pg_ctl) on this machine")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    bindir: Path
    datadir: Path
    port: int
    runas: list[str]

    def url(self, user: str = USER, password: str = PASSWORD, db: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.runas, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def restart(self) -> None:
        self.ctl("restart", "-m", "fast", "-l", str(self.datadir / "log"))

    def stop(self) -> None:
        self.ctl("stop", "-m", "immediate")
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start() -> Server:
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="ecdp-pg-"))
    datadir = base / "data"
    runas: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise Unavailable("running as root and there is no 'postgres' user to run the server as") from exc
        os.chown(base, owner.pw_uid, owner.pw_gid)
        runas = ["runuser", "-u", "postgres", "--"]
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if runas:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    made = subprocess.run(
        [*runas, str(bindir / "initdb"), "-D", str(datadir), "-U", USER, "--pwfile", str(pwfile),
         "--auth", "scram-sha-256", "--no-sync", "-E", "UTF8", "--locale", "C"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if made.returncode != 0:
        raise Unavailable(f"initdb failed: {made.stderr.strip()[:300]}")
    port = _free_port()
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{base}'\n"
            "fsync = off\nsynchronous_commit = on\nfull_page_writes = off\nmax_connections = 200\n"
        )
    server = Server(bindir, datadir, port, runas)
    started = server.ctl("start", "-l", str(datadir / "log"))
    if started.returncode != 0:
        log = (datadir / "log").read_text() if (datadir / "log").exists() else started.stderr
        raise Unavailable(f"the server did not start: {log.strip()[-300:]}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    raise Unavailable("the server did not listen within 30 s")
