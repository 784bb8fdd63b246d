"""``fslog serve``: run the Kafka wire-protocol broker over the root in the foreground."""

from __future__ import annotations

from .params import Argument, Context, Group, Option

HELP = """Serve the root to Kafka clients (librdkafka/kcat, kafka-python, aiokafka, kafkajs,
Java) over Kafka's wire protocol, in the foreground. Network clients and the fslog
commands share the same files at the same time. One line per connection event on
stderr; SIGTERM or Ctrl-C stops accepting, answers the requests in flight, fsyncs and
exits 0. One server per root: a second one refuses with one line.

Listens on 127.0.0.1:9092 by default, with neither TLS nor authentication (only this
machine reaches it). Any other address needs TLS (--tls-cert, --tls-key) and SASL
authentication (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN over TLS) of the users that
`fslog serve users add` keeps in the root; --insecure lifts that rule (and warns at
every start). --sasl asks for authentication on loopback too.

Examples:

  fslog serve

  fslog serve --listen 127.0.0.1:19092 --log-level debug

  kcat -b 127.0.0.1:9092 -L

  fslog serve users add alice --password-stdin < alice.pw

  fslog serve --listen 10.0.0.5:9093 --tls-cert server.pem --tls-key server.key
"""

USERS_HELP = """Manage the SASL users of fslog serve: salted SCRAM-SHA-256 and SCRAM-SHA-512
credentials in ROOT/serve/users.json (mode 0600; passwords are never stored). A
running server sees changes at the next login.

Examples:

  fslog serve users add alice            (asks for the password twice)

  printf %s "$PW" | fslog serve users add alice --password-stdin

  fslog serve users list --json

  fslog serve users remove alice
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
    ctx: Context,
    listen: str = Option("127.0.0.1:9092", "--listen", metavar="HOST:PORT", help="Address to listen on (port 0: any free port, printed at start). Not loopback: needs TLS and SASL, or --insecure."),
    advertised: str = Option(None, "--advertised-listener", metavar="HOST:PORT", help="Address clients are told to connect to [default: the listening address]."),
    node_id: int = Option(0, "--node-id", min=0, help="This broker's node id in Metadata."),
    log_level: str = Option("info", "--log-level", metavar="LEVEL", help="debug, info, warning or error (stderr)."),
    no_auto_create: bool = Option(False, "--no-auto-create-topics", help="Do not create topics on first Metadata or Produce (Kafka's auto.create.topics.enable=false)."),
    max_request_bytes: int = Option(100 << 20, "--max-request-bytes", min=1024, metavar="N", help="Close connections that send a larger request."),
    max_connections: int = Option(1000, "--max-connections", min=1, metavar="N", help="Refuse connections beyond this many (one log line each)."),
    idle_ms: int = Option(10 * 60 * 1000, "--connections-max-idle-ms", min=1, metavar="MS", help="Close connections idle for longer (Kafka's connections.max.idle.ms)."),
    initial_delay_ms: int = Option(3000, "--group-initial-rebalance-delay-ms", min=0, metavar="MS", help="How long the first JoinGroup of an empty group waits for more members, so that members starting together land in one generation (Kafka's group.initial.rebalance.delay.ms; 0: no wait)."),
    tls_cert: str = Option(None, "--tls-cert", metavar="PEM", help="TLS certificate (with its chain) in PEM: every connection uses TLS."),
    tls_key: str = Option(None, "--tls-key", metavar="PEM", help="The private key of --tls-cert, in PEM."),
    sasl: bool = Option(False, "--sasl", help="Require SASL authentication on loopback too (always required on other addresses unless --insecure)."),
    insecure: bool = Option(False, "--insecure", help="Allow a non-loopback --listen without TLS and SASL, and PLAIN without TLS (warns at every start)."),
) -> None:
    if ctx.invoked_subcommand is not None:  # fslog serve users ...
        return
    import logging
    import sys

    from ..broker import ServeConfig
    from ..broker import serve as run_server
    from ..broker.security import check_listen, insecure_warning
    from ..clients.producer import _default_partitions
    from ..errors import UsageError
    from .common import open_log

    level = log_level.lower()
    if level not in _LEVELS:
        raise UsageError(f"--log-level {log_level!r}: use one of {', '.join(_LEVELS)}")
    host, port = parse_host_port(listen, "--listen")
    adv_host, adv_port = (parse_host_port(advertised, "--advertised-listener", port)
                          if advertised else (None, None))
    config = ServeConfig(host=host, port=port, advertised_host=adv_host,
                         advertised_port=adv_port, node_id=node_id,
                         auto_create_topics=not no_auto_create,
                         max_request_bytes=max_request_bytes, max_connections=max_connections,
                         idle_ms=idle_ms, insecure=insecure, tls_cert=tls_cert,
                         tls_key=tls_key, sasl=sasl,
                         group_initial_rebalance_delay_ms=initial_delay_ms)
    check_listen(config, listen)  # before the root is opened or anything is bound
    if host in ("0.0.0.0", "::") and not adv_host:
        raise UsageError(f"--listen {listen}: give --advertised-listener HOST:PORT, the "
                         f"address clients should connect to")
    config.default_partitions = _default_partitions()
    log = open_log(ctx)
    logger = logging.getLogger("fslog.serve")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    warning = insecure_warning(config)
    if warning:
        logger.warning("serve: WARNING: %s", warning)
    run_server(log, config, logger)


# ------------------------------------------------------------------ fslog serve users
users_app = Group(help=USERS_HELP, no_args_is_help=True, rich_markup_mode=None,
                        context_settings={"help_option_names": ["-h", "--help"]})


def _store(ctx: Context):
    from ..broker.users import UserStore
    from .common import open_log
    return UserStore(open_log(ctx).root)


def _read_password(name: str, from_stdin: bool) -> str:
    import sys

    from ..errors import UsageError
    if from_stdin:
        data = sys.stdin.buffer.read()
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        try:
            password = data.decode()
        except UnicodeDecodeError:
            raise UsageError("the password on stdin is not UTF-8") from None
        if not password:
            raise UsageError("--password-stdin: stdin is empty; send the password on it")
        if "\n" in password:
            raise UsageError("--password-stdin: send the password alone, on one line")
        return password
    if not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal: use --password-stdin to read the "
                         "password from it")
    import getpass
    password = getpass.getpass(f"Password for {name}: ")
    if getpass.getpass("Again: ") != password:
        raise UsageError("the two passwords differ; nothing changed")
    if not password:
        raise UsageError("the password is empty; nothing changed")
    return password


@users_app.command("add", help="Add a user, or set a user's password (SCRAM-SHA-256 and "
                               "SCRAM-SHA-512 credentials; PLAIN logins check them).")
def users_add(
    ctx: Context,
    name: str = Argument(..., help="User name (1-249 of A-Z a-z 0-9 . _ @ + -)."),
    password_stdin: bool = Option(False, "--password-stdin", help="Read the password from stdin (one line) instead of asking twice on the terminal."),
    iterations: int = Option(4096, "--iterations", metavar="N", help="PBKDF2 iterations of the salted password (at least 4096)."),
) -> None:
    from ..broker.users import validate_user_name
    from .output import err
    validate_user_name(name)
    password = _read_password(name, password_stdin)
    store = _store(ctx)
    new = store.add(name, password, iterations)
    err(f"{'added' if new else 'changed the password of'} user {name} ({store.path})")


@users_app.command("remove", help="Remove a user: its next login fails (connections "
                                  "already authenticated stay open until they close).")
def users_remove(ctx: Context, name: str = Argument(..., help="User name.")) -> None:
    from .output import err
    store = _store(ctx)
    store.remove(name)
    err(f"removed user {name}")


@users_app.command("list", help="List the users and their SCRAM mechanisms (never a secret).")
def users_list(ctx: Context, as_json: bool = Option(False, "--json", help="One JSON document.")) -> None:
    from .output import print_json, print_table
    store = _store(ctx)
    users = store.list_users()
    if as_json:
        print_json(users)
        return
    print_table(["NAME", "MECHANISMS", "ITERATIONS"],
                [[u["name"], ",".join(u["mechanisms"]), u["iterations"]] for u in users])
