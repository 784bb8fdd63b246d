"""``fslog replicate --from HOST:PORT`` and ``fslog mirror --to`` as clients of an ``fslog
serve`` that wants TLS and SCRAM: the same copy as in the clear, one-line errors for a
wrong password, an untrusted certificate and wrong option combinations."""

from __future__ import annotations

import json

from conftest import stderr_lines
from serve_fixtures import start_serve
from test_serve_security import PASSWORD, add_user, tls_files  # noqa: F401

import fslog


def _log_bytes(root, topic: str, p: int) -> bytes:
    d = root / "topics" / topic / f"{topic}-{p}"
    return b"".join(x.read_bytes() for x in sorted(d.glob("*.log")))


def test_replicate_and_mirror_through_tls_and_scram(cli, tmp_path, tls_files):  # noqa: F811
    cert, key = tls_files
    add_user(cli, "repl", PASSWORD)
    cli("topic", "create", "t", "--partitions", "2", "--config", "segment.bytes=4096")
    cli("produce", "t", input=b"".join(b"r-%05d\n" % i for i in range(3000)))
    srv = start_serve(cli, "--sasl", "--tls-cert", cert, "--tls-key", key)
    pw, bad = tmp_path / "pw", tmp_path / "bad"
    pw.write_text(PASSWORD + "\n")
    bad.write_text("not-the-password\n")
    b = tmp_path / "follower"
    try:
        sec = ["--tls-ca", cert, "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "repl"]
        cp = cli("--root", b, "replicate", "--from", srv.bootstrap, "--once", "--json",
                 *sec, "--sasl-password-file", pw)
        assert json.loads(cp.stdout)["offsets_copied"] == 3000
        for p in range(2):
            assert _log_bytes(b, "t", p) == _log_bytes(cli.root, "t", p)
        cli("--root", b, "verify")
        # a wrong password, a certificate not trusted, a cleartext client: one line each
        cp = cli("--root", b, "replicate", "--from", srv.bootstrap, "--once", *sec,
                 "--sasl-password-file", bad, check=1)
        [line] = stderr_lines(cp)
        assert line.startswith(f"fslog: {srv.bootstrap}: SASL SCRAM-SHA-256 login as 'repl' failed")
        cp = cli("--root", b, "replicate", "--from", srv.bootstrap, "--once", "--tls",
                 "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "repl",
                 "--sasl-password-file", pw, check=1)
        [line] = stderr_lines(cp)
        assert "the server's certificate is not trusted" in line and "--tls-ca" in line
        cp = cli("--root", b, "replicate", "--from", srv.bootstrap, "--once", check=1)
        assert len(stderr_lines(cp)) == 1
        # a mirror into the same server, with SCRAM-SHA-512 this time
        c = tmp_path / "c"
        cli("--root", c, "topic", "create", "m", "--partitions", "2")
        cli("--root", c, "produce", "m", "-K", ":",
            input=b"".join(b"k%d:v%d\n" % (i % 5, i) for i in range(500)))
        cp = cli("--root", c, "mirror", "m", "--to", srv.bootstrap, "--json", "--tls-ca", cert,
                 "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "repl",
                 "--sasl-password-file", pw)
        assert json.loads(cp.stdout)["records_sent"] == 500

        def records(root):
            r = fslog.Log(str(root)).reader("m")
            try:
                return sorted((x.partition, x.offset, x.key, x.value) for x in r)
            finally:
                r.close()
        assert records(cli.root) == records(c)
    finally:
        srv.stop()


def test_client_security_options_are_checked_before_anything_is_done(cli, tmp_path):
    cases = [
        (["--sasl-mechanism", "GSSAPI", "--sasl-username", "u", "--sasl-password-file", "x"],
         "fslog: --sasl-mechanism 'GSSAPI': give one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
        (["--sasl-username", "u"],
         "fslog: --sasl-username and --sasl-password-file need --sasl-mechanism "
         "(SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN)"),
        (["--sasl-mechanism", "PLAIN", "--sasl-username", "u"],
         "fslog: --sasl-mechanism PLAIN needs --sasl-username and --sasl-password-file"),
        (["--tls-ca", tmp_path / "none.pem"], f"fslog: {tmp_path}/none.pem: no such file (--tls-ca)"),
    ]
    for args, want in cases:
        for cmd in (["replicate", "--from", "127.0.0.1:9", "--once"],
                    ["mirror", "t", "--to", "127.0.0.1:9"]):
            cp = cli(*cmd, *args, check=2)
            assert stderr_lines(cp) == [want], (cmd, args)
    assert not (cli.root / "follower.json").exists()
