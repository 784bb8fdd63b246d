"""A minimal Kafka wire-protocol client for tests of ``fslog serve``: raw frames, kio
requests and responses, and record batches with idempotent-producer fields.

    w = Wire(bootstrap)
    resp = w.call(3, 12, MetadataRequest(...))   # send, then read the response
    w.send(...); w.send(...); w.recv(...)       # pipelining
    w.send_raw(b"...")                          # any bytes (fuzzing)
"""

from __future__ import annotations

import io
import socket
import struct

from kio.index import load_request_schema, load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer

from fslog.records import batch as rb


def make_batch(values, pid: int = -1, epoch: int = -1, seq: int = -1,
               keys=None, timestamp: int = 1_700_000_000_000) -> bytes:
    """A RecordBatch v2 of ``values`` with the producer fields set (CRC recomputed)."""
    keys = keys or [None] * len(values)
    b = rb.encode_records([(k, v, timestamp, ()) for k, v in zip(keys, values)])
    struct.pack_into(">qhi", b, 43, pid, epoch, seq)
    struct.pack_into(">I", b, 17, rb.crc32c(bytes(b[21:])))
    return bytes(b)


def request_frame(api_key: int, version: int, correlation_id: int, body,
                  client_id: str = "fslog-test") -> bytes:
    cls = load_request_schema(api_key, version)
    buf = io.BytesIO()
    header_cls = cls.__header_schema__
    entity_writer(header_cls)(buf, header_cls(request_api_key=api_key, request_api_version=version,
                                              correlation_id=correlation_id, client_id=client_id))
    entity_writer(cls)(buf, body)
    data = buf.getvalue()
    return struct.pack(">i", len(data)) + data


class Wire:
    def __init__(self, bootstrap: str, timeout: float = 60):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation = 0
        self.pending: list[tuple[int, int, int]] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, api_key: int, version: int, body) -> int:
        self.correlation += 1
        self.sock.sendall(request_frame(api_key, version, self.correlation, body))
        self.pending.append((api_key, version, self.correlation))
        return self.correlation

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes | None:
        """The next response frame (without its size), or None if the server closed."""
        head = self._read(4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        return self._read(size)

    def _read(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def recv(self):
        api_key, version, corr = self.pending.pop(0)
        frame = self.read_frame()
        assert frame is not None, "the server closed the connection"
        cls = load_response_schema(api_key, version)
        (got,) = struct.unpack_from(">i", frame, 0)
        assert got == corr, f"response to correlation id {got}, expected {corr}"
        pos = 4
        if cls.__header_schema__ is ResponseHeaderV1:
            _h, n = entity_reader(ResponseHeaderV1)(frame, 0)
            pos = n
        body, _m = entity_reader(cls)(frame, pos)
        return body

    def call(self, api_key: int, version: int, body):
        self.send(api_key, version, body)
        return self.recv()

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (reads until EOF)."""
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


__all__ = ["Wire", "make_batch", "request_frame", "RequestHeaderV1", "RequestHeaderV2"]
