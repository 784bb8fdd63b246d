"""Output formats (fslog/cli/formats.py): the plain-batch JSON path gives exactly what
json_line gives record by record; the JSON writer keeps --max-messages and stop offsets."""

from __future__ import annotations

import io

import fslog
from fslog.cli.consume import _record_writer
from fslog.cli.formats import json_line, json_lines_plain
from fslog.records import batch as rb

VALUES = [b"plain", b"", b'quote " and \\ backslash', "non-ASCII é ✓ 𝄞".encode(),
          b"control \x00 \x01 \x1f \n \t", b"%d %s %%", "\ufffe \uffff".encode()] * 10


def test_json_lines_plain_is_json_line_per_record():
    for topic in ("t", "a%d.b", "x_y-z"):
        want = b"".join(json_line(topic, 3, rb.Record(100 + i, 1234, None, v, ()))
                        for i, v in enumerate(VALUES))
        assert json_lines_plain(topic, 3, 100, 1234, VALUES) == want


def test_json_lines_plain_declines_bytes_that_are_not_utf8():
    assert json_lines_plain("t", 0, 0, 0, [b"ok", b"\xff\xfe"]) is None
    assert json_lines_plain("t", 0, 0, 0, [b"\xed\xa0\x80"]) is None  # a surrogate


def test_json_writer_keeps_limits(tmp_path):
    log = fslog.Log(str(tmp_path))
    with log.producer("t") as p:
        p.send_values(VALUES, timestamp=5)
        p.send_values([b"\xff bad utf-8"] + VALUES, timestamp=6)
    batches = log.reader("t").fetch()
    assert len(batches) == 2 and batches[0].plain_values() is not None
    write = _record_writer(json_line)
    n = len(VALUES)
    every = [json_line("t", 0, r) for b in batches for r in b.records()]
    for stop, remaining in ((None, None), (None, 7), (n, None), (n + 5, None), (n + 5, 3),
                            (None, 0)):
        out = io.BytesIO()
        written = []
        left = remaining
        for b in batches:
            left, nxt = write(out, "t", b, stop, left)
            written.append(nxt)
        k = min(x for x in (2 * n + 1, stop, remaining) if x is not None)
        assert out.getvalue() == b"".join(every[:k]), (stop, remaining)
        assert left == (None if remaining is None else remaining - min(k, remaining))
        if remaining is None:
            assert written == [min(n, stop or n), min(2 * n + 1, stop or 2 * n + 1)]
