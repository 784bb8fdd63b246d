"""A small blocking Kafka protocol client: one TCP connection, one request at a time,
``kio`` as the codec. What a follower needs to talk to a leader (``fslog serve``):
Metadata, ListOffsets, Fetch with a replica id, OffsetForLeaderEpoch, DescribeConfigs.

``Connection(host, port).request(req)`` sends a kio request object (its class says the API
key and version) and returns the kio response object. Frames: a 4-byte big-endian size
and the bytes; the request header is v1 or v2 (flexible) as the request class says, the
response header v0 or v1 likewise. Not thread-safe: one connection per thread.
"""

from __future__ import annotations

import io
import socket
import struct

from kio.index import load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer

from ..errors import FslogError, LeaderUnavailableError

_SIZE = struct.Struct(">i")
MAX_RESPONSE = 1 << 30

_writers: dict[type, object] = {}
_readers: dict[type, object] = {}


def _writer(cls):
    w = _writers.get(cls)
    if w is None:
        w = _writers[cls] = entity_writer(cls)
    return w


def _reader(cls):
    r = _readers.get(cls)
    if r is None:
        r = _readers[cls] = entity_reader(cls)
    return r


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise FslogError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class Connection:
    def __init__(self, host: str, port: int, client_id: str = "fslog-replicate",
                 timeout: float = 60.0):
        self.address = f"{host}:{port}"
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise LeaderUnavailableError(f"cannot connect to {self.address}: {e.strerror or e}; "
                                         f"is 'fslog serve' running there?") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self._correlation = 0

    def request(self, req):
        cls = type(req)
        self._correlation += 1
        cid = self._correlation
        header_cls = cls.__header_schema__
        buf = io.BytesIO()
        buf.write(b"\0\0\0\0")
        hdr_kw = dict(request_api_key=cls.__api_key__, request_api_version=cls.__version__,
                      correlation_id=cid, client_id=self.client_id)
        if header_cls is RequestHeaderV2:
            _writer(RequestHeaderV2)(buf, RequestHeaderV2(**hdr_kw))
        else:
            _writer(RequestHeaderV1)(buf, RequestHeaderV1(**hdr_kw))
        _writer(cls)(buf, req)
        data = buf.getbuffer()
        _SIZE.pack_into(data, 0, len(data) - 4)
        try:
            self.sock.sendall(data)
            del data
            size = _SIZE.unpack(self._read(4))[0]
            if not 0 < size <= MAX_RESPONSE:
                raise FslogError(f"{self.address}: response of {size} bytes: not a Kafka broker?")
            frame = self._read(size)
        except OSError as e:
            raise LeaderUnavailableError(
                f"{self.address}: connection lost ({e.strerror or e})") from None
        resp_cls = load_response_schema(cls.__api_key__, cls.__version__)
        hdr = ResponseHeaderV1 if resp_cls.__header_schema__ is ResponseHeaderV1 else ResponseHeaderV0
        h, n = _reader(hdr)(frame, 0)
        if h.correlation_id != cid:
            raise FslogError(f"{self.address}: answer to request {h.correlation_id}, "
                             f"expected {cid}")
        body, _m = _reader(resp_cls)(frame, n)
        return body

    def _read(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            got = self.sock.recv(min(n - len(chunks), 1 << 20))
            if not got:
                raise ConnectionResetError(0, "closed by the server")
            chunks += got
        return bytes(chunks)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
