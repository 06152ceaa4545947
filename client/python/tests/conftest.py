"""Fixtures: a real retryd server on a free loopback port with a fast test policy (no mocks).

The binary is $RETRYD_BIN, by default build/server/retryd of the repository these tests are in.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional

import grpc
import pytest

from retryd.v1 import admin_service_pb2, admin_service_pb2_grpc

# client/python/tests -> the repository root; scripts/build.sh builds into build/.
DEFAULT_BIN = str(Path(__file__).resolve().parents[3] / "build" / "server" / "retryd")

# 3 attempts, 200 ms then 400 ms (capped at 1 s), no jitter: the C++ tests' fast policy. Services
# named taxonomy.* also have a rule that makes HTTP_503 PERMANENT (the server owns the taxonomy).
FAST_POLICY = {
    "metricsAddr": "off",
    "shutdownGrace": "2s",
    # Payloads up to 8 MiB: a lease of one is over gRPC's default 4 MiB receive limit.
    "limits": {"maxPayloadBytes": 8 * 1024 * 1024},
    "policies": [
        {
            "name": "default",
            "maxAttempts": 3,
            "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"},
        },
        {
            "name": "taxonomy.*",
            "maxAttempts": 3,
            "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"},
            "classification": {"rules": [{"errorCode": "HTTP_503", "errorClass": "PERMANENT"}]},
        },
    ],
}


class RetrydServer:
    """A retryd process started for a test, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, config: dict, grpc_addr: str = "127.0.0.1:0") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="retryd-pytest-"))
        cfg = self.dir / "retryd.json"
        cfg.write_text(json.dumps(config))
        self.log_path = self.dir / "retryd.log"
        binary = os.environ.get("RETRYD_BIN", DEFAULT_BIN)
        if not os.access(binary, os.X_OK):
            pytest.fail(f"retryd binary not found at {binary} (set RETRYD_BIN)")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--data-dir", str(self.dir / "data"), "--grpc-addr", grpc_addr,
             "--metrics-addr", "127.0.0.1:0", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.port = self._wait_port()
        self.target = f"127.0.0.1:{self.port}"
        self._channel = grpc.insecure_channel(self.target)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            for line in text.splitlines():
                if '"server_started"' in line:
                    m = re.search(r'"grpc_port":(\d+)', line)
                    if m:
                        return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"retryd exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("retryd did not start in 20 s:\n" + self.log_path.read_text(errors="replace"))

    def get_envelope(self, service: str, message_id: str):
        """The stored envelope (proto), via AdminService.GetEnvelope."""
        return self.admin.GetEnvelope(
            admin_service_pb2.GetEnvelopeRequest(service=service, message_id=message_id), timeout=5
        ).envelope

    def stop(self) -> Optional[int]:
        self._channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server() -> Iterator[RetrydServer]:
    s = RetrydServer(FAST_POLICY)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def service() -> str:
    """A fresh service name per test, so tests sharing a server never see each other's work."""
    return "py-" + uuid.uuid4().hex[:12]


@pytest.fixture
def client(server: RetrydServer):
    import retryd

    with retryd.Client(target=server.target, timeout=10) as c:
        yield c
