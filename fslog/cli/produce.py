"""``fslog produce TOPIC``: stdin lines → records."""

from __future__ import annotations

import gc
import signal
import sys
from typing import List, Optional

from .params import Argument, Context, Option

HELP = """Append stdin to a topic, one record per line (the newline stripped, bytes kept:
a carriage return before it stays in the record; strip CRLF input with tr -d '\\r').

Exits 0 once every line read is on disk (fsynced); SIGINT or SIGTERM ends it the same
way for the complete lines read so far. A topic that does not exist is
created. Keyed records land in the partition Kafka's clients would pick.

Examples:

  fslog produce orders < events.jsonl

  tail -F app.log | fslog produce logs

  fslog produce orders --format json --key-field user_id < orders.jsonl

  fslog produce logs --compression zstd < app.log
"""


def _parse_headers(items: list[str]) -> list[tuple[str, bytes]]:
    from ..errors import FslogError, UsageError
    out = []
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"--header {item!r}: expected KEY=VALUE")
        try:
            k.encode("utf-8")
        except UnicodeEncodeError:
            raise FslogError(f"--header {item.encode('utf-8', 'surrogateescape')!r}: a header key "
                             f"must be valid UTF-8 (Kafka header keys are strings)") from None
        out.append((k, v.encode("utf-8", "surrogateescape")))
    return out


def produce(
    ctx: Context,
    topic: str = Argument(..., help="Topic to append to (created if missing)."),
    fmt: str = Option("raw", "--format", "-f", help="raw: any bytes per line; json: each line must be a JSON document."),
    key_field: Optional[str] = Option(None, "--key-field", "-k", metavar="FIELD",
                                            help="With --format json: take the key from this top-level field."),
    key_separator: Optional[str] = Option(None, "--key-separator", "-K", metavar="SEP",
                                                help="Lines are KEY SEP VALUE (kafka-console-producer's parse.key)."),
    partition: Optional[int] = Option(None, "--partition", "-p", min=0, help="Write every record to this partition."),
    header: Optional[List[str]] = Option(None, "--header", "-H", metavar="K=V", help="Add a header to every record (repeatable)."),
    skip_invalid: bool = Option(False, "--skip-invalid", help="Skip bad lines (reported on stderr) instead of stopping."),
    null_marker: Optional[str] = Option(None, "--null-marker", metavar="STR", help="A value equal to STR is written as null (a tombstone)."),
    partitions: Optional[int] = Option(None, "--partitions", min=1, help="Partitions of the topic if this creates it [default: 1, or $FSLOG_DEFAULT_PARTITIONS]."),
    compression: Optional[str] = Option(None, "--compression", metavar="CODEC",
                                              help="Compress batches: none, gzip, snappy, lz4 or zstd (Kafka's codecs; any Kafka client reads them). A topic whose compression.type names a codec gets that codec instead. [default: none]"),
    linger_ms: float = Option(5.0, "--linger-ms", min=0, help="While input keeps coming, append at least this often; records are appended at once when the input pauses."),
    json_: bool = Option(False, "--json", help="Print a JSON summary (records, bytes, offsets per partition) to stdout."),
    quiet: bool = Option(False, "--quiet", "-q", help="No progress bar or summary on stderr (shown only on a terminal anyway)."),
) -> None:
    from ..clients.ingest import LineIngester
    from ..errors import UsageError
    from .common import open_log
    from .output import err, print_json

    if fmt not in ("raw", "json"):
        raise UsageError(f"--format {fmt!r}: use raw or json")
    if key_field is not None and fmt != "json":
        raise UsageError("--key-field needs --format json")
    if key_separator == "":
        raise UsageError("--key-separator must not be empty")
    if compression is not None and compression not in ("none", "gzip", "snappy", "lz4", "zstd"):
        raise UsageError(f"--compression {compression!r}: use none, gzip, snappy, lz4 or zstd")
    log = open_log(ctx, topics=[topic])
    producer = log.producer(topic, partitions=partitions, background=False, linger_ms=linger_ms,
                            compression=compression)
    if producer.created:
        if not quiet:
            err(f"created topic {topic!r} with {producer.topic.partition_count} partition"
                f"{'s' if producer.topic.partition_count != 1 else ''}")
    elif partitions is not None and partitions != producer.topic.partition_count:
        err(f"topic {topic!r} exists with {producer.topic.partition_count} partitions: "
            f"--partitions {partitions} applies only to a topic that producing creates")
    if partition is not None:
        producer.topic.check_partition(partition, f"--partition {partition}")
    from ..storage.cleaner import background_failures, describe_failure
    for number, failure in background_failures(producer.topic):
        err(f"warning: {describe_failure(topic, number, failure)}")  # once a run
    ing = LineIngester(
        producer, fmt=fmt, key_field=key_field,
        key_separator=key_separator.encode("utf-8", "surrogateescape") if key_separator is not None else None,
        partition=partition, headers=_parse_headers(header or []), skip_invalid=skip_invalid,
        null_marker=null_marker.encode("utf-8", "surrogateescape") if null_marker is not None else None,
        linger_ms=linger_ms)

    def _on_signal(signum, frame):
        ing.stop()
        if ing.waiting:  # blocked on stdin: unblock; otherwise the loop stops by itself
            raise _Stopped()

    from .progress import file_progress
    progress = file_progress(sys.stdin.fileno(), ing, enabled=not quiet)
    # What start-up made lives to the end: frozen, no collection traverses it again. The
    # ingester holds a chunk of records (thousands of tuples, lists) at a time: collected
    # every 700 new objects, the young generation would be traversed a dozen times a
    # chunk (a sixth of keyed produce's time); every 50,000, about once.
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    old_int = signal.signal(signal.SIGINT, _on_signal)
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    try:
        try:
            with progress:  # a bar on stderr when reading a regular file on a terminal
                ing.run(sys.stdin.fileno())
        except _Stopped:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            producer.flush()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        for r in producer.repairs:
            err(f"{r['topic']}/{r['partition']}: truncated {r['bytes']} bytes at position "
                f"{r['position']} of {r['path']} (from offset {r['offset']}): the tail of a write "
                f"cut short by a crash, or a damaged last batch; appending went on after it")
        for line, reason in ing.skipped[:1000]:
            err(f"skipped line {line}: {reason}")
        if len(ing.skipped) > 1000:
            err(f"... and {len(ing.skipped) - 1000} more skipped lines")
    producer.close()
    for part, e in producer.clean_errors:
        err(f"{topic}/{part}: the clean after a segment roll failed ({e}); the records are "
            f"appended all the same: run 'fslog clean {topic}' to retry it")
    stats = producer.stats
    summary = {
        "topic": topic,
        "records": sum(s.records for s in stats.values()),
        "bytes": sum(s.bytes for s in stats.values()),
        "partitions": [dict(partition=p, **stats[p].as_dict()) for p in sorted(stats)],
        "skipped_lines": [line for line, _ in ing.skipped],
    }
    if json_:
        print_json(summary)
    elif not quiet and sys.stderr.isatty():
        err(f"produced {summary['records']} records ({summary['bytes']} bytes) to {topic!r}")


class _Stopped(Exception):
    pass
