"""Turning lines of bytes into records: what ``fslog produce`` does with its stdin.

``LineIngester`` reads a file descriptor in large chunks, splits lines, converts each line
into a record according to the options (raw value, JSON with a key field, ``key SEP value``)
and hands them to a ``Producer``. It numbers lines so that bad input is reported by line.

Timing, for a pipe that stays open (``tail -F app.log | fslog produce logs``): records are
appended as soon as the input pauses, and at the latest ``linger_ms`` after they arrived
while input keeps coming (so a fast stream still makes large batches); they are fsynced at
least every ``sync_interval`` seconds. At the end (EOF or ``stop()``) everything is appended and fsynced: the return of
``run()`` is the acknowledgement.

Bad input: with ``skip_invalid`` the line is skipped and its number recorded; otherwise
everything before it is appended and fsynced and ``InvalidInputError`` names the line.
"""

from __future__ import annotations

import json
import os
import select
import stat
import time
from collections import deque
from itertools import repeat
from operator import itemgetter

from ..errors import InvalidInputError, RecordTooLargeError
from ..records import batch as rb

CHUNK = 1 << 20
KEY_CACHE = 1 << 16  # distinct --key-field keys whose UTF-8 is kept

# JSON validation: orjson (strict RFC 8259: no NaN or Infinity, no numbers beyond a
# double) accepts a subset of what json.loads with the checks below accepts, so a line it
# takes is valid; what it refuses is decided (and its error worded) by the standard library.
# (orjson is imported by the ingester of JSON lines only: its import is about half of the
# start-up of a raw ``fslog produce``.)
_NOT_ORJSON = object()


def _consume(it) -> None:
    """Run an iterator to its end, keeping nothing (in C)."""
    deque(it, maxlen=0)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of the range of a JSON number")
    return value


def _json_type(doc) -> str:
    if doc is None:
        return "null"
    if isinstance(doc, bool):
        return "boolean"
    if isinstance(doc, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(doc), type(doc).__name__)


class LineIngester:
    def __init__(self, producer, *, fmt: str = "raw", key_field: str | None = None,
                 key_separator: bytes | None = None, partition: int | None = None,
                 headers: list[tuple[str, bytes]] | None = None, skip_invalid: bool = False,
                 null_marker: bytes | None = None, linger_ms: float = 5.0,
                 sync_interval: float = 1.0):
        self.producer = producer
        self.fmt = fmt
        self.key_field = key_field
        self.key_separator = key_separator
        self.partition = partition
        self.headers = headers or []
        self.skip_invalid = skip_invalid
        self.null_marker = null_marker
        self.linger = linger_ms / 1000.0
        self.sync_interval = sync_interval
        self.lines = 0          # lines read so far
        self.records = 0        # records handed to the producer
        self.skipped: list[tuple[int, str]] = []  # (line number, reason)
        self._stop = False
        self.waiting = False  # True while blocked in select/read (safe to interrupt)
        self.max_line = producer.topic.config.max_message_bytes
        # the longest value a keyless, headerless record can have
        self.max_value = self.max_line - rb.HEADER_SIZE
        while self.max_value > 0 and rb.value_batch_size(self.max_value) > self.max_line:
            self.max_value -= 1
        # Bytes read at a time. With --key-field, half the room of a batch: key and value
        # (a line, and a string in it) then stay within max.message.bytes by the chunk's
        # size alone, with no pass over the records to find the longest.
        self._chunk = CHUNK if key_field is None else \
            max(1 << 12, min(CHUNK, (self.max_line - rb.HEADER_SIZE - 64) // 2))
        self._simple = (fmt == "raw" and key_separator is None and not self.headers
                        and null_marker is None)
        # Lines converted a chunk at a time, the records handed over in bulk
        # (``send_keyed``/``send_values``); any chunk with a line the bulk path does not
        # take as it is (an error, a blank JSON line, a null marker, a number as the key)
        # goes line by line below, which decides and reports exactly as before.
        self._bulk = not self.headers and (key_separator is not None or fmt == "json")
        # --key-field: the UTF-8 of the key strings seen (bounded, emptied when full): a
        # key met again costs a lookup, and the same bytes object (its hash kept) goes on
        # to the partitioner's cache
        self._key_bytes: dict[str, bytes] = {}
        if fmt == "json":
            import orjson
            self._loads = orjson.loads
        if getattr(producer, "_needs_key", False) and key_field is None and key_separator is None:
            raise InvalidInputError(
                f"topic {producer.topic.name!r} is compacted (cleanup.policy="
                f"{producer.topic.config.get('cleanup.policy')}): every record needs a key; "
                f"give one with --key-field FIELD (JSON lines) or --key-separator SEP; nothing "
                f"was written")

    def stop(self) -> None:
        """Ask ``run`` to finish after the current chunk (from a signal handler; if the
        loop is blocked waiting for input, the handler should also raise to unblock it)."""
        self._stop = True

    # ------------------------------------------------------------ the loop
    def run(self, fd: int) -> None:
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        prod = self.producer
        partial = b""
        first_buffered = None
        while not self._stop:
            if not regular:
                timeout = None
                if prod.buffered:
                    timeout = 0.0  # append as soon as the input pauses: no idle waiting
                elif prod._dirty:
                    timeout = max(0.0, self.sync_interval - (time.monotonic() - prod._last_sync))
                if timeout is not None:
                    self.waiting = True
                    try:
                        ready = select.select([fd], [], [], timeout)[0]
                    finally:
                        self.waiting = False
                    if not ready:
                        if prod.buffered:
                            prod.drain()
                            first_buffered = None
                        prod.maybe_sync(self.sync_interval)
                        continue
            if self._stop:
                break
            self.waiting = True
            try:
                data = os.read(fd, self._chunk)
            finally:
                self.waiting = False
            if not data:
                break
            lines = data.split(b"\n")
            total = len(partial) + len(data)
            if partial:
                lines[0] = partial + lines[0]
            partial = lines.pop()
            # the bytes of the complete lines (no newlines): a bound on the longest one
            total -= len(lines) + len(partial)
            if len(partial) > self.max_line:
                self._fail(self.lines + 1 + len(lines),
                           f"line is longer than max.message.bytes={self.max_line} bytes",
                           pending=lines)
                # skipping: drop the rest of this over-long line
                partial = self._skip_long_line(fd)
                first_buffered = first_buffered or time.monotonic()
                continue
            if lines:
                if first_buffered is None:
                    first_buffered = time.monotonic()
                self._handle(lines, total)
            if not regular and prod.buffered and first_buffered is not None and \
                    time.monotonic() - first_buffered >= self.linger:
                prod.drain()
                first_buffered = None
            prod.maybe_sync(self.sync_interval)
        if partial and not self._stop:
            self._handle([partial])
        prod.flush()

    def _skip_long_line(self, fd: int) -> bytes:
        """Read and discard until the end of the current line; return what follows it."""
        while True:
            data = os.read(fd, CHUNK)
            if not data:
                return b""
            i = data.find(b"\n")
            if i >= 0:
                self.lines += 1
                rest = data[i + 1:]
                lines = rest.split(b"\n")
                partial = lines.pop()
                if lines:
                    self._handle(lines)
                return partial

    # ------------------------------------------------------------ conversion
    def _fail(self, line: int, reason: str, pending: list[bytes] | None = None) -> None:
        if self.skip_invalid:
            if pending:
                self._handle(pending)
            self.skipped.append((line, reason))
            return
        if pending:
            self._handle(pending)
        self.producer.flush()
        raise InvalidInputError(
            f"line {line}: {reason}; the {self.records} records before it are written and "
            f"durable, nothing after it was written (use --skip-invalid to skip bad lines)", line)

    def _handle(self, lines: list[bytes], total: int | None = None) -> None:
        """Convert and hand over ``lines``; ``total``, if given, is their length in bytes
        (so no line is longer: no pass over them to find the longest)."""
        if not lines:
            return
        prod = self.producer
        if self._simple:
            limit = self.max_value
            if max(map(len, lines)) > limit:
                for i, x in enumerate(lines):
                    if len(x) > limit:
                        good = lines[:i]
                        if good:
                            prod.send_values(good, self.partition)
                            self.records += len(good)
                            self.lines += len(good)
                        self.lines += 1
                        self._fail(self.lines, f"a record of {len(x)} bytes does not fit in "
                                   f"max.message.bytes={self.max_line} (with its batch header)")
                        self._handle(lines[i + 1:])
                        return
            prod.send_values(lines, self.partition)
            self.records += len(lines)
            self.lines += len(lines)
            return
        if self._bulk and self._handle_bulk(lines, total):
            return
        for line in lines:
            self.lines += 1
            got = self._convert(line)
            if got is None:
                continue
            key, value = got
            try:
                prod.send(value, key=key, headers=self.headers, partition=self.partition)
            except RecordTooLargeError as e:
                self._fail(self.lines, str(e))
                continue
            self.records += 1

    def _handle_bulk(self, lines: list[bytes], total: int | None = None) -> bool:
        """Convert and hand over a whole chunk of lines; False (nothing done) if any line
        needs the line-by-line path. ``total``: as for ``_handle``."""
        keys = None
        values = lines
        if self.key_separator is not None:
            split = list(map(bytes.partition, lines, repeat(self.key_separator)))
            if b"" in map(itemgetter(1), split):
                return False  # a line without the separator
            keys = list(map(itemgetter(0), split))
            values = list(map(itemgetter(2), split))
        if self.null_marker is not None and self.null_marker in values:
            return False
        if self.fmt == "json":
            # Each document is dropped as soon as it is parsed (and its key taken): a chunk
            # of parsed documents kept alive would cost the cyclic garbage collector more
            # than the parsing itself.
            if self.key_field is None:
                try:
                    _consume(map(self._loads, values))
                except ValueError:
                    return False  # invalid, or blank (skipped), or beyond orjson: line by line
            else:
                try:
                    keys = self._keys_of(values)
                except (ValueError, KeyError, TypeError, IndexError):
                    return False  # invalid or blank, not an object, the field missing or
                    # not a string: line by line
        try:
            if keys is None:
                if (total is None or total > self.max_value) and \
                        max(map(len, values)) > self.max_value:
                    return False
                self.producer.send_values(values, self.partition, longest=total)
            else:
                # a bound on key + value of every record: a line holds both (KEY SEP VALUE),
                # or is the value and holds the key (a JSON string's UTF-8 is no longer
                # than the string as written)
                longest = total
                if total is not None and self.key_separator is None:
                    longest = 2 * total  # (within the limit for chunks of ``_chunk`` bytes)
                self.producer.send_keyed(keys, values, self.partition, longest=longest)
        except RecordTooLargeError:  # (send_keyed refuses before it buffers anything)
            return False
        self.records += len(lines)
        self.lines += len(lines)
        return True

    def _keys_of(self, values: list[bytes]) -> list[bytes]:
        """The UTF-8 of field ``key_field`` of each JSON line. Raises ValueError,
        KeyError, TypeError or IndexError for a line the bulk path does not take."""
        strings = list(map(itemgetter(self.key_field), map(self._loads, values)))
        cache = self._key_bytes
        if len(strings) > 1:
            try:
                return list(itemgetter(*strings)(cache))  # (one call in C)
            except KeyError:
                pass
        new = set(strings).difference(cache)
        if len(new) + len(cache) > KEY_CACHE:
            cache.clear()
            if len(new) > KEY_CACHE:  # mostly distinct keys: no cache
                return list(map(str.encode, strings))
            new = set(strings)
        # str.encode refuses anything but a string (numbers as keys: stdlib json's
        # spelling, line by line); orjson never yields lone surrogates
        cache.update(zip(new, map(str.encode, new)))
        return [cache[s] for s in strings] if len(strings) < 2 else list(itemgetter(*strings)(cache))

    def _convert(self, line: bytes) -> tuple[bytes | None, bytes | None] | None:
        key = None
        value: bytes | None = line
        if self.key_separator is not None:
            i = line.find(self.key_separator)
            if i < 0:
                self._fail(self.lines, f"no key separator {self.key_separator.decode(errors='replace')!r} "
                           "in the line (expected KEY SEPARATOR VALUE)")
                return None
            key, value = line[:i], line[i + len(self.key_separator):]
        if self.fmt == "json":
            text = value.strip() if value is not None else b""
            if not text:
                return None  # blank lines are not records in JSON mode
            try:
                doc = self._loads(text)
            except ValueError:
                doc = _NOT_ORJSON
            if doc is _NOT_ORJSON or (self.key_field is not None and isinstance(doc, dict)
                                      and not isinstance(doc.get(self.key_field), str)):
                # what orjson refuses, and numbers as keys, as the standard library says
                try:
                    doc = json.loads(text, parse_constant=_no_constant,
                                     parse_float=_finite_float)
                except (ValueError, RecursionError) as e:
                    msg = getattr(e, "msg", str(e))
                    col = getattr(e, "colno", None)
                    self._fail(self.lines,
                               f"not valid JSON ({msg}{f' at column {col}' if col else ''})")
                    return None
            if self.key_field is not None:
                if not isinstance(doc, dict):
                    self._fail(self.lines, f"--key-field {self.key_field}: the line is a JSON "
                               f"{_json_type(doc)}, not an object")
                    return None
                if self.key_field not in doc:
                    self._fail(self.lines, f"--key-field {self.key_field}: the field is missing")
                    return None
                k = doc[self.key_field]
                if isinstance(k, str):
                    try:
                        key = k.encode("utf-8")
                    except UnicodeEncodeError:
                        self._fail(self.lines, f"--key-field {self.key_field}: the value is not "
                                   f"valid Unicode (a lone surrogate escape)")
                        return None
                elif isinstance(k, (int, float)) and not isinstance(k, bool):
                    key = json.dumps(k).encode()
                else:
                    self._fail(self.lines, f"--key-field {self.key_field}: the field is "
                               f"{json.dumps(k)[:40]}, not a string or number")
                    return None
        if self.null_marker is not None and value == self.null_marker:
            value = None
        return key, value
