"""``fslog mirror TOPIC... --to BOOTSTRAP``: push local topics into a Kafka cluster."""

from __future__ import annotations

import threading
from typing import List

from . import client_security as cs
from .params import Argument, Context, Option

HELP = """Copy local topics into a Kafka cluster (or an 'fslog serve'), as MirrorMaker
does: keys, values, headers and timestamps kept; the same partition when both sides have
as many (a missing remote topic is created so), else the partition murmur2 of the key
picks. An idempotent librdkafka producer with acks=all. Progress is the committed offsets
of a local group (--group): a rerun goes on where the last one stopped, and after a kill
it skips what had already arrived (same partition counts: nothing twice).

Examples:

  fslog mirror orders users --to kafka1:9092,kafka2:9092

  fslog mirror orders --to kafka1:9092 --follow          # keep mirroring new records

  fslog mirror orders --to kafka1:9093 --tls-ca ca.pem --sasl-mechanism SCRAM-SHA-512 \\
      --sasl-username bob --sasl-password-file pw
"""


def mirror(
    ctx: Context,
    topics: List[str] = Argument(..., metavar="TOPIC...", help="Local topics to mirror."),
    to: str = Option(..., "--to", metavar="BOOTSTRAP",
                           help="The Kafka cluster's bootstrap servers (HOST:PORT[,...])."),
    group: str = Option("fslog-mirror", "--group", metavar="GROUP",
                              help="The local group that keeps the progress."),
    follow: bool = Option(False, "--follow", help="Keep mirroring new records until stopped."),
    json_: bool = Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = Option(False, "--quiet", "-q", help="No summary on stderr."),
    tls: bool = cs.TLS,
    tls_ca: str = cs.TLS_CA,
    sasl_mechanism: str = cs.SASL_MECHANISM,
    sasl_username: str = cs.SASL_USERNAME,
    sasl_password_file: str = cs.SASL_PASSWORD_FILE,
) -> None:
    import signal

    from ..replication.mirror import Mirror
    from .common import open_log
    from .output import err, print_json

    security = cs.client_security(tls, tls_ca, sasl_mechanism, sasl_username,
                                  sasl_password_file)
    log = open_log(ctx, topics=topics, groups=[group])
    say = (lambda m: None) if quiet else err
    m = Mirror(log, list(topics), to, group=group, security=security,
               on_event=lambda ev: say(ev.get("message") or
                                       f"created {ev['topic']} ({ev['partitions']} partitions) on {to}"))
    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *a: stop.set())
    m.start()
    try:
        summary = m.run(stop, follow=follow)
    finally:
        signal.signal(signal.SIGTERM, old)
        m.close()
    say(f"{summary['records_sent']} records sent to {to}"
        + (f" ({summary['records_skipped_as_delivered']} already there from a run cut short)"
           if summary["records_skipped_as_delivered"] else ""))
    if json_:
        print_json(summary)
