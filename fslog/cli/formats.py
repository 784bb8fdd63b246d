"""Output formats of ``fslog consume``.

- raw (default): the value bytes and a newline; a null value is an empty line.
- json: one object per line: topic, partition, offset, timestamp (ms), key, value,
  headers ([{"key", "value"}], lossless and ready for jq's from_entries). Keys and
  values are text; bytes that are not UTF-8 are base64-encoded and flagged with
  "key_encoding"/"value_encoding": "base64" (headers: "encoding": "base64").
- a kcat-like template: %t topic, %p partition, %o offset, %k key, %s value, %S value
  size, %K key size, %T timestamp (ms), %h headers (k=v,...), %% a percent sign, and \\n,
  \\t, \\\\ escapes. A newline is added if the template has none.
"""

from __future__ import annotations

import base64
import json
import re

_enc = json.encoder.encode_basestring  # C-accelerated JSON string quoting (UTF-8 kept)
_JSON_LINE = '{"topic":%s,"partition":%d,"offset":%d,"timestamp":%d,"key":%s,"value":%s%s,"headers":[%s]}\n'


def _field(b: bytes | None) -> tuple[str, bool]:
    if b is None:
        return "null", False
    try:
        return _enc(b.decode("utf-8")), False
    except UnicodeDecodeError:
        return '"' + base64.b64encode(b).decode("ascii") + '"', True


def json_line(topic: str, partition: int, r) -> bytes:
    """One record as a line of JSON (the field order is part of the format)."""
    key, kb64 = _field(r.key)
    value, vb64 = _field(r.value)
    flags = ""
    if kb64:
        flags += ',"key_encoding":"base64"'
    if vb64:
        flags += ',"value_encoding":"base64"'
    hs = ""
    if r.headers:
        items = []
        for hk, hv in r.headers:
            t, b64 = _field(hv)
            items.append('{"key":%s,"value":%s%s}' % (_enc(hk), t, ',"encoding":"base64"' if b64 else ""))
        hs = ",".join(items)
    return (_JSON_LINE % (_enc(topic), partition, r.offset, r.timestamp, key, value, flags, hs)
            ).encode("utf-8", "surrogatepass")


def json_lines_plain(topic: str, partition: int, first_offset: int, timestamp: int,
                     values: list) -> bytes | None:
    """What ``json_line`` gives for each record of a plain batch (offsets from
    ``first_offset``, one timestamp, no key, no headers; see ``batch.decode_plain_values``),
    built in C rather than a call per record; None if a value is not UTF-8 (then go
    record by record)."""
    try:
        texts = list(map(_enc, map(bytes.decode, values)))
    except UnicodeDecodeError:
        return None
    fmt = ('{"topic":%s,"partition":%d,"offset":' % (_enc(topic), partition)).replace("%", "%%") \
        + '%d,"timestamp":' + str(timestamp) + ',"key":null,"value":%s,"headers":[]}\n'
    return "".join(map(fmt.__mod__, zip(range(first_offset, first_offset + len(values)), texts))
                   ).encode("utf-8", "surrogatepass")


# bytes a JSON string must escape other than '"' (encode_basestring's: control characters
# and the backslash)
_ESCAPED = bytes(range(0x20)) + b"\\"


def json_lines_keyed(topic: str, partition: int, first_offset: int, timestamp: int,
                     keys: list, values: list) -> bytes | None:
    """``json_lines_plain`` for a keyed batch (see ``batch.decode_keyed``: keys and
    values, no headers); None if a key or value is not UTF-8.

    When no key or value holds a control character or a backslash (JSON documents and
    ids, usually), the lines are assembled as bytes, a few C calls a batch: the keys (and
    the values) are joined by NUL bytes, counted to be the only bytes that need more
    escaping than '"', checked to be UTF-8 at once (NUL cannot continue a multi-byte
    sequence, so the whole is valid only if each one is), '"' -> '\\"' replaced in the
    whole, and split again."""
    n = len(values)
    kb = b"\x00".join(keys)
    vb = b"\x00".join(values)
    if len(kb) - len(kb.translate(None, _ESCAPED)) == n - 1 == \
            len(vb) - len(vb.translate(None, _ESCAPED)):
        try:
            kb.decode("utf-8")
            vb.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if b'"' in kb:
            keys = kb.replace(b'"', b'\\"').split(b"\x00")
        if b'"' in vb:
            values = vb.replace(b'"', b'\\"').split(b"\x00")
        head = ('{"topic":%s,"partition":%d,"offset":' % (_enc(topic), partition)).encode(
            "utf-8", "surrogatepass")
        parts = [head] * (7 * n)
        parts[1::7] = map(b"%d".__mod__, range(first_offset, first_offset + n))
        parts[2::7] = [b',"timestamp":%d,"key":"' % timestamp] * n
        parts[3::7] = keys
        parts[4::7] = [b'","value":"'] * n
        parts[5::7] = values
        parts[6::7] = [b'","headers":[]}\n'] * n
        return b"".join(parts)
    try:
        ktexts = map(_enc, map(bytes.decode, keys))
        vtexts = map(_enc, map(bytes.decode, values))
        fmt = ('{"topic":%s,"partition":%d,"offset":' % (_enc(topic), partition)).replace("%", "%%") \
            + '%d,"timestamp":' + str(timestamp) + ',"key":%s,"value":%s,"headers":[]}\n'
        return "".join(map(fmt.__mod__, zip(range(first_offset, first_offset + len(values)),
                                            ktexts, vtexts))).encode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


_TOKEN = re.compile(r"%[tpokKsSTh%]|\\[nt\\]")


class Template:
    def __init__(self, fmt: str):
        self.parts: list = []
        pos = 0
        for m in _TOKEN.finditer(fmt):
            if m.start() > pos:
                self.parts.append(fmt[pos:m.start()].encode("utf-8", "surrogateescape"))
            tok = m.group(0)
            lit = {"%%": b"%", "\\n": b"\n", "\\t": b"\t", "\\\\": b"\\"}.get(tok)
            self.parts.append(lit if lit is not None else tok[1])
            pos = m.end()
        if pos < len(fmt):
            self.parts.append(fmt[pos:].encode("utf-8", "surrogateescape"))
        # decided on the parsed template, not its text: in '%s\\' the backslash is
        # a literal one (or a lone one at the end), not the start of \n
        if not any(isinstance(p, bytes) and b"\n" in p for p in self.parts):
            self.parts.append(b"\n")

    def __call__(self, topic: str, partition: int, r) -> bytes:
        return self.render(topic, partition, r)

    def render(self, topic: str, partition: int, r) -> bytes:
        out = []
        for p in self.parts:
            if isinstance(p, bytes):
                out.append(p)
            elif p == "s":
                out.append(r.value if r.value is not None else b"")
            elif p == "k":
                out.append(r.key if r.key is not None else b"")
            elif p == "o":
                out.append(str(r.offset).encode())
            elif p == "p":
                out.append(str(partition).encode())
            elif p == "t":
                out.append(topic.encode())
            elif p == "T":
                out.append(str(r.timestamp).encode())
            elif p == "S":
                out.append(str(len(r.value) if r.value is not None else -1).encode())
            elif p == "K":
                out.append(str(len(r.key) if r.key is not None else -1).encode())
            elif p == "h":
                out.append(b",".join(k.encode() + b"=" + (v if v is not None else b"")
                                     for k, v in r.headers))
        return b"".join(out)
