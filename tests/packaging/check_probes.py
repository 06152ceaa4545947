#!/usr/bin/env python3
"""Runs what the chart renders against the real binaries: retryd with the container's arguments,
then each probe's and the helm test pod's `retryctl health` command.

usage: check_probes.py --server-root DIR --retryd PATH --retryctl PATH [--operator-token TOKEN]

DIR is laid out by check_chart.py --server-root (retryd.json, args, commands.json, auth/tokens.json)
plus what existing Secrets would hold (auth/tokens.json, tls/{tls.crt,tls.key,ca.crt}), all under
the container's /etc/retryd rewritten to DIR. retryd listens on 127.0.0.1 on a free port (the
rendered 0.0.0.0:50051 is checked by `retryd --check-config` instead), with metrics off and its
data in DIR/data; every command's --server is pointed at it, its TLS flags unchanged.

Checked: every command exits 0 and prints SERVING (a plaintext gRPC probe is checked as the same
question asked by retryctl); with tokens, an AdminService call without one is UNAUTHENTICATED and
with TOKEN succeeds; with TLS, a wrong --tls-server-name fails (the name is really verified); with
client certificates required, the probe without its certificate fails; with --console-addr
(console.enabled, moved to a free loopback port), the console's port accepts connections.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--server-root", required=True)
ap.add_argument("--retryd", required=True)
ap.add_argument("--retryctl", required=True)
ap.add_argument("--operator-token", default="")
args = ap.parse_args()

root = args.server_root
with open(os.path.join(root, "args")) as f:
    server_args = [line.rstrip("\n") for line in f if line.strip()]
with open(os.path.join(root, "commands.json")) as f:
    commands = json.load(f)
auth_on = any(a.startswith("--auth-file=") for a in server_args)
tls_on = any(a.startswith("--tls-cert=") for a in server_args)
certs_required = "--tls-client-auth=require" in server_args

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The console (console.enabled) listens on 0.0.0.0:<console.port> in the pod; here on a free
# loopback port, checked to accept connections once retryd serves.
console_port = None
for i, a in enumerate(server_args):
    if a.startswith("--console-addr="):
        console_port = free_port()
        server_args[i] = f"--console-addr=127.0.0.1:{console_port}"


def start_server():
    """Starts retryd; returns (process, port), or exits with its log when it does not start."""
    log_path = os.path.join(root, "retryd.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [args.retryd] + server_args +
        ["--grpc-addr=127.0.0.1:0", "--metrics-addr=off", f"--data-dir={os.path.join(root, 'data')}"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log_path) as f:
            # server_started names the bound port: "grpc_port":N (json) or grpc_port=N (text).
            found = re.search(r'"?grpc_port"?[:=]\s*"?([1-9][0-9]*)', f.read())
        if found:
            return proc, int(found.group(1))
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with open(log_path) as f:
        sys.exit(f"FAIL: retryd did not start with the rendered arguments:\n{f.read()}")


def run(cmd):
    """Runs retryctl; returns (exit code, stdout + stderr)."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return done.returncode, (done.stdout + done.stderr).strip()


def local(cmd, port):
    """The rendered command with the local retryctl and --server pointed at the test server."""
    out = [args.retryctl] + cmd[1:]
    out[out.index("--server") + 1] = f"127.0.0.1:{port}"
    return out


def without(cmd, flag, values=1):
    i = cmd.index(flag)
    return cmd[:i] + cmd[i + 1 + values:]


proc, port = start_server()
try:
    for c in commands:
        cmd = local(c["command"], port)
        rc, out = run(cmd)
        check(rc == 0 and out == "SERVING", f"{c['name']}: {' '.join(cmd)} -> exit {rc}: {out}")
    if console_port is not None:
        try:
            socket.create_connection(("127.0.0.1", console_port), timeout=5).close()
        except OSError as e:
            check(False, f"the console port (--console-addr) does not accept connections: {e}")
    base = local(commands[0]["command"], port)
    base = base[:base.index("health")]  # connection flags only
    if auth_on:
        rc, out = run(base + ["services"])
        check(rc == 80, f"services without a token must be UNAUTHENTICATED (exit 80), got {rc}: {out}")
        if args.operator_token:
            rc, out = run(base + ["--token", args.operator_token, "services"])
            check(rc == 0, f"services with the operator token: exit {rc}: {out}")
    if tls_on:
        cmd = local(commands[0]["command"], port)
        cmd[cmd.index("--tls-server-name") + 1] = "wrong.example"
        rc, out = run(cmd)
        check(rc not in (0, None), f"health with a wrong --tls-server-name must fail, got {rc}: {out}")
    if certs_required:
        cmd = without(without(local(commands[0]["command"], port), "--tls-cert"), "--tls-key")
        rc, out = run(cmd)
        check(rc not in (0, None), f"health without a client certificate must fail under require, got {rc}: {out}")
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

if failures:
    for f in failures:
        print("FAIL:", f)
    sys.exit(1)
print(f"check_probes: OK ({len(commands)} commands SERVING"
      f"{', tokens enforced' if auth_on else ''}{', TLS verified' if tls_on else ''}"
      f"{', client certificate required' if certs_required else ''})")
