"""Output formats (fslog/cli/formats.py): the plain-batch JSON path gives exactly what
json_line gives record by record; the JSON writer keeps --max-messages and stop offsets."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

import fslog
from fslog.cli.consume import _record_writer
from fslog.cli.formats import json_line, json_lines_keyed, json_lines_plain
from fslog.records import batch as rb

VALUES = [b"plain", b"", b'quote " and \\ backslash', "non-ASCII é ✓ 𝄞".encode(),
          b"control \x00 \x01 \x1f \n \t", b"%d %s %%", "\ufffe \uffff".encode()] * 10


def test_json_lines_plain_is_json_line_per_record():
    for topic in ("t", "a%d.b", "x_y-z"):
        want = b"".join(json_line(topic, 3, rb.Record(100 + i, 1234, None, v, ()))
                        for i, v in enumerate(VALUES))
        assert json_lines_plain(topic, 3, 100, 1234, VALUES) == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=12) | st.text(max_size=8).map(str.encode),
                          st.binary(max_size=30) | st.text(max_size=30).map(str.encode)),
                min_size=1, max_size=30))
def test_json_lines_keyed_is_json_line_per_record(recs):
    keys = [k for k, _ in recs]
    values = [v for _, v in recs]
    got = json_lines_keyed("t%", 2, 7, 99, keys, values)
    lines = [json_line("t%", 2, rb.Record(7 + i, 99, k, v, ())) for i, (k, v) in enumerate(recs)]
    if got is None:  # only when something is not UTF-8 (then record by record)
        assert any(b"_encoding" in x for x in lines)
    else:
        assert got == b"".join(lines)


def test_json_lines_keyed_takes_both_paths():
    keys = [b"k1", b'quo"te', "é".encode()] * 5
    for values in (VALUES, [b'{"a":1}', b"x"] * 9):  # with escapes, and without
        want = b"".join(json_line("t", 0, rb.Record(i, 5, keys[i % 15], v, ()))
                        for i, v in enumerate(values))
        assert json_lines_keyed("t", 0, 0, 5, [keys[i % 15] for i in range(len(values))],
                                values) == want
    assert json_lines_keyed("t", 0, 0, 0, [b"k"], [b"\xff"]) is None
    assert json_lines_keyed("t", 0, 0, 0, [b"k", b"\xc3"], [b"a", b"\xa9"]) is None


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
