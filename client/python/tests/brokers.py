"""Real brokers for the integration tests: ElasticMQ (SQS-compatible) on a free loopback port.

The jars come from ``scripts/fetch-elasticmq.sh`` (``$RETRYD_ELASTICMQ_LIB``); Java 17 runs them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ElasticMQ:
    """An ElasticMQ server started for a test, stopped by its PID (SIGTERM, then SIGKILL)."""

    def __init__(self, lib_dir: str, start_timeout: float = 60.0) -> None:
        java = shutil.which("java")
        if not java:
            raise RuntimeError("java not found (bash scripts/install-deps.sh celery)")
        self.dir = Path(tempfile.mkdtemp(prefix="elasticmq-"))
        self.port = free_port()
        conf = self.dir / "elasticmq.conf"
        conf.write_text(
            'include classpath("application.conf")\n'
            f'node-address {{ protocol = http, host = 127.0.0.1, port = {self.port}, context-path = "" }}\n'
            f'rest-sqs {{ enabled = true, bind-port = {self.port}, bind-hostname = "127.0.0.1", sqs-limits = strict }}\n'
            "rest-stats { enabled = false }\n"
        )
        self.log_path = self.dir / "elasticmq.log"
        self._log = open(self.log_path, "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [java, "-Xmx256m", f"-Dconfig.file={conf}", "-cp", os.path.join(lib_dir, "*"),
             "org.elasticmq.server.Main"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = t0 + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ElasticMQ exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                urllib.request.urlopen(f"{self.url}/?Action=ListQueues", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"ElasticMQ did not answer in {start_timeout:.0f} s")
                time.sleep(0.1)
        self.start_seconds = time.monotonic() - t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
