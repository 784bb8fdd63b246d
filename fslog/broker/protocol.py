"""Kafka's request and response framing, with ``kio`` as the codec.

A frame on the wire is a 4-byte big-endian size and that many bytes. A request frame
holds a request header (api key, api version, correlation id, client id; versions with
flexible encoding add tagged fields) and the body; a response frame holds a response
header (correlation id; plus tagged fields for flexible versions, except ApiVersions,
whose response header is always v0) and the body. ``kio`` knows, per API and version,
the classes of both and their header versions; this module only frames.

Pure functions; safe from any thread.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import sys
from typing import NamedTuple

from kio.index import load_request_schema, load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer

_SIZE = struct.Struct(">i")
_CORRELATION = struct.Struct(">i")
MIN_HEADER = 10  # api key, version, correlation id, client id length (v1 header)

_read_header_v1 = entity_reader(RequestHeaderV1)
_read_header_v2 = entity_reader(RequestHeaderV2)


class MalformedRequest(Exception):
    """A request frame that cannot be decoded; the message says what is wrong."""


class RequestHead(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def peek_head(frame: bytes) -> RequestHead:
    """The api key, version, correlation id and client id of a request frame: the part
    every header version shares (v1 is a prefix of v2), readable even when the version
    is one fslog does not handle."""
    if len(frame) < MIN_HEADER:
        raise MalformedRequest(f"request of {len(frame)} bytes is shorter than a header")
    try:
        h, _n = _read_header_v1(frame, 0)
    except Exception as e:  # kio raises DecodeError and, on short buffers, others
        raise MalformedRequest(f"unreadable request header ({type(e).__name__}: {e})") from None
    return RequestHead(h.request_api_key, h.request_api_version, h.correlation_id, h.client_id)


_READERS: dict[tuple[int, int], tuple] = {}


def _reader(api_key: int, version: int):
    got = _READERS.get((api_key, version))
    if got is None:
        cls = load_request_schema(api_key, version)
        header_reader = _read_header_v2 if cls.__header_schema__ is RequestHeaderV2 else _read_header_v1
        got = _READERS[(api_key, version)] = (header_reader, entity_reader(cls))
    return got


def decode_request(api_key: int, version: int, frame: bytes):
    """The kio request object of a frame whose (api key, version) fslog handles."""
    header_reader, body_reader = _reader(api_key, version)
    try:
        _h, n = header_reader(frame, 0)
        body, m = body_reader(frame, n)
    except Exception as e:
        raise MalformedRequest(f"malformed body ({type(e).__name__}: {e})") from None
    if n + m > len(frame):  # kio bounds-checks; belt and braces
        raise MalformedRequest("request body runs past its frame")
    return body


_WRITERS: dict[type, tuple] = {}


def _writer(cls: type):
    got = _WRITERS.get(cls)
    if got is None:
        header: type = cls.__header_schema__  # type: ignore[attr-defined]
        flexible_header = getattr(header, "__flexible__", False)
        got = _WRITERS[cls] = (flexible_header, entity_writer(cls))
    return got


def encode_response(correlation_id: int, response) -> bytes:
    """A whole response frame (size prefix included) for a kio response object."""
    flexible_header, write = _writer(type(response))
    buf = io.BytesIO()
    buf.write(b"\x00\x00\x00\x00")
    buf.write(_CORRELATION.pack(correlation_id))
    if flexible_header:
        buf.write(b"\x00")  # no tagged fields
    write(buf, response)
    out = buf.getbuffer()
    _SIZE.pack_into(out, 0, len(out) - 4)
    del out
    return buf.getvalue()


def frame_raw(correlation_id: int, body: bytes, flexible_header: bool) -> bytes:
    """A response frame around a body encoded by hand (the Fetch fast path)."""
    head = _CORRELATION.pack(correlation_id) + (b"\x00" if flexible_header else b"")
    return _SIZE.pack(len(head) + len(body)) + head + body


_RESPONSE_CLASSES: dict[tuple[int, int], type] = {}


def response_class(api_key: int, version: int) -> type:
    got = _RESPONSE_CLASSES.get((api_key, version))
    if got is None:  # kio resolves a module by name on each call: once per version here
        got = _RESPONSE_CLASSES[(api_key, version)] = load_response_schema(api_key, version)
    return got


def request_class(api_key: int, version: int) -> type:
    return load_request_schema(api_key, version)


_FIELDS: dict[type, frozenset] = {}


def build(cls: type, **values):
    """An instance of the kio class ``cls`` from ``values``, leaving out the fields this
    version does not have: one handler fills every version of its API."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return cls(**{k: v for k, v in values.items() if k in names})


_NESTED: dict[tuple[type, str], type] = {}


def nested(cls: type, name: str) -> type:
    """The class ``name`` defined beside the kio class ``cls`` (same API and version)."""
    got = _NESTED.get((cls, name))
    if got is None:
        got = _NESTED[(cls, name)] = getattr(sys.modules[cls.__module__], name)
    return got


def has_field(cls: type, name: str) -> bool:
    build_names = _FIELDS.get(cls)
    if build_names is None:
        build_names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return name in build_names
