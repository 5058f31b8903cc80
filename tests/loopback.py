"""A real HTTP server on 127.0.0.1 for tests: a free port, served from a daemon thread.

The one place the test stubs start and stop a loopback server:

    with LoopbackServer(Handler) as srv:      # Handler: a BaseHTTPRequestHandler class (or factory)
        srv.url    # "http://127.0.0.1:PORT"
        srv.port

Stubs subclass it and pass their handler to ``super().__init__`` (``HubStub``,
``ScriptedOpenAIServer``).  Request threads are daemons, so a client left hanging never blocks
the stop; ``stop`` shuts the serving loop down, closes the socket and joins the thread.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class LoopbackServer:
    def __init__(self, handler, *, request_queue_size: int | None = None):
        server_cls = ThreadingHTTPServer
        if request_queue_size is not None:  # a deeper listen backlog than the stdlib's 5
            server_cls = type("_Server", (ThreadingHTTPServer,), {"request_queue_size": request_queue_size})
        self.httpd = server_cls(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever: only when it runs
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
