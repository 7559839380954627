"""The step server over HTTP on one host (stdlib only): ``POST /generate`` runs a request to its final latent,
``POST /cancel {"id": ...}`` ends one between steps; bodies and answers as in ``protocol.py``. Each connection
is served by its own thread, which waits on its request's future while the server's loop batches the requests.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .protocol import answer, failure, submit_json
from .server import StepServer


def make_handler(server: StepServer, timeout: float):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet: a load test makes thousands of calls
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            except json.JSONDecodeError as error:
                return self._reply(400, {"error": "JSONDecodeError", "message": str(error)})
            if self.path == "/cancel":
                return self._reply(200, {"id": body.get("id"), "cancelled": server.cancel(body.get("id"))})
            if self.path != "/generate":
                return self._reply(404, {"error": "NotFound", "message": "POST /generate or /cancel"})
            try:
                future = submit_json(server, body)
                self._reply(*answer(future, future.result(timeout)))
            except Exception as error:  # noqa: BLE001 - what is not the request's is raised again by failure()
                self._reply(*failure(error, body.get("id") if isinstance(body, dict) else None))

    return Handler


def serve_http(server: StepServer, port: int = 0, timeout: float = 600.0) -> ThreadingHTTPServer:
    """Serve ``server`` on 127.0.0.1 (``port`` 0: a free one, read from ``.server_address``) in a background
    thread; ``shutdown()`` stops it. The step server's loop runs in its own thread (``server.start()``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(server, timeout))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="c4d-http", daemon=True).start()
    return httpd


def post(port: int, path: str, body: dict | bytes, timeout: float = 600.0) -> tuple[int, dict]:
    """A client's call: POST ``body`` (JSON, or bytes as they are) to the server on 127.0.0.1:``port``; the status
    and the decoded answer, errors included."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
