import json
import socket
import stat
import sys

from live import cmd_live, free_port
from testsupport import CheckTestCase

# The image's HEALTHCHECK, as in deploy/Dockerfile: GET /healthz over bash's /dev/tcp on port 9742.
HEALTHCHECK = ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9742 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 "
                             "&& IFS= read -r status <&3 && [[ $status == 'HTTP/1.'?' 200'* ]]"]

# A stand-in for `chatload run --config FILE`: serves CHATLOAD_HTTP__LISTEN, answering 200 except for
# the paths in FAKE_FAIL (503), and exits with FAKE_EXIT at once if that is set, else 0 on SIGTERM.
FAKE_CHATLOAD = """#!%s
import http.server, os, signal, sys
if os.environ.get("FAKE_EXIT"):
    sys.exit(int(os.environ["FAKE_EXIT"]))
host, port = os.environ["CHATLOAD_HTTP__LISTEN"].rsplit(":", 1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if self.path in os.environ.get("FAKE_FAIL", "").split() else 200)
        self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.HTTPServer((host, int(port)), H)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
server.serve_forever()
""" % sys.executable


class LiveTest(CheckTestCase):
    def live(self, **fake_env):
        script = FAKE_CHATLOAD
        for k, v in fake_env.items():  # the check passes chatload only its own environment
            script = script.replace("import http.server, os, signal, sys",
                                    f"import http.server, os, signal, sys\nos.environ[{k!r}] = {v!r}")
        binary = self.write("chatload", script, mode=stat.S_IRWXU)
        hc = self.write("healthcheck.json", json.dumps(HEALTHCHECK))
        return self.run_check(cmd_live, binary=binary, config="/dev/null", healthcheck=hc)

    def test_free_port_is_bindable(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", free_port()))

    def test_healthy_chatload_passes(self):
        code, lines = self.live()
        self.assertNoFailures(code, lines)
        self.assertOks(lines, "image HEALTHCHECK command against a running chatload: exit 0",
                       "image HEALTHCHECK command against a closed port: exit 1 (must fail)")
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertOks(lines, f"GET {path} with both backends down: HTTP/1.0 200 OK",
                           "SIGTERM: exit 0 after")

    def test_unready_chatload_fails(self):
        code, lines = self.live(FAKE_FAIL="/readyz /healthz")
        self.assertEqual(code, 1)
        self.assertFailed("image HEALTHCHECK command against a running chatload: exit 1")
        self.assertFailed("GET /readyz with both backends down: HTTP/1.0 503")
        self.assertLine("ok", "GET /metrics with both backends down: HTTP/1.0 200 OK", lines)

    def test_chatload_that_exits_fails(self):
        code, _ = self.live(FAKE_EXIT="3")
        self.assertEqual(code, 1)
        self.assertFailed("chatload exited 3")
