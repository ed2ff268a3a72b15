"""A pytest plugin for mutation runs only (``-p tests.core_mutation_speed`` in [tool.mutmut]).

A loopback FakeLLM takes up to half a second to stop (``serve_forever`` polls for shutdown every
0.5 s); a mutation run starts and stops thousands of them, so it polls every 10 ms instead. Nothing
a test asserts depends on how soon a stopped server notices.
"""

from __future__ import annotations

import socketserver

_serve_forever = socketserver.BaseServer.serve_forever


def _serve_forever_polling_fast(self, poll_interval=0.01):
    return _serve_forever(self, poll_interval)


socketserver.BaseServer.serve_forever = _serve_forever_polling_fast
