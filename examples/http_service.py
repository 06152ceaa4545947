"""A tiny local HTTP service for the examples: POST /process with a body naming the input.

    python3 examples/http_service.py 8088

Answers by input: "flaky-*" → 503 the first time, then 200; "slow-*" → 429 with Retry-After: 2
the first time, then 200; "bad-*" → 400 always; anything else → 200.
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen: dict = {}


class H(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        seen[body] = seen.get(body, 0) + 1
        first = seen[body] == 1
        if body.startswith("bad-"):
            self.send_response(400)
        elif body.startswith("flaky-") and first:
            self.send_response(503)
        elif body.startswith("slow-") and first:
            self.send_response(429)
            self.send_header("Retry-After", "2")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("http_service: %s\n" % (fmt % args))


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8088), H).serve_forever()
