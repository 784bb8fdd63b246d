"""``fslog serve``: run the Kafka wire-protocol broker over the root in the foreground."""

from __future__ import annotations

import typer

HELP = """Serve the root to Kafka clients (librdkafka/kcat, kafka-python, aiokafka, kafkajs,
Java) over Kafka's wire protocol, in the foreground. Network clients and the fslog
commands share the same files at the same time. One line per connection event on
stderr; SIGTERM or Ctrl-C stops accepting, answers the requests in flight, fsyncs and
exits 0. One server per root: a second one refuses with one line.

Listens on 127.0.0.1:9092 by default. Any other address than loopback needs TLS and
SASL, which are not offered yet: --insecure accepts plain, unauthenticated connections
from the network (with a warning at every start).

Examples:

  fslog serve

  fslog serve --listen 127.0.0.1:19092 --log-level debug

  kcat -b 127.0.0.1:9092 -L
"""

_LEVELS = ("debug", "info", "warning", "error")


def parse_host_port(value: str, option: str, default_port: int | None = None) -> tuple[str, int]:
    from ..errors import UsageError
    v = value.strip()
    host, port = v, None
    if v.startswith("["):  # [::1]:9092
        end = v.find("]")
        if end < 0:
            raise UsageError(f"{option} {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9092")
        host, rest = v[1:end], v[end + 1:]
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise UsageError(f"{option} {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9092")
    elif v.count(":") == 1:
        host, port = v.split(":")
    if port is None:
        if default_port is None:
            raise UsageError(f"{option} {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9092")
        return host, default_port
    try:
        p = int(port)
    except ValueError:
        p = -1
    if not 0 <= p <= 65535 or not host:
        raise UsageError(f"{option} {value!r}: expected HOST:PORT with a port from 0 to 65535")
    return host, p


def serve(
    ctx: typer.Context,
    listen: str = typer.Option("127.0.0.1:9092", "--listen", metavar="HOST:PORT", help="Address to listen on (port 0: any free port, printed at start)."),
    advertised: str = typer.Option(None, "--advertised-listener", metavar="HOST:PORT", help="Address clients are told to connect to [default: the listening address]."),
    node_id: int = typer.Option(0, "--node-id", min=0, help="This broker's node id in Metadata."),
    log_level: str = typer.Option("info", "--log-level", metavar="LEVEL", help="debug, info, warning or error (stderr)."),
    no_auto_create: bool = typer.Option(False, "--no-auto-create-topics", help="Do not create topics on first Metadata or Produce (Kafka's auto.create.topics.enable=false)."),
    max_request_bytes: int = typer.Option(100 << 20, "--max-request-bytes", min=1024, metavar="N", help="Close connections that send a larger request."),
    max_connections: int = typer.Option(1000, "--max-connections", min=1, metavar="N", help="Refuse connections beyond this many."),
    idle_ms: int = typer.Option(600000, "--connections-max-idle-ms", min=1, metavar="MS", help="Close connections idle this long (Kafka's connections.max.idle.ms)."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback --listen without TLS and SASL."),
) -> None:
    import logging
    import sys

    from ..broker import ServeConfig
    from ..broker import serve as run_server
    from ..broker.server import is_loopback
    from ..clients.producer import _default_partitions
    from ..errors import UsageError
    from .common import open_log

    level = log_level.lower()
    if level not in _LEVELS:
        raise UsageError(f"--log-level {log_level!r}: use one of {', '.join(_LEVELS)}")
    host, port = parse_host_port(listen, "--listen")
    adv_host, adv_port = (parse_host_port(advertised, "--advertised-listener", port)
                          if advertised else (None, None))
    if not is_loopback(host) and not insecure:
        raise UsageError(
            f"--listen {listen}: serving beyond loopback needs TLS and SASL, which fslog serve "
            f"does not offer yet; add --insecure to serve plain, unauthenticated connections")
    if host in ("0.0.0.0", "::") and not adv_host:
        raise UsageError(f"--listen {listen}: give --advertised-listener HOST:PORT, the "
                         f"address clients should connect to")
    config = ServeConfig(host=host, port=port, advertised_host=adv_host,
                         advertised_port=adv_port, node_id=node_id,
                         auto_create_topics=not no_auto_create,
                         default_partitions=_default_partitions(),
                         max_request_bytes=max_request_bytes, max_connections=max_connections,
                         idle_ms=idle_ms, insecure=insecure)
    log = open_log(ctx)
    logger = logging.getLogger("fslog.serve")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    if insecure and not is_loopback(host):
        logger.warning("serve: WARNING: --insecure: anyone who can reach %s can read and "
                       "write every topic of %s, unencrypted", listen, log.root)
    run_server(log, config, logger)
