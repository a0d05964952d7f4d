"""A PostgreSQL server the durability tests may stop and start again (the shared session server must stay up)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tests.fixtures.postgres import FAST_OPTIONS, SUPERUSER, _free_port, _run, _server_user, find_pg_bin


class StoppablePostgres:
    """initdb + pg_ctl in a temporary folder on a free 127.0.0.1 port; stop() and start() keep the data."""

    def __init__(self) -> None:
        self.pg_bin = find_pg_bin()
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="spindle-pg-stop-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        _run([str(self.pg_bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
              "--encoding=UTF8", "--locale=C", "--no-sync"], self.user)
        self.port = _free_port()
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} {FAST_OPTIONS}"
        _run([str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
              "start"], self.user, self.log)

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: open connections are cut, as when the database server goes away."""
        _run([str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], self.user, self.log)

    def destroy(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
