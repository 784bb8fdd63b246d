"""The TLS and SASL options of commands that are Kafka clients (``fslog replicate --from
HOST:PORT``, ``fslog mirror --to``), declared once: the client side of ``fslog serve``'s
``--tls-cert``/``--tls-key``/``--sasl``, with librdkafka's meanings."""

from __future__ import annotations

from .params import Option

TLS = Option(False, "--tls", help="Connect with TLS, trusting the system's CAs (--tls-ca: these).")
TLS_CA = Option(None, "--tls-ca", metavar="PEM",
                      help="Connect with TLS, trusting the CA certificates in this PEM file.")
SASL_MECHANISM = Option(None, "--sasl-mechanism", metavar="MECH",
                              help="Log in with SASL: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN.")
SASL_USERNAME = Option(None, "--sasl-username", metavar="NAME", help="The SASL user.")
SASL_PASSWORD_FILE = Option(None, "--sasl-password-file", metavar="FILE",
                                  help="A file whose first line is the SASL password (never "
                                       "on the command line).")


def client_security(tls: bool, tls_ca: str | None, sasl_mechanism: str | None,
                    sasl_username: str | None, sasl_password_file: str | None):
    """The options as a ``ClientSecurity``; wrong combinations are usage errors."""
    from ..errors import UsageError
    from ..replication.security import SASL_MECHANISMS, ClientSecurity
    mech = sasl_mechanism.upper() if sasl_mechanism else None
    if mech is not None and mech not in SASL_MECHANISMS:
        raise UsageError(f"--sasl-mechanism {sasl_mechanism!r}: give one of "
                         f"{', '.join(SASL_MECHANISMS)}")
    if mech is None and (sasl_username or sasl_password_file):
        raise UsageError("--sasl-username and --sasl-password-file need --sasl-mechanism "
                         "(SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN)")
    password = None
    if mech is not None:
        if not sasl_username or not sasl_password_file:
            raise UsageError(f"--sasl-mechanism {mech} needs --sasl-username and "
                             f"--sasl-password-file")
        try:
            with open(sasl_password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{sasl_password_file}: cannot read the password "
                             f"(--sasl-password-file): {getattr(e, 'strerror', None) or e}") from None
        if not password:
            raise UsageError(f"{sasl_password_file}: the first line (the password) is empty")
    if tls_ca is not None:
        import os
        if not os.path.isfile(tls_ca):
            raise UsageError(f"{tls_ca}: no such file (--tls-ca)")
    return ClientSecurity(tls=tls or tls_ca is not None, tls_ca=tls_ca, sasl_mechanism=mech,
                          sasl_username=sasl_username, sasl_password=password)
