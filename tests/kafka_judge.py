"""kafka-python as an independent judge of fslog's bytes on disk (test helper).

``kafka_records(data)`` parses ``data`` (one or more RecordBatch v2 batches, e.g. a whole
``.log`` file) with kafka-python's ``MemoryRecords``, checks every batch's CRC-32C, and
returns the records as plain tuples (offset, timestamp, key, value, headers) with headers
as a tuple of (str, bytes | None) — the same shape as fslog's ``Record``.
"""

from __future__ import annotations

from kafka.record.memory_records import MemoryRecords


def kafka_batches(data: bytes) -> list:
    """Every batch in ``data``; asserts each one's CRC and that no bytes are left over."""
    mr = MemoryRecords(bytes(data))
    out = []
    while True:
        batch = mr.next_batch()
        if batch is None:
            break
        assert batch.magic == 2, f"batch {len(out)} has magic {batch.magic}"
        assert batch.validate_crc(), f"kafka-python rejects the CRC of batch {len(out)}"
        out.append(batch)
    assert mr.valid_bytes() == len(data), "trailing bytes kafka-python cannot parse"
    return out


def kafka_records(data: bytes) -> list[tuple]:
    recs = []
    for batch in kafka_batches(data):
        for r in batch:
            recs.append((r.offset, r.timestamp, r.key, r.value,
                         tuple((k, v) for k, v in r.headers)))
    return recs
