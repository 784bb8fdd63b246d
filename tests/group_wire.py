"""A tiny Kafka wire client for tests that need exact requests (versions, error codes),
built on ``kio``'s own classes: ``WireClient(port).call(api_key, version, **fields)``
returns the decoded response. Blocking, one request at a time (``send``/``receive``
split it, for requests that wait, like JoinGroup); 127.0.0.1 only.
"""

from __future__ import annotations

import io
import socket
import struct
import sys

from kio.index import load_request_schema, load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer


def nested(cls, name):
    return getattr(sys.modules[cls.__module__], name)


class WireClient:
    def __init__(self, port: int, client_id: str = "wire-test", timeout: float = 30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.client_id = client_id
        self.correlation = 0
        self.sent: dict[int, tuple[int, int]] = {}

    def close(self) -> None:
        self.sock.close()

    def request(self, api_key: int, version: int, **fields):
        cls = load_request_schema(api_key, version)
        return cls, cls(**fields)

    def send(self, api_key: int, version: int, body) -> int:
        cls = load_request_schema(api_key, version)
        self.correlation += 1
        buf = io.BytesIO()
        if cls.__header_schema__ is RequestHeaderV2:
            header = RequestHeaderV2(request_api_key=api_key, request_api_version=version,
                                     correlation_id=self.correlation, client_id=self.client_id)
            entity_writer(RequestHeaderV2)(buf, header)
        else:
            header = RequestHeaderV1(request_api_key=api_key, request_api_version=version,
                                     correlation_id=self.correlation, client_id=self.client_id)
            entity_writer(RequestHeaderV1)(buf, header)
        entity_writer(cls)(buf, body)
        data = buf.getvalue()
        self.sock.sendall(struct.pack(">i", len(data)) + data)
        self.sent[self.correlation] = (api_key, version)
        return self.correlation

    def _read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            out += chunk
        return bytes(out)

    def receive(self):
        (size,) = struct.unpack(">i", self._read_exactly(4))
        frame = self._read_exactly(size)
        (correlation,) = struct.unpack_from(">i", frame, 0)
        api_key, version = self.sent.pop(correlation)
        cls = load_response_schema(api_key, version)
        pos = 4
        if getattr(cls.__header_schema__, "__flexible__", False):
            pos += 1  # no tagged fields
        body, _n = entity_reader(cls)(frame, pos)
        return body

    def call(self, api_key: int, version: int, **fields):
        cls = load_request_schema(api_key, version)
        self.send(api_key, version, cls(**fields))
        return self.receive()
