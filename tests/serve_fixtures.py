"""Fixtures that run ``fslog serve`` for tests with real Kafka clients.

- ``serve``: a running ``fslog serve`` on a free 127.0.0.1 port over the test's root
  (``cli.root``): ``serve.bootstrap`` ("127.0.0.1:PORT"), ``serve.port``,
  ``serve.proc``, ``serve.stderr_text()``, ``serve.stop()`` (SIGTERM, wait, return the
  exit code), ``serve.kill()`` (SIGKILL), ``serve.restart(same_port=False)``. Killed at
  teardown.
- ``start_serve(cli, *args)``: the same for a server with extra arguments.

The port is chosen by the server (``--listen 127.0.0.1:0``) and read from its first
stderr line, so parallel tests never race for a port. Use from a test module with
``from serve_fixtures import serve  # noqa: F401`` (tests/ is on sys.path).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest

_LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


class ServeProcess:
    def __init__(self, cli, *args: str, env: dict | None = None):
        self.cli = cli
        self.args = args
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._err = bytearray()
        self.port = 0
        self.start()

    def start(self, timeout: float = 30, port: int = 0) -> None:
        """Start the server; ``port``: the one to listen on (0: a free one)."""
        self._err = bytearray()
        self.proc = self.cli.popen("serve", "--listen", f"127.0.0.1:{port}", *self.args,
                                   env=self.env, stdout=subprocess.DEVNULL)
        got = threading.Event()

        def pump(stream, buf):
            for line in iter(stream.readline, b""):
                buf += line
                if _LISTENING.search(line):
                    got.set()
            got.set()

        t = threading.Thread(target=pump, args=(self.proc.stderr, self._err), daemon=True)
        t.start()
        self._pump = t
        if not got.wait(timeout) or not _LISTENING.search(bytes(self._err)):
            self.kill()
            raise AssertionError(f"fslog serve did not start: {self._err.decode(errors='replace')}")
        self.port = int(_LISTENING.search(bytes(self._err)).group(1))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stderr_text(self) -> str:
        return bytes(self._err).decode(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._pump.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self, same_port: bool = False) -> None:
        """Kill and start again (``same_port``: on the port it had, so that clients
        reconnect to the same address)."""
        port = self.port if same_port else 0
        self.kill()
        self.start(port=port)

    def wait_until(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the server's stderr:\n{self.stderr_text()}")
            time.sleep(0.02)


def start_serve(cli, *args: str, env: dict | None = None) -> ServeProcess:
    return ServeProcess(cli, *args, env=env)


@pytest.fixture
def serve(cli):
    s = ServeProcess(cli)
    yield s
    s.kill()


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


__all__ = ["ServeProcess", "start_serve", "serve", "in_ci"]
