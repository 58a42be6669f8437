# Locust is typed but needs Python 3.11+: where it is absent, its @task is an untyped decorator.
# mypy: disallow-untyped-decorators=False
"""A Locust load test of a WebSocket echo server and a Socket.IO server, with mesiboscript's users.

    python -m mesiboscript serve ws                  # prints ws://127.0.0.1:PORT/
    MESIBOSCRIPT_WS_URL=ws://127.0.0.1:PORT/echo \\
    MESIBOSCRIPT_SIO_URL=http://127.0.0.1:3000 \\
        locust -f examples/locustfile.py --headless -u 100 -r 50 -t 30s

Scale out with Locust's distributed mode: one ``--master`` and any number of ``--worker``
processes (``tests/test_locust.py`` runs two workers on loopback). A user class whose URL
variable is unset is left out.
"""

from __future__ import annotations

import os
import uuid

from locust import constant_throughput, task

from mesiboscript.contrib.locust import SocketIOUser, WebSocketUser

WS_URL = os.environ.get("MESIBOSCRIPT_WS_URL", "")
SIO_URL = os.environ.get("MESIBOSCRIPT_SIO_URL", "")


class EchoUser(WebSocketUser):
    """Each user sends ten messages a second and waits for each echo."""

    host = WS_URL
    wait_time = constant_throughput(10)

    def on_start(self) -> None:
        self.connect()

    @task
    def echo(self) -> None:
        text = uuid.uuid4().hex
        self.request(text, match=lambda message: message == text)


class SocketIOEchoUser(SocketIOUser):
    """Each user calls the server's ``echo`` event (which acknowledges) ten times a second."""

    host = SIO_URL
    wait_time = constant_throughput(10)

    def on_start(self) -> None:
        self.connect()

    @task
    def echo(self) -> None:
        self.request("echo", {"n": 1})


# Leave out a user class whose server was not given.
if not WS_URL:
    del EchoUser
if not SIO_URL:
    del SocketIOEchoUser
