"""The server: listener, connections, worker threads, shutdown, registration.

One asyncio event loop thread runs every connection (``connection.py``) and handler;
blocking storage calls (``storage.py``) run on a small pool of worker threads. A
long-poll Fetch waits on the loop without holding a thread, so it never blocks other
requests or connections. Appends wake waiting Fetches at once (same process) or through
inotify on the partition directories (any other process: ``wakeup.py``).

Shutdown (SIGTERM, SIGINT, ``request_stop``): stop accepting, let each connection answer
the requests it has read (long polls end early with what there is), fsync every
partition written to, release the registration, return. Not thread-safe: call
``request_stop`` from the loop thread or through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..storage.servers import Registration
from .connection import Connection
from .handlers import load_handlers
from .security import Security
from .storage import BrokerStorage

if TYPE_CHECKING:
    from .fsync import GroupSync
    from .producer_state import ProducerStates
    from .wakeup import Wakeups

DEFAULT_PORT = 9092
IDLE_MS = 10 * 60 * 1000  # Kafka's connections.max.idle.ms
WORKERS = 4


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    advertised_host: str | None = None
    advertised_port: int | None = None
    node_id: int = 0
    auto_create_topics: bool = True
    default_partitions: int = 1
    max_request_bytes: int = 100 << 20
    max_connections: int = 1000
    idle_ms: int = IDLE_MS
    insecure: bool = False
    tls_cert: str | None = None  # PEM certificate chain; with tls_key, TLS on every connection
    tls_key: str | None = None
    sasl: bool = False  # require SASL on loopback too (always required elsewhere, unless insecure)
    group_initial_rebalance_delay_ms: int = 3000  # Kafka's group.initial.rebalance.delay.ms


class Server:
    def __init__(self, log, config: ServeConfig, logger: logging.Logger | None = None):
        self.log = log
        self.config = config
        self.logger = logger or logging.getLogger("fslog.serve")
        self.storage = BrokerStorage(log, config.default_partitions)
        self.security = Security(config, log.root, self.logger)
        self.connections: set[Connection] = set()
        self.requests = 0
        self.stopping: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = time.monotonic()
        self._executor = concurrent.futures.ThreadPoolExecutor(WORKERS, "fslog-serve")
        self.listen_address = f"{config.host}:{config.port}"
        self.advertised = (config.advertised_host or config.host, config.advertised_port)
        self.cluster_id = "fslog-" + log.root.replace("/", "_")[-40:]
        # made by start(), on the event loop; connections, ticks and stops come after it
        self._server: asyncio.AbstractServer
        self._registration: Registration
        self.wakeups: Wakeups
        self.producers: ProducerStates
        self.fsyncs: GroupSync

    def _stopping(self) -> asyncio.Event:
        assert self.stopping is not None, "start() makes it"
        return self.stopping

    # ------------------------------------------------------------ helpers for handlers
    async def run_blocking(self, fn, *args):
        return await self.loop.run_in_executor(self._executor, fn, *args)

    def count_request(self) -> None:
        self.requests += 1

    # ------------------------------------------------------------ life
    async def start(self) -> None:
        from .fsync import GroupSync
        from .producer_state import ProducerStates
        from .wakeup import Wakeups
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        load_handlers()
        self.wakeups = Wakeups(self.loop)
        self.fsyncs = GroupSync(self)
        from .replicas import Replicas
        self.replicas = Replicas()  # followers: high watermark, acks=all (replicas.py)
        self.producers = ProducerStates(self)
        # Register before listening: a second server on the root refuses before it binds.
        info = {"listen": self.listen_address, "node_id": self.config.node_id,
                "security_protocol": self.security.protocol}
        self._registration = Registration(self.log.root, info)
        try:
            # On a follower root (fslog replicate): take over as leader, with a new leader
            # epoch, as Kafka's leader election would (refuses while a follower runs).
            # On a leader root: a new leader epoch as well (every start is an election): a
            # follower that copied records this root lost in a crash truncates them.
            from ..storage.replica import begin_leader_epochs, promote
            promoted = await self.run_blocking(promote, self.log.root)
            if not promoted:
                await self.run_blocking(begin_leader_epochs, self.log.root)
        except BaseException:
            self._registration.close()
            raise
        if promoted:
            self.logger.info("serve: %s was a follower: promoted to leader (leader epoch %d "
                             "on %d partitions)", self.log.root,
                             max(p["epoch"] for p in promoted), len(promoted))
        try:
            self._server = await asyncio.start_server(
                self._accept, self.config.host, self.config.port, limit=1 << 20,
                backlog=1024)  # TLS, when on, starts in security.on_connect
        except OSError as e:
            self._registration.close()
            from ..errors import FslogError
            raise FslogError(f"cannot listen on {self.config.host}:{self.config.port}: "
                             f"{e.strerror or e}") from None
        sock = self._server.sockets[0].getsockname()
        self.listen_address = f"{sock[0]}:{sock[1]}"
        if self.advertised[1] is None or self.advertised[1] == 0:
            self.advertised = (self.advertised[0], sock[1])
        self._registration.update(listen=self.listen_address,
                                  advertised=f"{self.advertised[0]}:{self.advertised[1]}")
        self.logger.info("serve: listening on %s (advertised %s:%d, node %d, root %s, %s%s)",
                         self.listen_address, self.advertised[0], self.advertised[1],
                         self.config.node_id, self.log.root, self.security.protocol,
                         f" {'/'.join(self.security.mechanisms)}"
                         if self.security.mechanisms else "")
        self._ticker = asyncio.create_task(self._tick())
        # Everything made so far (modules, kio's classes, tables) lives as long as the
        # server: keep it out of the collector's full passes, which otherwise stop the
        # loop for tens of ms now and then (measured: 40-130 ms on a loaded machine).
        gc.freeze()

    async def _accept(self, reader, writer) -> None:
        if self._stopping().is_set():
            writer.close()
            return
        conn = Connection(self, reader, writer)
        if len(self.connections) >= self.config.max_connections:
            self.logger.warning("serve: %s: refused: --max-connections=%d reached",
                                conn.peer, self.config.max_connections)
            writer.close()
            return
        self.connections.add(conn)
        self.logger.info("serve: %s: connected (%d open)", conn.peer, len(self.connections))
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            why = f": {conn.close_reason}" if conn.close_reason else ""
            self.logger.log(logging.WARNING if conn.refused else logging.INFO,
                            "serve: %s: closed after %d requests%s (%d open)", conn.peer,
                            conn.requests, why, len(self.connections))

    async def _tick(self) -> None:
        """Once a second: the registration's counters, idle connections."""
        last_requests, last_t = self.requests, time.monotonic()
        stopping = self._stopping()
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            now = time.monotonic()
            rate = (self.requests - last_requests) / max(now - last_t, 1e-6)
            last_requests, last_t = self.requests, now
            followers = []
            if self.replicas.tracked():
                followers = await self.run_blocking(self.replicas.report, self.storage)
            self._registration.update(connections=len(self.connections),
                                      requests=self.requests,
                                      requests_per_s=round(rate, 1), followers=followers)
            idle = self.config.idle_ms / 1000
            for conn in list(self.connections):
                if not conn.busy() and now - conn.last_active > idle:
                    conn.stop(f"idle for more than {self.config.idle_ms} ms "
                              f"(connections.max.idle.ms)")

    def request_stop(self, why: str = "") -> None:
        if self.stopping is not None and not self.stopping.is_set():
            self.logger.info("serve: stopping%s", f" ({why})" if why else "")
            self.stopping.set()
            self.wakeups.wake_all()  # long polls answer now with what there is

    async def wait_stopped(self) -> None:
        await self._stopping().wait()
        self._server.close()
        for conn in list(self.connections):
            conn.stop("the server is stopping")
        deadline = time.monotonic() + 30
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self.fsyncs.drain()
        await self.run_blocking(self.storage.close)
        self.producers.close()
        self.wakeups.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 2)
        except (asyncio.TimeoutError, Exception):
            pass
        self._ticker.cancel()
        self._registration.close()
        self._executor.shutdown(wait=True)
        self.logger.info("serve: stopped; every partition written to is fsynced")


def serve(log, config: ServeConfig, logger: logging.Logger | None = None,
          on_ready=None) -> None:
    """Run a server in the foreground until SIGTERM or SIGINT (the ``fslog serve`` command)."""

    async def main():
        server = Server(log, config, logger)
        loop = asyncio.get_running_loop()
        early: list[str] = []  # a signal during start-up: stop as soon as started

        def on_signal(name: str) -> None:
            if server.stopping is None:
                early.append(name)
            else:
                server.request_stop(name)
        for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            loop.add_signal_handler(sig, on_signal, name)
        await server.start()
        if early:
            server.request_stop(early[0])
        if on_ready is not None:
            on_ready(server)
        await server.wait_stopped()

    asyncio.run(main())
