"""The image's HEALTHCHECK command, /healthz, /readyz, /metrics and SIGTERM against a locally
started chatload whose backends are unreachable on purpose."""

import json
import os
import signal
import socket
import subprocess
import time

from common import fail, finish, ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmd_live(args):
    """Start chatload (backends unreachable on purpose: nothing is written anywhere), run the image's
    HEALTHCHECK command and the Kubernetes probe paths against it, then stop it with SIGTERM."""
    with open(args.healthcheck) as f:
        hc = json.load(f)
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "CHATLOAD_HTTP__LISTEN": f"127.0.0.1:{port}",
           "CHATLOAD_SCYLLA__HOSTS": '["127.0.0.1:1"]',
           "CHATLOAD_REDIS__URL": "redis://127.0.0.1:1",
           "CHATLOAD_LOG__LEVEL": "error"}
    proc = subprocess.Popen([args.binary, "run", "--config", args.config], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    fail(f"chatload exited {proc.returncode}: {proc.stderr.read()[-500:]}")
                    finish()
                time.sleep(0.1)
        else:
            fail("chatload did not listen within 15 s")
            finish()
        probe = [a.replace("/9742", f"/{port}") for a in hc]
        rc = subprocess.run(probe, capture_output=True, timeout=10).returncode
        (ok if rc == 0 else fail)(f"image HEALTHCHECK command against a running chatload: exit {rc}")
        closed = [a.replace("/9742", f"/{free_port()}") for a in hc]
        rc = subprocess.run(closed, capture_output=True, timeout=10).returncode
        (ok if rc != 0 else fail)(f"image HEALTHCHECK command against a closed port: exit {rc} (must fail)")
        for path in ("/healthz", "/readyz", "/metrics"):
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                status = s.makefile("rb").readline().decode().strip()
            (ok if " 200 " in status + " " else fail)(f"GET {path} with both backends down: {status}")
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
            took = time.time() - t0
            (ok if rc == 0 else fail)(f"SIGTERM: exit {rc} after {took:.1f} s (TimeoutStopSec / grace period 15 s)")
        except subprocess.TimeoutExpired:
            fail("SIGTERM: still running after 15 s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    finish()

