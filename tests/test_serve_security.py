"""fslog serve's security model: loopback by default, TLS, SASL (PLAIN, SCRAM-SHA-256/512)
with the users of ``fslog serve users``, what is refused before authentication, and the
connection limits (--max-connections, --connections-max-idle-ms).

Every server here listens on 127.0.0.1; the rules for other addresses are checked from
the arguments alone (``check_listen`` runs before anything is opened or bound), so no
test binds or reaches any other address.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import time

import pytest
from conftest import stderr_lines, wait_for
from serve_fixtures import in_ci, start_serve

from fslog.broker.security import check_listen, insecure_warning, sasl_required
from fslog.broker.server import ServeConfig
from fslog.broker.users import UserStore
from fslog.errors import UsageError

PASSWORD = "s3cret-Pässword"


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost, made for this run."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "server.pem", d / "server.key"
    try:
        import cryptography  # noqa: F401
        _make_cert_cryptography(cert, key)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is here "
                        "to make a test certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def _make_cert_cryptography(cert_path, key_path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def add_user(cli, name="alice", password=PASSWORD):
    cp = cli.run("serve", "users", "add", name, "--password-stdin",
                 input=password.encode() + b"\n")
    return cp


def _request(api_key: int, version: int, correlation_id: int, body: bytes = b"",
             client_id: bytes = b"test") -> bytes:
    """A request frame with a v1 header (non-flexible versions only)."""
    head = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(head) + len(body)) + head + body


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _read_frame(sock: socket.socket) -> bytes | None:
    """One size-prefixed frame, or None when the server closed the connection."""
    def exactly(n):
        buf = b""
        while len(buf) < n:
            got = sock.recv(n - len(buf))
            if not got:
                return None
            buf += got
        return buf
    head = exactly(4)
    if head is None:
        return None
    return exactly(struct.unpack(">i", head)[0])


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _api_versions_ok(sock: socket.socket, correlation_id: int = 7) -> bool:
    sock.sendall(_request(18, 0, correlation_id))
    frame = _read_frame(sock)
    return frame is not None and struct.unpack(">ih", frame[:6]) == (correlation_id, 0)


def _server_lines(server, text: str) -> list[str]:
    return [line for line in server.stderr_text().splitlines() if text in line]


# ------------------------------------------------------------------ fslog serve users
def test_users_add_list_remove_keeps_salted_scram_credentials_only(cli):
    cp = add_user(cli)
    assert stderr_lines(cp) == [f"fslog: added user alice ({cli.root}/serve/users.json)"]
    add_user(cli, "bob", "another one")
    path = cli.root / "serve" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert PASSWORD.encode() not in raw and b"another one" not in raw
    doc = json.loads(raw)
    assert doc["version"] == 1
    assert set(doc["users"]["alice"]) == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    assert set(doc["users"]["alice"]["SCRAM-SHA-256"]) == {"salt", "iterations", "stored_key",
                                                           "server_key"}
    # every user gets its own random salt
    assert doc["users"]["alice"]["SCRAM-SHA-256"]["salt"] != \
        doc["users"]["bob"]["SCRAM-SHA-256"]["salt"]

    listed = json.loads(cli.run("serve", "users", "list", "--json").stdout)
    assert listed == [
        {"name": "alice", "mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-512"], "iterations": 4096},
        {"name": "bob", "mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-512"], "iterations": 4096}]
    assert cli.run("serve", "users", "list").stdout.decode().splitlines() == [
        "NAME\tMECHANISMS\tITERATIONS",
        "alice\tSCRAM-SHA-256,SCRAM-SHA-512\t4096",
        "bob\tSCRAM-SHA-256,SCRAM-SHA-512\t4096"]

    store = UserStore(str(cli.root))
    assert store.verify_password("alice", PASSWORD)
    assert not store.verify_password("alice", PASSWORD + "x")
    assert not store.verify_password("nobody", PASSWORD)

    # a new password replaces the old one
    cp = cli.run("serve", "users", "add", "alice", "--password-stdin", input=b"new pw\r\n")
    assert stderr_lines(cp) == ["fslog: changed the password of user alice"
                                f" ({cli.root}/serve/users.json)"]
    assert store.verify_password("alice", "new pw")
    assert not store.verify_password("alice", PASSWORD)

    cp = cli.run("serve", "users", "remove", "bob")
    assert stderr_lines(cp) == ["fslog: removed user bob"]
    assert store.names() == ["alice"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in (cli.root / "serve").iterdir() if ".tmp." in p.name] == []


def test_users_bad_input_is_one_line_and_changes_nothing(cli):
    add_user(cli)
    before = (cli.root / "serve" / "users.json").read_bytes()
    cases = [
        (["serve", "users", "remove", "bob"], b"", 1, "no user 'bob' in "),
        (["serve", "users", "add", "a b", "--password-stdin"], b"pw\n", 2, "user name 'a b'"),
        (["serve", "users", "add", "carol", "--password-stdin"], b"", 2, "stdin is empty"),
        (["serve", "users", "add", "carol", "--password-stdin"], b"a\nb\n", 2, "one line"),
        (["serve", "users", "add", "carol"], b"pw\n", 2, "use --password-stdin"),
        (["serve", "users", "add", "carol", "--password-stdin", "--iterations", "10"], b"pw\n",
         2, "at least 4096"),
    ]
    for args, inp, code, text in cases:
        cp = cli.run(*args, input=inp, check=code)
        lines = stderr_lines(cp)
        assert len(lines) == 1 and text in lines[0], (args, lines)
    assert (cli.root / "serve" / "users.json").read_bytes() == before


def test_a_users_file_readable_by_others_is_refused(cli):
    add_user(cli)
    path = cli.root / "serve" / "users.json"
    os.chmod(path, 0o644)
    cp = cli.run("serve", "--listen", "127.0.0.1:0", "--sasl", check=1)
    assert stderr_lines(cp) == [f"fslog: {path} has mode 0644: others may read the salted "
                                f"keys; run chmod 600 on it"]


# ------------------------------------------------------------------ which listeners
def test_non_loopback_without_tls_is_refused_before_anything_is_opened(cli):
    for listen in ("10.11.12.13:9092", "0.0.0.0:9092", "[::]:9092", "example.com:9092"):
        cp = cli.run("serve", "--listen", listen, check=2)
        lines = stderr_lines(cp)
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"fslog: --listen {listen}: an address other than loopback "
                                   f"needs TLS (--tls-cert, --tls-key) and SASL users")
        assert "--insecure" in lines[0]
    assert not cli.root.exists()  # refused from the arguments alone
    cp = cli.run("serve", "--tls-cert", "x.pem", check=2)
    assert stderr_lines(cp) == ["fslog: --tls-cert and --tls-key go together: give the "
                                "certificate (PEM, with its chain) and its private key"]


def test_listen_rules_from_the_arguments_alone():
    def cfg(host, **kw):
        return ServeConfig(host=host, port=9092, **kw)
    # loopback: allowed as is, SASL only when asked
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        check_listen(cfg(host))
        assert not sasl_required(cfg(host))
        assert sasl_required(cfg(host, sasl=True))
    # other addresses: TLS needed; SASL always on unless --insecure
    with pytest.raises(UsageError):
        check_listen(cfg("192.0.2.1"))
    with pytest.raises(UsageError):
        check_listen(cfg("192.0.2.1", sasl=True))
    check_listen(cfg("192.0.2.1", tls_cert="c.pem", tls_key="k.pem"))
    assert sasl_required(cfg("192.0.2.1", tls_cert="c.pem", tls_key="k.pem"))
    check_listen(cfg("192.0.2.1", insecure=True))
    assert not sasl_required(cfg("192.0.2.1", insecure=True))
    # what --insecure leaves open is said every time
    assert insecure_warning(cfg("192.0.2.1")) is None
    assert "anyone who can reach 192.0.2.1:9092" in insecure_warning(cfg("192.0.2.1", insecure=True))
    assert "PLAIN passwords travel in clear" in insecure_warning(cfg("127.0.0.1", insecure=True,
                                                                     sasl=True))
    assert "changes nothing" in insecure_warning(cfg("192.0.2.1", insecure=True, sasl=True,
                                                     tls_cert="c", tls_key="k"))


def test_sasl_without_users_refuses_to_start(cli):
    cp = cli.run("serve", "--listen", "127.0.0.1:0", "--sasl", check=1)
    assert stderr_lines(cp) == [f"fslog: SASL is required but {cli.root}/serve/users.json has "
                                f"no users: add one with `fslog serve users add NAME`"]


def test_unloadable_tls_files_are_one_line(cli, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    cp = cli.run("serve", "--listen", "127.0.0.1:0", "--tls-cert", bad, "--tls-key", bad,
                 check=1)
    lines = stderr_lines(cp)
    assert len(lines) == 1 and "cannot load the certificate and key" in lines[0]
    cp = cli.run("serve", "--listen", "127.0.0.1:0", "--tls-cert", tmp_path / "none.pem",
                 "--tls-key", bad, check=1)
    assert stderr_lines(cp) == [f"fslog: {tmp_path}/none.pem: no such file (--tls-cert/--tls-key)"]


def test_insecure_warns_at_every_start(cli):
    add_user(cli)
    for _ in range(2):
        server = start_serve(cli, "--sasl", "--insecure")
        try:
            warn = _server_lines(server, "WARNING: --insecure")
            assert len(warn) == 1 and "PLAIN passwords travel in clear" in warn[0]
            assert "SASL_PLAINTEXT SCRAM-SHA-256/SCRAM-SHA-512/PLAIN" in server.stderr_text()
        finally:
            assert server.stop() == 0


# ------------------------------------------------------------------ SASL on the wire
def test_nothing_but_the_sasl_requests_before_authentication(cli):
    add_user(cli)
    server = start_serve(cli, "--sasl")
    try:
        # ApiVersions is answered; Metadata before authenticating closes the connection
        s = _connect(server.port)
        assert _api_versions_ok(s)
        s.sendall(_request(3, 0, 8, struct.pack(">i", 0)))
        assert _read_frame(s) is None
        s.close()
        server.wait_until("Metadata before SASL authentication completed")
        # a mechanism that is not enabled: the enabled list, then the connection closes
        s = _connect(server.port)
        s.sendall(_request(17, 1, 9, _string("GSSAPI")))
        frame = _read_frame(s)
        corr, err, n = struct.unpack(">ihi", frame[:10])
        assert (corr, err, n) == (9, 33, 2)  # UNSUPPORTED_SASL_MECHANISM
        assert b"SCRAM-SHA-256" in frame and b"SCRAM-SHA-512" in frame and b"PLAIN" not in frame
        assert _closed_by_server(s)
        s.close()
        # SaslAuthenticate without SaslHandshake: ILLEGAL_SASL_STATE, closed
        s = _connect(server.port)
        s.sendall(_request(36, 0, 10, struct.pack(">i", 3) + b"abc"))
        frame = _read_frame(s)
        assert struct.unpack(">ih", frame[:6]) == (10, 34)
        assert _closed_by_server(s)
        s.close()
        # the server keeps serving
        s = _connect(server.port)
        assert _api_versions_ok(s)
        s.close()
    finally:
        assert server.stop() == 0


def test_scram_over_raw_tokens_after_handshake_v0(cli):
    """Kafka's oldest SASL framing: SaslHandshake v0, then raw size-prefixed tokens."""
    from scramp import ScramClient
    add_user(cli)
    server = start_serve(cli, "--sasl")
    try:
        for user, password, ok in (("alice", PASSWORD, True), ("alice", "wrong", False),
                                   ("mallory", PASSWORD, False)):
            s = _connect(server.port)
            s.sendall(_request(17, 0, 1, _string("SCRAM-SHA-512")))
            assert struct.unpack(">ih", _read_frame(s)[:6]) == (1, 0)
            client = ScramClient(["SCRAM-SHA-512"], user, password)
            first = client.get_client_first().encode()
            s.sendall(struct.pack(">i", len(first)) + first)
            client.set_server_first(_read_frame(s).decode())
            final = client.get_client_final().encode()
            s.sendall(struct.pack(">i", len(final)) + final)
            reply = _read_frame(s)
            if ok:
                client.set_server_final(reply.decode())  # raises if the server is not genuine
                s.sendall(_request(3, 0, 2, struct.pack(">i", 0)))  # Metadata now served
                assert struct.unpack(">i", _read_frame(s)[:4]) == (2,)
            else:
                assert reply is None
            s.close()
        server.wait_until("authenticated as alice (SCRAM-SHA-512)")
        server.wait_until("Authentication failed: invalid credentials for user 'alice' "
                          "(SCRAM-SHA-512)")
        # an unknown user fails the same way, at the same step
        server.wait_until("Authentication failed: invalid credentials for user 'mallory' "
                          "(SCRAM-SHA-512)")
    finally:
        assert server.stop() == 0


kafka = pytest.importorskip("kafka")


def _kafka_python_topics(port: int, **kw):
    c = kafka.KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=20000,
                            **kw)
    try:
        return c.topics()
    finally:
        c.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_scram(cli, mechanism):
    add_user(cli)
    cli.create("orders")
    server = start_serve(cli, "--sasl")
    try:
        topics = _kafka_python_topics(server.port, security_protocol="SASL_PLAINTEXT",
                                      sasl_mechanism=mechanism, sasl_plain_username="alice",
                                      sasl_plain_password=PASSWORD)
        assert "orders" in topics
        server.wait_until(f"authenticated as alice ({mechanism})")
    finally:
        assert server.stop() == 0


confluent_kafka = pytest.importorskip("confluent_kafka")


def _confluent_topics(port: int, conf: dict, timeout: float = 30):
    from confluent_kafka.admin import AdminClient
    errors = []
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "error_cb": errors.append,
                         "reconnect.backoff.ms": 2000, "reconnect.backoff.max.ms": 10000,
                         "log_level": 0, **conf})
    try:
        return set(admin.list_topics(timeout=timeout).topics), errors
    except confluent_kafka.KafkaException as e:
        admin.poll(1)  # delivers the errors to error_cb
        return e, errors


def _confluent_refused(port: int, conf: dict, until=bool, timeout: float = 60):
    """A client the server refuses: it asks for the topics again and again (0.5 s each)
    until ``until(errors so far)`` holds (any error by default; ``timeout`` only guards
    against a hang), instead of waiting out one long timeout. The same (result, errors)
    as ``_confluent_topics``: a KafkaException, or the topics if it ever got them."""
    from confluent_kafka.admin import AdminClient
    errors: list = []
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "error_cb": errors.append,
                         "reconnect.backoff.ms": 2000, "reconnect.backoff.max.ms": 10000,
                         "log_level": 0, **conf})
    deadline = time.monotonic() + timeout
    while True:
        try:
            return set(admin.list_topics(timeout=0.5).topics), errors
        except confluent_kafka.KafkaException as e:
            admin.poll(0.1)  # delivers the errors to error_cb
            if until(errors) or time.monotonic() > deadline:
                return e, errors


def _authentication_failed(errors) -> bool:
    return any(e.code() == confluent_kafka.KafkaError._AUTHENTICATION for e in errors)


def _sasl_conf(mechanism, password=PASSWORD, cafile=None) -> dict:
    conf = {"security.protocol": "SASL_SSL" if cafile else "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism, "sasl.username": "alice", "sasl.password": password}
    if cafile:
        conf["ssl.ca.location"] = cafile
    return conf


def _at_once(*calls):
    """Run ``calls`` (each with a client of its own, mostly waiting on the network) in
    threads; their results, in order."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(len(calls)) as ex:
        futures = [ex.submit(c) for c in calls]
        return [f.result() for f in futures]


def _refused(result) -> list:
    """A ``_confluent_topics`` result that listed no topics: its errors."""
    got, errors = result
    assert isinstance(got, confluent_kafka.KafkaException), got
    return errors


@pytest.mark.slow
def test_confluent_scram_and_wrong_password(cli):
    add_user(cli)
    cli.create("orders")
    server = start_serve(cli, "--sasl")
    port = server.port
    try:
        sha256, sha512, wrong, no_sasl, plain = _at_once(
            lambda: _confluent_topics(port, _sasl_conf("SCRAM-SHA-256")),
            lambda: _confluent_topics(port, _sasl_conf("SCRAM-SHA-512")),
            lambda: _confluent_refused(port, _sasl_conf("SCRAM-SHA-256", "wrong"),
                                       until=_authentication_failed),
            # a client without SASL: its first request past ApiVersions closes the connection
            lambda: _confluent_refused(port, {}),
            # PLAIN without TLS is not offered (no --insecure)
            lambda: _confluent_refused(port, _sasl_conf("PLAIN")))
        for mechanism, (topics, _) in (("SCRAM-SHA-256", sha256), ("SCRAM-SHA-512", sha512)):
            assert "orders" in topics, (mechanism, topics)
            server.wait_until(f"authenticated as alice ({mechanism})")
        errors = _refused(wrong)
        assert _authentication_failed(errors), errors
        server.wait_until("Authentication failed: invalid credentials for user 'alice' "
                          "(SCRAM-SHA-256)")
        _refused(no_sasl)
        server.wait_until("Metadata before SASL authentication completed")
        _refused(plain)
        server.wait_until("mechanism 'PLAIN' is not enabled (PLAIN needs TLS, or --insecure)")
    finally:
        assert server.stop() == 0


# ------------------------------------------------------------------ TLS
@pytest.mark.slow
def test_tls_with_sasl_for_every_client(cli, tls_files):
    cert, key = tls_files
    add_user(cli)
    cli.create("orders")
    server = start_serve(cli, "--sasl", "--tls-cert", cert, "--tls-key", key)
    try:
        assert "SASL_SSL SCRAM-SHA-256/SCRAM-SHA-512/PLAIN" in server.stderr_text()
        mechanisms = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        # every mechanism through both clients, and a wrong PLAIN password, all at once
        *listed, wrong = _at_once(
            *[lambda m=m: _confluent_topics(server.port, _sasl_conf(m, cafile=cert))[0]
              for m in mechanisms],
            *[lambda m=m: _kafka_python_topics(
                server.port, security_protocol="SASL_SSL", ssl_cafile=cert, sasl_mechanism=m,
                sasl_plain_username="alice", sasl_plain_password=PASSWORD) for m in mechanisms],
            lambda: _confluent_refused(server.port, _sasl_conf("PLAIN", "wrong", cert)))
        for mechanism, topics in zip(mechanisms * 2, listed):
            assert "orders" in topics, (mechanism, topics)
        wait_for(lambda: len(_server_lines(server, "authenticated as alice (PLAIN)")) >= 2,
                 timeout=30, what="both PLAIN clients in the server's log")
        _refused(wrong)
        server.wait_until("Authentication failed: invalid credentials for user 'alice' (PLAIN)")
        # a client that does not speak TLS: one line, and the server goes on
        s = _connect(server.port)
        s.sendall(_request(18, 0, 1))
        assert _read_frame(s) is None
        s.close()
        server.wait_until("TLS handshake failed")
        # a client that does not trust the certificate refuses the server
        ctx = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        # one that does, talks
        ctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                assert _api_versions_ok(s)
    finally:
        assert server.stop() == 0


def test_kcat_over_tls_with_sasl(cli, tls_files):
    if shutil.which("kcat") is None:
        if in_ci():
            pytest.fail("kcat is not installed (.ci/run installs it)")
        pytest.skip("kcat is not installed")
    cert, key = tls_files
    add_user(cli)
    cli.create("orders")
    server = start_serve(cli, "--sasl", "--tls-cert", cert, "--tls-key", key)
    try:
        for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            cp = subprocess.run(
                ["kcat", "-b", server.bootstrap, "-L", "-J", "-m", "30",
                 "-X", "security.protocol=SASL_SSL", "-X", f"sasl.mechanisms={mechanism}",
                 "-X", "sasl.username=alice", "-X", f"sasl.password={PASSWORD}",
                 "-X", f"ssl.ca.location={cert}"],
                capture_output=True, timeout=60)
            assert cp.returncode == 0, cp.stderr.decode(errors="replace")
            meta = json.loads(cp.stdout)
            assert "orders" in [t["topic"] for t in meta["topics"]]
            server.wait_until(f"authenticated as alice ({mechanism})")
    finally:
        assert server.stop() == 0


def test_tls_without_sasl_on_loopback(cli, tls_files):
    cert, key = tls_files
    cli.create("orders")
    server = start_serve(cli, "--tls-cert", cert, "--tls-key", key)
    try:
        assert "root " in server.stderr_text() and ", SSL)" in server.stderr_text()
        topics, _ = _confluent_topics(server.port, {"security.protocol": "SSL",
                                                    "ssl.ca.location": cert})
        assert "orders" in topics
    finally:
        assert server.stop() == 0


# ------------------------------------------------------------------ connection limits
def test_max_connections_refuses_extra_with_a_log_line(cli):
    server = start_serve(cli, "--max-connections", "2")
    try:
        a, b = _connect(server.port), _connect(server.port)
        assert _api_versions_ok(a) and _api_versions_ok(b)
        c = _connect(server.port)
        assert _closed_by_server(c)
        server.wait_until("refused: --max-connections=2 reached")
        c.close()
        assert _api_versions_ok(a, 11) and _api_versions_ok(b, 12)
        a.close()
        # a freed place is taken again
        wait_for(lambda: "(1 open)" in server.stderr_text().splitlines()[-1], timeout=30,
                 what="the server to see the closed connection")
        d = _connect(server.port)
        assert _api_versions_ok(d)
        d.close()
        b.close()
    finally:
        assert server.stop() == 0


def test_idle_connections_are_closed(cli):
    server = start_serve(cli, "--connections-max-idle-ms", "300")
    try:
        s = _connect(server.port)
        assert _api_versions_ok(s)
        s.settimeout(60)  # bounded: the server closes it after about a second
        assert _closed_by_server(s)
        s.close()
        server.wait_until("idle for more than 300 ms (connections.max.idle.ms)")
    finally:
        assert server.stop() == 0


def _serve_has(*api_keys: int) -> bool:
    from fslog.broker.handlers import load_handlers
    return all(k in load_handlers() for k in api_keys)


@pytest.mark.slow
def test_authenticated_clients_produce_and_fetch_through_tls(cli, tls_files):
    if not _serve_has(0, 1):
        pytest.skip("this checkout's fslog serve has no Produce and Fetch handlers yet")
    cert, key = tls_files
    add_user(cli)
    cli.create("orders")
    server = start_serve(cli, "--sasl", "--tls-cert", cert, "--tls-key", key)
    try:
        common = {"bootstrap_servers": server.bootstrap, "security_protocol": "SASL_SSL",
                  "ssl_cafile": cert, "sasl_mechanism": "SCRAM-SHA-256",
                  "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD,
                  "request_timeout_ms": 30000}
        p = kafka.KafkaProducer(acks="all", **common)
        try:
            for i in range(10):
                p.send("orders", f"secure-{i}".encode())
            p.flush(timeout=60)
        finally:
            p.close(timeout=30)
        c = kafka.KafkaConsumer("orders", auto_offset_reset="earliest",
                                consumer_timeout_ms=10000, **common)
        try:  # until the 10 records (or 10 s without one: then the assert below fails)
            got = []
            for m in c:
                got.append((m.offset, m.value))
                if len(got) == 10:
                    break
        finally:
            c.close()
        assert got == [(i, f"secure-{i}".encode()) for i in range(10)]
    finally:
        assert server.stop() == 0
    # the same records, read from the files by the CLI
    assert cli.values("orders") == [f"secure-{i}".encode() for i in range(10)]
