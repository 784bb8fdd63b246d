"""A small blocking Kafka protocol client: one TCP connection, one request at a time,
``kio`` as the codec. What a follower needs to talk to a leader (``fslog serve`` or a
Kafka broker): ApiVersions, Metadata, ListOffsets, Fetch, OffsetForLeaderEpoch,
DescribeConfigs, ListGroups, OffsetFetch; TLS and SASL as a client (``ClientSecurity``).

``Connection(host, port, security).request(req)`` sends a kio request object (its class
says the API key and version) and returns the kio response object. The follower's Fetch
v12 is encoded and its response parsed here, not by kio (``fetch_request_v12``,
``Connection.fetch_v12``): the records come as views into the received buffer, never
copied. Frames: a 4-byte
big-endian size and the bytes; the request header is v1 or v2 (flexible) as the request
class says, the response header v0 or v1 likewise. A new connection does, in Kafka's
order: TLS (when asked), ApiVersions (``apis``: the keys the server answers, with their
highest version), then SaslHandshake v1 and SaslAuthenticate v2 (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512 — the SCRAM exchange is ``scramp``'s). Not thread-safe: one connection per
thread.
"""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.index import load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer

from ..errors import FslogError, LeaderUnavailableError
from ..records.batch import uvarint
from .security import PLAINTEXT, ClientSecurity

_SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hhih")  # request header v2: api key, version, correlation id, client id length
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


_responses: dict[tuple[int, int], Any] = {}


def _response_class(api_key: int, version: int) -> type[Any]:
    """kio's response class of (api key, version): its ``__header_schema__`` says the
    response header's version."""
    cls = _responses.get((api_key, version))
    if cls is None:
        cls = _responses[(api_key, version)] = load_response_schema(api_key, version)
    return cls


_FETCH = 1
_FETCH_HEAD = struct.Struct(">iiiibii")  # replica id, max wait, min bytes, max bytes,
#                                          isolation level, session id, session epoch
_FETCH_PART = struct.Struct(">iiqiqi")   # partition, current leader epoch, fetch offset,
#                                          last fetched epoch, log start offset, max bytes


def fetch_request_v12(replica_id: int, max_wait_ms: int, min_bytes: int,
                      wants: dict[str, list[tuple[int, int, int]]]) -> bytes:
    """A FetchRequest v12 body, encoded here rather than by kio (which takes ten times
    longer to build the objects than the round trip to a leader on loopback): for each
    topic, (partition, fetch offset, partition max bytes). No fetch session (id 0,
    epoch -1: a full request), no leader epochs (-1), no rack. Kafka's layout::

        replica_id int32, max_wait_ms int32, min_bytes int32, max_bytes int32,
        isolation_level int8, session_id int32, session_epoch int32,
        topics: [topic string, partitions: [partition int32, current_leader_epoch int32,
                 fetch_offset int64, last_fetched_epoch int32, log_start_offset int64,
                 partition_max_bytes int32, tagged fields], tagged fields],
        forgotten_topics_data: [], rack_id string, tagged fields

    (flexible: arrays and strings have uvarint lengths + 1)."""
    out = bytearray(_FETCH_HEAD.pack(replica_id, max_wait_ms, min_bytes, 0x7FFFFFFF, 0, 0, -1))
    out += uvarint(len(wants) + 1)
    for topic, parts in wants.items():
        name = topic.encode()
        out += uvarint(len(name) + 1) + name + uvarint(len(parts) + 1)
        for p, offset, max_bytes in parts:
            out += _FETCH_PART.pack(p, -1, offset, -1, -1, max_bytes) + b"\0"
        out += b"\0"
    out += b"\x01\x01\0"  # no forgotten topics, rack id "", no tagged fields
    return bytes(out)


class FetchPartition:
    """One partition of a FetchResponse: ``records`` a read-only view into the response
    (no copy), None when the broker sent none."""
    __slots__ = ("partition_index", "error_code", "high_watermark", "log_start_offset",
                 "records")

    def __init__(self, partition_index: int, error_code: int, high_watermark: int,
                 log_start_offset: int, records: memoryview | None):
        self.partition_index = partition_index
        self.error_code = error_code
        self.high_watermark = high_watermark
        self.log_start_offset = log_start_offset
        self.records = records


class FetchTopic:
    __slots__ = ("topic", "partitions")

    def __init__(self, topic: str, partitions: list[FetchPartition]):
        self.topic = topic
        self.partitions = partitions


class FetchResponse:
    __slots__ = ("error_code", "responses")

    def __init__(self, error_code: int, responses: list[FetchTopic]):
        self.error_code = error_code
        self.responses = responses


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_FETCH_TOP = struct.Struct(">ihi")       # throttle_time_ms, error_code, session_id
_FETCH_PART_HEAD = struct.Struct(">ihqqq")  # partition, error, high watermark,
#                                             last stable offset, log start offset
_ABORTED = 16  # producer_id int64, first_offset int64 (then tagged fields)


def _read_uvarint(buf, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _skip_tagged(buf, pos: int) -> int:
    count, pos = _read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = _read_uvarint(buf, pos)
        size, pos = _read_uvarint(buf, pos)
        pos += size
    return pos


def parse_fetch_response_v12(frame: memoryview, pos: int) -> FetchResponse:
    """A FetchResponse v12 body from ``pos`` of ``frame`` (after the response header),
    parsed here rather than by kio, which copies every partition's records into new
    bytes (a follower's 8 MiB at a time): each ``records`` is a view into ``frame``.
    Kafka's layout (flexible: compact arrays, strings and bytes have uvarint lengths + 1,
    0 for null; every struct ends with tagged fields, skipped here)::

        throttle_time_ms int32, error_code int16, session_id int32,
        responses: [topic string,
                    partitions: [partition_index int32, error_code int16,
                                 high_watermark int64, last_stable_offset int64,
                                 log_start_offset int64,
                                 aborted_transactions nullable [producer_id int64,
                                                                first_offset int64, tags],
                                 preferred_read_replica int32, records nullable bytes,
                                 tags (diverging_epoch, current_leader, snapshot_id)],
                    tags],
        tags

    A frame that ends early or holds a length past its end is ``FslogError``."""
    try:
        _throttle, error, _session = _FETCH_TOP.unpack_from(frame, pos)
        pos += _FETCH_TOP.size
        topics = []
        n, pos = _read_uvarint(frame, pos)
        for _ in range(n - 1):
            size, pos = _read_uvarint(frame, pos)
            name = bytes(frame[pos:pos + size - 1]).decode()
            pos += size - 1
            parts = []
            m, pos = _read_uvarint(frame, pos)
            for _ in range(m - 1):
                index, code, hw, _lso, start = _FETCH_PART_HEAD.unpack_from(frame, pos)
                pos += _FETCH_PART_HEAD.size
                aborted, pos = _read_uvarint(frame, pos)
                for _ in range(aborted - 1):
                    pos = _skip_tagged(frame, pos + _ABORTED)
                pos += 4  # preferred_read_replica
                size, pos = _read_uvarint(frame, pos)
                records = None
                if size:
                    if pos + size - 1 > len(frame):
                        raise ValueError(f"records of {size - 1} bytes past the frame's end")
                    records = frame[pos:pos + size - 1]
                    pos += size - 1
                pos = _skip_tagged(frame, pos)
                parts.append(FetchPartition(index, code, hw, start, records))
            pos = _skip_tagged(frame, pos)
            topics.append(FetchTopic(name, parts))
        _skip_tagged(frame, pos)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as e:
        raise FslogError(f"a FetchResponse v12 that does not parse ({e})") from None
    return FetchResponse(error, topics)


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise FslogError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class Connection:
    def __init__(self, host: str, port: int, client_id: str = "fslog-replicate",
                 timeout: float = 60.0, security: ClientSecurity = PLAINTEXT):
        self.address = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise LeaderUnavailableError(f"cannot connect to {self.address}: {e.strerror or e}; "
                                         f"is 'fslog serve' (or a Kafka broker) running there?"
                                         ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = sock
        self.client_id = client_id
        self._correlation = 0
        self.apis: dict[int, int] = {}
        try:
            if security.tls:
                self._start_tls(host, security)
            self.apis = self._api_versions()
            if security.sasl_mechanism:
                self._authenticate(security)
        except BaseException:
            self.close()
            raise

    def _start_tls(self, host: str, security: ClientSecurity) -> None:
        import ssl
        ctx = security.ssl_context()
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            raise FslogError(f"{self.address}: the server's certificate is not trusted "
                             f"({e.verify_message}); give its CA with --tls-ca") from None
        except (OSError, ssl.SSLError) as e:
            raise LeaderUnavailableError(f"{self.address}: TLS handshake failed "
                                         f"({getattr(e, 'strerror', None) or e}); does the "
                                         f"server speak TLS?") from None

    def _api_versions(self) -> dict[int, int]:
        from kio.schema.api_versions.v3.request import ApiVersionsRequest
        resp = self.request(ApiVersionsRequest(client_software_name="fslog",
                                               client_software_version="1"))
        return {int(a.api_key): int(a.max_version) for a in resp.api_keys}

    def _authenticate(self, security: ClientSecurity) -> None:
        from kio.schema.errors import ErrorCode
        from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
        from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
        mech = security.sasl_mechanism or ""
        resp = self.request(SaslHandshakeRequest(mechanism=mech))
        if resp.error_code != ErrorCode.none:
            raise FslogError(f"{self.address}: SASL mechanism {mech} refused "
                             f"({resp.error_code.name}); the server offers "
                             f"{', '.join(resp.mechanisms) or 'none'}")
        user, password = security.sasl_username or "", security.sasl_password or ""

        def step(token: bytes) -> bytes:
            r = self.request(SaslAuthenticateRequest(auth_bytes=token))
            if r.error_code != ErrorCode.none:
                raise FslogError(f"{self.address}: SASL {mech} login as {user!r} failed: "
                                 f"{r.error_message or r.error_code.name}")
            return bytes(r.auth_bytes)
        if mech == "PLAIN":
            step(b"\0" + user.encode() + b"\0" + password.encode())
            return
        from scramp import ScramClient, ScramException
        client = ScramClient([mech], user, password)
        try:
            client.set_server_first(step(client.get_client_first().encode()).decode())
            client.set_server_final(step(client.get_client_final().encode()).decode())
        except ScramException as e:
            raise FslogError(f"{self.address}: SASL {mech} login as {user!r} failed: {e}") from None

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
        return self._exchange(data, cid, cls.__api_key__, cls.__version__)

    def request_encoded(self, api_key: int, version: int, body: bytes):
        """Send a request whose body was encoded by the caller (request header v2: a
        flexible version); return the kio response object."""
        return self._exchange(self._frame(api_key, version, body), self._correlation,
                              api_key, version)

    def fetch_v12(self, body: bytes) -> FetchResponse:
        """Send a Fetch v12 whose body was encoded by the caller (``fetch_request_v12``);
        return the response as ``parse_fetch_response_v12`` reads it (records as views
        into the received buffer)."""
        frame = self._receive(self._frame(_FETCH, 12, body))
        if len(frame) < 5 or _I32.unpack_from(frame, 0)[0] != self._correlation:
            raise FslogError(f"{self.address}: a Fetch answered out of order")
        try:
            pos = _skip_tagged(frame, 4)  # response header v1: correlation id, tags
        except (IndexError, ValueError):
            raise FslogError(f"{self.address}: a Fetch response header that does not parse") from None
        return parse_fetch_response_v12(frame, pos)

    def _frame(self, api_key: int, version: int, body: bytes) -> bytes:
        self._correlation += 1
        client = self.client_id.encode()
        head = _HEAD.pack(api_key, version, self._correlation, len(client)) + client + b"\0"
        return _SIZE.pack(len(head) + len(body)) + head + body

    def _receive(self, data) -> memoryview:
        """Send ``data`` (a whole request frame); return the response frame."""
        try:
            self.sock.sendall(data)
            del data
            size = _SIZE.unpack(self._read(4))[0]
            if not 0 < size <= MAX_RESPONSE:
                raise FslogError(f"{self.address}: response of {size} bytes: not a Kafka broker?")
            return self._read(size)
        except OSError as e:  # ssl.SSLError too
            raise LeaderUnavailableError(
                f"{self.address}: connection lost ({getattr(e, 'strerror', None) or e})") from None

    def _exchange(self, data, cid: int, api_key: int, version: int):
        frame = self._receive(data)
        resp_cls = _response_class(api_key, version)
        hdr = ResponseHeaderV1 if resp_cls.__header_schema__ is ResponseHeaderV1 else ResponseHeaderV0
        h, n = _reader(hdr)(frame, 0)
        if h.correlation_id != cid:
            raise FslogError(f"{self.address}: answer to request {h.correlation_id}, "
                             f"expected {cid}")
        body, _m = _reader(resp_cls)(frame, n)
        return body

    def _read(self, n: int) -> memoryview:
        """``n`` bytes, received into one buffer (no copies), read-only as kio wants."""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], min(n - got, 1 << 22))
            if not k:
                raise ConnectionResetError(0, "closed by the server")
            got += k
        return view.toreadonly()

    def shutdown(self) -> None:
        """End the connection under a request another thread waits on (it fails)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
