"""An s3proxy of a test's own (another port, its own folder), to stop it by pid mid-upload.

The shared S3 server of ``scripts/services`` is never stopped by a test; this one runs the
same jar (``SATELLITES_S3PROXY_JAR``, ``SATELLITES_S3PROXY_JAVA`` from ``services env``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ACCESS_KEY = "test-access"
SECRET_KEY = "test-secret-key"
BUCKET = "snapshots"
START_SECONDS = 60.0


class S3Proxy:
    """One s3proxy process over ``folder``; ``start`` again after ``kill`` reuses the data."""

    def __init__(self, folder: Path) -> None:
        jar, java = (
            os.environ.get("SATELLITES_S3PROXY_JAR"),
            os.environ.get("SATELLITES_S3PROXY_JAVA"),
        )
        if not jar or not java or not Path(jar).is_file():
            raise RuntimeError(
                'no s3proxy jar: run `scripts/services up s3` and `eval "$(scripts/services env)"`'
            )
        self._command = [java, "-Xmx128m", "-jar", jar, "--properties"]
        self.folder = folder
        self.bucket_folder = folder / "data" / BUCKET
        self.bucket_folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        properties = self.folder / f"s3proxy-{self.port}.conf"
        properties.write_text(
            f"s3proxy.endpoint=http://127.0.0.1:{self.port}\n"
            "s3proxy.authorization=aws-v2-or-v4\n"
            f"s3proxy.identity={ACCESS_KEY}\n"
            f"s3proxy.credential={SECRET_KEY}\n"
            "s3proxy.ignore-unknown-headers=true\n"
            "jclouds.provider=filesystem\n"
            f"jclouds.filesystem.basedir={self.folder / 'data'}\n"
        )
        with (self.folder / "s3proxy.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [*self._command, str(properties)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_SECONDS
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"s3proxy did not start; see {self.folder / 's3proxy.log'}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the process this helper started (by its pid) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
