"""``fslog replicate --from LEADER``: run a follower into this root; ``fslog promote``:
make a follower root the leader."""

from __future__ import annotations

import threading

from . import client_security as cs
from .params import Context, Option

HELP = """Keep this root (--root) a copy of a leader (another root, or an 'fslog serve' at
HOST:PORT, fetched from as Kafka's followers do, or a Kafka cluster's bootstrap servers,
copied as a plain consumer up to its high watermark): every batch byte for byte at the
same offset, segments rolled where the leader rolled them, new topics, topic configs and
deletions, the leader's log start offset (retention), its compaction, and the groups'
committed offsets. Runs until stopped (SIGTERM, Ctrl-C), woken by the leader's appends;
--once copies what the leader has now and exits.

What was copied is fsynced before the next fetch: a follower killed at any moment resumes
where its durable copy ends, with no gap and no duplicate. A log here that holds a tail the
leader never had (it was the leader before, and was replaced) is truncated to where the
two diverged (leader epochs), saying how many records went.

While it follows, this root refuses local producers; 'fslog promote' makes it the leader.

Examples:

  fslog --root /mnt/b/log replicate --from /mnt/a/log           # follow until stopped

  fslog --root /backup/log replicate --from /var/lib/log --once --json

  fslog --root /mnt/b/log replicate --from /mnt/a/log --topics 'orders|users\\..*'

  fslog --root /mnt/b/log replicate --from a.example:9093 --tls-ca ca.pem \\
      --sasl-mechanism SCRAM-SHA-256 --sasl-username bob --sasl-password-file pw

  fslog --root /backup/kafka replicate --from k1:9092,k2:9092 --topics 'orders'
"""

PROMOTE_HELP = """Make this follower root (--root) the leader: each partition starts a new
leader epoch at its log-end offset, and local producers may write again. Refuses while
'fslog replicate' still runs on the root. The old leader, started later as a follower of
this root ('fslog replicate --from THIS'), truncates what it wrote that was never copied
here, and converges.

Example: fslog --root /mnt/b/log promote
"""


def replicate(
    ctx: Context,
    source: str = Option(..., "--from", metavar="LEADER",
                               help="The leader: another fslog root directory, or HOST:PORT "
                                    "of an 'fslog serve', or a Kafka cluster's bootstrap "
                                    "servers (HOST:PORT[,...])."),
    topics: str = Option(None, "--topics", metavar="PATTERN",
                               help="Copy only topics whose whole name matches this regular "
                                    "expression (as Kafka's topic patterns) [default: all]."),
    follow: bool = Option(True, "--follow/--once",
                                help="Keep following until stopped, or copy what is there and exit."),
    json_: bool = Option(False, "--json", help="Print a JSON summary on stdout at exit."),
    quiet: bool = Option(False, "--quiet", "-q", help="No progress lines on stderr."),
    node_id: int = Option(None, "--node-id", min=0, metavar="N",
                                help="This follower's replica id, as an 'fslog serve' leader "
                                     "sees it [default: 1; against other Kafka clusters: "
                                     "none, a plain consumer (replica id -1)]."),
    tls: bool = cs.TLS,
    tls_ca: str = cs.TLS_CA,
    sasl_mechanism: str = cs.SASL_MECHANISM,
    sasl_username: str = cs.SASL_USERNAME,
    sasl_password_file: str = cs.SASL_PASSWORD_FILE,
) -> None:
    import signal

    from ..errors import FslogError, LeaderUnavailableError
    from ..replication.follower import Follower
    from .common import open_log
    from .output import err, print_json

    if not source or not source.strip():
        from ..errors import UsageError
        raise UsageError("--from is empty: give the leader's root directory")
    security = cs.client_security(tls, tls_ca, sasl_mechanism, sasl_username,
                                  sasl_password_file)
    leader = open_leader(source, node_id, security)
    log = open_log(ctx)
    say = (lambda m: None) if quiet else err
    follower = Follower(log, leader, topics=topics, on_event=lambda ev: say(_event_line(ev)))
    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_int = signal.signal(signal.SIGINT, _on_signal)
    follower.start()
    try:
        if follow:
            say(f"following {leader.describe()} into {log.root} (SIGTERM or Ctrl-C stops)")
            down = False
            try:
                follower.run_pass()
            except LeaderUnavailableError as e:  # gone meanwhile: retried, as later on
                follower.leader_lost(e)
                down = True
            else:
                s = follower.summary()
                say(f"caught up: {s['offsets_copied']} offsets in {len(s['partitions'])} "
                    f"partitions copied; following")
            follower.follow(stop, down=down)
        else:
            follower.run_pass()
    except FslogError:
        follower.close()
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
    follower.close()
    s = follower.summary()
    say(f"{s['offsets_copied']} offsets ({s['bytes_copied']} bytes) copied into "
        f"{len(s['partitions'])} partitions, {s['records_truncated']} records truncated, "
        f"{len(s['groups'])} groups' offsets")
    if json_:
        print_json(s)


def open_leader(source: str, node_id: int | None, security=None):
    """A root directory, or HOST:PORT[,HOST:PORT...] of a server or Kafka cluster."""
    import os
    import re

    from ..replication.source import RootLeader
    if not os.path.isdir(os.path.expanduser(source)) and \
            re.fullmatch(r"\[?[\w.:-]+\]?:\d+(,\s*\[?[\w.:-]+\]?:\d+)*", source):
        from ..replication.network import NetworkLeader
        from ..replication.wire import PLAINTEXT
        return NetworkLeader(source, replica_id=node_id, security=security or PLAINTEXT)
    return RootLeader(source)


def _event_line(ev: dict) -> str:
    kind = ev["event"]
    where = f"{ev.get('topic')}/{ev.get('partition')}"
    if kind == "truncated":
        return (f"{where}: truncated {ev['records']} records (offsets {ev['to_offset']} to "
                f"{ev['from_offset']}) that the leader does not have (leader epoch "
                f"{ev['epoch']} ends at {ev['to_offset']} there)")
    if kind == "topic_created":
        return f"topic {ev['topic']}: created ({ev['partitions']} partitions) as on the leader"
    if kind == "topic_deleted":
        return f"topic {ev['topic']}: deleted ({ev['reason']})"
    if kind == "topic_config":
        return f"topic {ev['topic']}: config set as on the leader: {ev['config']}"
    if kind == "log_start":
        return (f"{where}: log start offset now {ev['start_offset']} as on the leader "
                f"({ev['segments_deleted']} segments deleted)")
    if kind == "segment_copied":
        return (f"{where}: segment {ev['base_offset']}..{ev['end_offset'] - 1} copied again "
                f"(rewritten by the leader's compaction)")
    if kind == "group_deleted":
        return f"group {ev['group']}: deleted (the leader deleted it)"
    return ev.get("message") or str(ev)


def promote(ctx: Context,
            json_: bool = Option(False, "--json", help="Print JSON.")) -> None:
    from ..storage.replica import promote as promote_root
    from ..storage.replica import read_follower_state
    from .common import open_log
    from .output import err, print_json
    log = open_log(ctx)
    state = read_follower_state(log.root)
    done = promote_root(log.root)
    if json_:
        print_json({"root": log.root, "was_following": (state or {}).get("leader"),
                    "partitions": done})
    if state is None:
        err(f"{log.root} is not a follower: nothing to do")
        return
    epochs = sorted({d["epoch"] for d in done})
    err(f"{log.root} is the leader now (was following {state.get('leader')}): "
        f"{len(done)} partitions, leader epoch {', '.join(map(str, epochs)) or '-'}")
