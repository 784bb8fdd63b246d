"""One client connection: framing, request order, pipelining, idle and size limits.

A connection reads frames (4-byte size, then the request), decodes them with
``protocol.py`` and hands each to its handler (``handlers.py``), one at a time, in the
order they came: whatever a handler does before it returns is ordered per connection
(two pipelined Produce requests to one partition are appended in the order sent).
A response with nothing ahead of it is sent at once; otherwise it goes into a queue that
a writer task drains in the same order. A handler that must wait (an fsync for acks=all,
a long-poll Fetch) returns a ``Deferred`` and the connection goes on reading and
handling the next requests meanwhile, up to ``MAX_IN_FLIGHT`` unanswered requests.

Bad input never crashes the server and never reaches the log: a frame larger than
``--max-request-bytes`` (or of a negative size), an unknown API key or version, or a
body that does not decode closes the connection with one log line; ApiVersions of an
unsupported version gets Kafka's v0 answer (error 35 and the supported ranges).

Security (``security.py``): before the first request ``security.on_connect(conn)`` runs
(the TLS handshake, when TLS is on), and every request passes
``security.allows(conn, api_key)``: with SASL, only ApiVersions and the SASL requests
are allowed until ``conn.principal`` is set. After SaslHandshake v0 the frames are raw
SASL tokens, not requests (``conn.auth.raw``). Runs on the event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time

from . import protocol, versions
from .handlers import HANDLERS, ApiError, Deferred, RawFrame, RequestContext

MAX_IN_FLIGHT = 64
_SIZE = struct.Struct(">i")
_VIEW = 64 * 1024  # responses larger than this are written through a memoryview


def _coalesce(parts: list[bytes] | list[bytes | bytearray]) -> list[bytes | memoryview]:
    """The buffers of a response as few writes (each write of an idle socket is a send
    system call): runs of small buffers joined, large ones (a 1 MB record batch) passed
    through a memoryview, so what the socket does not take at once is copied once, into
    the transport's buffer, never sliced into a new bytes first."""
    out: list[bytes | memoryview] = []
    run: list[bytes | bytearray] = []
    for data in parts:
        if len(data) > _VIEW:
            if run:
                out.append(b"".join(run))
                run = []
            out.append(memoryview(data))
        else:
            run.append(data)
    if run:
        out.append(b"".join(run))
    return out


class Connection:
    def __init__(self, server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.principal: str | None = None  # the SASL user, once authenticated
        self.auth = None  # security.SaslSession while a SASL exchange is under way
        self.client_id: str | None = None
        self.last_active = time.monotonic()
        self.requests = 0
        self._waiting_for_frame = False
        self._stopping = False
        self._task: asyncio.Task | None = None
        self.close_reason: str | None = None
        self.refused = False  # closed because of bad input (logged as a warning)
        self._queued = 0  # responses handed to the writer task and not yet sent
        self._broken = False  # a response failed or the client went away: send no more

    @property
    def logger(self) -> logging.Logger:
        return self.server.logger

    # ------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        self._task = asyncio.current_task()
        out: asyncio.Queue = asyncio.Queue(MAX_IN_FLIGHT)
        writer_task = asyncio.create_task(self._write_loop(out))
        try:
            if await self.server.security.on_connect(self):
                await self._read_loop(out)
        except asyncio.CancelledError:
            pass  # stopped while waiting for a frame (shutdown, idle)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                await out.put(None)
                await writer_task
            except (asyncio.CancelledError, Exception):
                writer_task.cancel()
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass

    def stop(self, reason: str) -> None:
        """Read no more requests: answer those already read, then close."""
        self._stopping = True
        self.close_reason = self.close_reason or reason
        if self._waiting_for_frame and self._task is not None:
            self._task.cancel()

    def busy(self) -> bool:
        return not self._waiting_for_frame

    # ------------------------------------------------------------ reading
    async def _read_frame(self) -> bytes | None:
        self._waiting_for_frame = True
        try:
            try:
                head = await self.reader.readexactly(4)
            except asyncio.IncompleteReadError as e:
                if e.partial:
                    self._refuse("closed in the middle of a frame size")
                return None
            (size,) = _SIZE.unpack(head)
            limit = self.server.config.max_request_bytes
            if size < 0 or size > limit:
                self._refuse(f"a request of {size} bytes is over --max-request-bytes={limit}"
                             if size > 0 else f"a negative frame size ({size})")
                return None
            try:
                frame = await self.reader.readexactly(size)
            except asyncio.IncompleteReadError:
                self._refuse(f"closed in the middle of a {size}-byte request")
                return None
        finally:
            self._waiting_for_frame = False
        self.last_active = time.monotonic()
        return frame

    def _refuse(self, why: str) -> None:
        """Close after this: the server logs ``why`` in its one line about the close."""
        self.close_reason = why
        self.refused = True

    async def _read_loop(self, out: asyncio.Queue) -> None:
        while not self._stopping:
            frame = await self._read_frame()
            if frame is None:
                return
            if self.auth is not None and self.auth.raw:  # a SASL token after SaslHandshake v0
                reply = await self.server.security.raw_token(self, frame)
                if reply is None:
                    return
                await self._respond(out, None, reply)
                continue
            try:
                head = protocol.peek_head(frame)
            except protocol.MalformedRequest as e:
                self._refuse(str(e))
                return
            self.requests += 1
            self.server.count_request()
            if head.client_id and self.client_id != head.client_id:
                self.client_id = head.client_id
            if not versions.supported(head.api_key, head.api_version):
                if head.api_key == 18:  # ApiVersions: answer so the client can retry lower
                    from .api_versions import unsupported_version_response
                    await self._respond(out, head.correlation_id,
                                        unsupported_version_response())
                    continue
                known = head.api_key in versions.API_VERSIONS
                self._refuse(
                    f"{versions.api_name(head.api_key)} v{head.api_version} is not supported"
                    + (f" (v{versions.API_VERSIONS[head.api_key].min_version}-"
                       f"v{versions.API_VERSIONS[head.api_key].max_version} are)" if known
                       else " (unknown API key)"))
                return
            if not self.server.security.allows(self, head.api_key):
                self._refuse(f"{versions.api_name(head.api_key)} before SASL authentication "
                             f"completed (the client must authenticate first)")
                return
            handler = HANDLERS.get(head.api_key)
            if handler is None:
                self._refuse(f"{versions.api_name(head.api_key)} has no handler")
                return
            try:
                request = protocol.decode_request(head.api_key, head.api_version, frame)
            except protocol.MalformedRequest as e:
                self._refuse(f"{versions.api_name(head.api_key)} v{head.api_version}: {e}")
                return
            del frame
            ctx = RequestContext(self.server, self, head.api_key, head.api_version,
                                 head.correlation_id, head.client_id)
            try:
                result = await handler(ctx, request)
            except ApiError as e:
                self._refuse(f"{versions.api_name(head.api_key)} v{head.api_version}: {e}")
                return
            except Exception:  # a bug: log it, close this connection, keep serving others
                self.logger.exception("serve: %s: %s v%d failed; closing the connection",
                                      self.peer, versions.api_name(head.api_key),
                                      head.api_version)
                self.close_reason = "internal error"
                return
            if result is not None:
                await self._respond(out, head.correlation_id, result)

    # ------------------------------------------------------------ writing
    async def _respond(self, out: asyncio.Queue, correlation_id: int | None, result) -> None:
        """Send ``result`` now when nothing is ahead of it (one loop iteration less per
        request: no hand-over to the writer task), else queue it behind the rest."""
        if self._queued or isinstance(result, Deferred) or self._broken:
            self._queued += 1
            await out.put((correlation_id, result))
        else:
            await self._send(correlation_id, result)

    async def _send(self, correlation_id: int | None, result) -> None:
        if self._broken:
            return
        parts: list[bytes] | list[bytes | bytearray]
        try:
            if isinstance(result, RawFrame):
                parts = result.parts
            elif isinstance(result, (bytes, bytearray)):  # a raw SASL token, framed
                parts = [result]
            elif correlation_id is None:
                raise TypeError(f"a {type(result).__name__} response without a request")
            else:
                parts = [protocol.encode_response(correlation_id, result)]
        except Exception:
            self.logger.exception("serve: %s: a response failed; closing the connection",
                                  self.peer)
            self._broken = True
            self.stop("internal error")
            return
        try:
            write = self.writer.write
            for data in _coalesce(parts) if len(parts) > 1 else parts:
                write(data)
            await self.writer.drain()
            self.last_active = time.monotonic()
        except (ConnectionError, OSError):
            self._broken = True
            self.stop("the client went away")

    async def _write_loop(self, out: asyncio.Queue) -> None:
        while True:
            item = await out.get()
            if item is None:
                return
            correlation_id, result = item
            try:
                if isinstance(result, Deferred):
                    try:
                        result = await result.awaitable
                    except Exception:
                        self.logger.exception("serve: %s: a response failed; closing the "
                                              "connection", self.peer)
                        self._broken = True
                        self.stop("internal error")
                        continue  # drain the queue (awaiting what is deferred), send nothing
                if result is not None:
                    await self._send(correlation_id, result)
            finally:
                self._queued -= 1
