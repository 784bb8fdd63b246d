"""The security model of ``fslog serve``: which listeners are allowed, TLS, SASL.

Rules (checked by ``check_listen`` from the arguments alone, before any file is opened
or any socket bound):

- A loopback address (127.0.0.0/8, ::1, ``localhost``) may be served as is: only this
  machine's users reach it, and they can read the root's files anyway.
- Any other address needs TLS (``--tls-cert`` and ``--tls-key``) and SASL
  authentication, unless ``--insecure`` is given (and then a warning is logged at
  every start). ``--sasl`` asks for authentication on loopback too.

SASL (Kafka's SaslHandshake, key 17, and SaslAuthenticate, key 36; handlers in
``sasl.py``): mechanisms SCRAM-SHA-256 and SCRAM-SHA-512 (the exchange is ``scramp``'s),
and PLAIN only over TLS unless ``--insecure``. Users are the salted SCRAM credentials of
``users.py``. Until a connection has authenticated, only ApiVersions, SaslHandshake and
SaslAuthenticate are served; anything else closes it with one log line (as Kafka does).
A failed login is answered after ``FAILED_AUTH_DELAY`` (Kafka's
``connection.failed.authentication.delay.ms``) and the connection is closed.

After SaslHandshake v1 the tokens travel in SaslAuthenticate requests; after v0 they are
raw size-prefixed frames (``raw_token``), as Kafka's oldest clients send them.

One ``Security`` per server, used on the event loop thread; blocking work (reading the
users file, PBKDF2 for PLAIN) runs on worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import ssl
import struct

from ..errors import FslogError, UsageError
from .users import UserStore

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
PLAIN = "PLAIN"
PRE_AUTH_APIS = frozenset({18, 17, 36})  # ApiVersions, SaslHandshake, SaslAuthenticate
TLS_HANDSHAKE_TIMEOUT = 30.0
FAILED_AUTH_DELAY = 0.1  # seconds, Kafka's connection.failed.authentication.delay.ms
_SIZE = struct.Struct(">i")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def security_protocol(tls: bool, sasl: bool) -> str:
    """Kafka's name for a listener: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    return {(False, False): "PLAINTEXT", (True, False): "SSL",
            (False, True): "SASL_PLAINTEXT", (True, True): "SASL_SSL"}[(tls, sasl)]


def sasl_required(config) -> bool:
    return bool(config.sasl or (not is_loopback(config.host) and not config.insecure))


def check_listen(config, listen: str | None = None) -> None:
    """Refuse (UsageError, one line) a configuration that the rules above forbid. Looks
    at the arguments only: nothing is opened, resolved or bound."""
    listen = listen or f"{config.host}:{config.port}"
    if bool(config.tls_cert) != bool(config.tls_key):
        raise UsageError("--tls-cert and --tls-key go together: give the certificate "
                         "(PEM, with its chain) and its private key")
    if is_loopback(config.host) or config.insecure:
        return
    if not config.tls_cert:
        raise UsageError(
            f"--listen {listen}: an address other than loopback needs TLS (--tls-cert, "
            f"--tls-key) and SASL users (`fslog serve users add NAME`); or add --insecure to "
            f"serve it without them")


def insecure_warning(config) -> str | None:
    """What ``--insecure`` leaves open, for the warning logged at every start."""
    if not config.insecure:
        return None
    tls = bool(config.tls_cert)
    sasl = sasl_required(config)
    where = f"{config.host}:{config.port}"
    gaps = []
    if not sasl:
        gaps.append(f"anyone who can reach {where} can read and write every topic")
    if not tls:
        gaps.append("traffic is not encrypted")
        if sasl:
            gaps.append("SASL PLAIN passwords travel in clear")
    if not gaps:
        return "--insecure is given but TLS and SASL are both on: it changes nothing"
    return "--insecure: " + "; ".join(gaps)


def make_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) from PEM files, or FslogError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as e:
        raise FslogError(f"{e.filename or cert}: no such file (--tls-cert/--tls-key)") from None
    except (ssl.SSLError, OSError) as e:
        raise FslogError(f"--tls-cert {cert} --tls-key {key}: cannot load the certificate "
                         f"and key: {getattr(e, 'reason', None) or e}") from None
    return ctx


class AuthFailed(Exception):
    """A login that failed; the message is what the client and the log are told."""


class SaslSession:
    """One connection's SASL exchange: the mechanism chosen by SaslHandshake, and for
    SCRAM the ``scramp`` server between its two rounds."""

    __slots__ = ("client_nonce", "mechanism", "raw", "scram", "user")

    def __init__(self, mechanism: str, raw: bool):
        self.mechanism = mechanism
        self.raw = raw  # SaslHandshake v0: tokens as raw frames
        self.scram = None
        self.user: str | None = None
        self.client_nonce: str | None = None


class Security:
    """What a connection must do before its requests are served (see the module doc)."""

    PRE_AUTH_APIS = PRE_AUTH_APIS

    def __init__(self, config=None, root: str | None = None, logger=None):
        self.logger = logger
        self.ssl_context: ssl.SSLContext | None = None
        self.requires_authentication = False
        self.mechanisms: tuple[str, ...] = ()
        self.users: UserStore | None = None
        self._fake_secret = os.urandom(32)
        if config is None:
            return
        check_listen(config)
        if config.tls_cert:
            self.ssl_context = make_ssl_context(config.tls_cert, config.tls_key)
        if sasl_required(config):
            self.requires_authentication = True
            assert root is not None, "SASL needs the root (its users file)"
            self.users = UserStore(root)
            self.users.check_private()
            if not self.users.names():
                raise FslogError(
                    f"SASL is required but {self.users.path} has no users: add one with "
                    f"`fslog serve users add NAME`")
            plain_ok = self.ssl_context is not None or config.insecure
            self.mechanisms = SCRAM_MECHANISMS + ((PLAIN,) if plain_ok else ())

    @property
    def protocol(self) -> str:
        return security_protocol(self.ssl_context is not None, self.requires_authentication)

    # ------------------------------------------------------------ connection seam
    async def on_connect(self, conn) -> bool:
        """TLS handshake when TLS is on; False (logged) if it fails."""
        if self.ssl_context is None:
            return True
        try:
            await conn.writer.start_tls(self.ssl_context,
                                        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError, EOFError) as e:
            why = getattr(e, "reason", None) or str(e) or type(e).__name__
            conn._refuse(f"TLS handshake failed ({why}): is the client using TLS "
                         f"(security.protocol=SSL or SASL_SSL)?")
            return False
        return True

    def allows(self, conn, api_key: int) -> bool:
        if not self.requires_authentication or conn.principal is not None:
            return True
        session = conn.auth
        if session is not None:  # between SaslHandshake and the end of the exchange
            return api_key == 36
        return api_key in self.PRE_AUTH_APIS

    # ------------------------------------------------------------ SASL
    def handshake(self, conn, mechanism: str, version: int) -> tuple[int, str | None]:
        """(Kafka error code, why) for SaslHandshake; starts the session on success."""
        if not self.requires_authentication:
            return 34, "SASL is not enabled on this listener"
        if conn.principal is not None or conn.auth is not None:
            return 34, "SaslHandshake after the exchange began (re-authentication is off)"
        if mechanism not in self.mechanisms:
            hint = (" (PLAIN needs TLS, or --insecure)" if mechanism == PLAIN else "")
            return 33, f"mechanism {mechanism!r} is not enabled{hint}"
        conn.auth = SaslSession(mechanism, raw=(version == 0))
        return 0, None

    def _users(self) -> UserStore:
        assert self.users is not None, "authentication happens only when SASL is on"
        return self.users

    def _scram_auth(self, mechanism: str):
        def auth_fn(user: str):
            got = self._users().scram_credentials(user, mechanism)
            if got is not None:
                return got
            # An unknown user goes through the same exchange with credentials that never
            # verify (a stable per-name salt), so a failure does not say which part was wrong.
            fake = hmac.new(self._fake_secret, user.encode(), hashlib.sha256).digest()
            return fake[:16], fake, fake[::-1], 4096
        return auth_fn

    def _step(self, session: SaslSession, token: bytes) -> tuple[bytes, bool]:
        """One SASL round (a worker thread): (server token, finished). AuthFailed if the
        client is refused."""
        from scramp import ScramException, ScramMechanism
        mech = session.mechanism
        if mech == PLAIN:
            parts = token.split(b"\0")
            if len(parts) != 3:
                raise AuthFailed("malformed PLAIN token")
            try:
                authzid, user, password = (p.decode() for p in parts)
            except UnicodeDecodeError:
                raise AuthFailed("malformed PLAIN token") from None
            session.user = user
            if authzid and authzid != user:
                raise AuthFailed(f"user {user!r} asked to act as {authzid!r}, "
                                 f"which fslog does not allow")
            if not self._users().verify_password(user, password):
                raise AuthFailed(f"invalid credentials for user {user!r} (PLAIN)")
            return b"", True
        try:
            text = token.decode()
        except UnicodeDecodeError:
            raise AuthFailed(f"malformed {mech} message") from None
        try:
            if session.scram is None:
                server = ScramMechanism(mech).make_server(self._scram_auth(mech))
                server.set_client_first(text)
                session.scram = server
                session.user = _scram_attr(text, "n")
                session.client_nonce = _scram_attr(text, "r")
                return server.get_server_first().encode(), False
            nonce = _scram_attr(text, "r")
            server_nonce = session.scram.nonce  # scramp's Nonce: client's + server's part
            if session.client_nonce and nonce == session.client_nonce + str(server_nonce):
                # librdkafka before 2.6.1 (e.g. Debian's kcat) puts its own nonce in front of
                # the whole nonce once more; Kafka 3.x accepts that, so fslog does too. The
                # server's nonce is still all there: a replayed exchange still fails.
                session.scram.nonce = type(server_nonce)(nonce)
            session.scram.set_client_final(text)
            return session.scram.get_server_final().encode(), True
        except ScramException as e:
            if session.scram is not None:  # the client's proof did not verify
                raise AuthFailed(f"invalid credentials for user {session.user!r} "
                                 f"({mech})") from None
            raise AuthFailed(f"malformed {mech} message ({e})") from None

    async def authenticate(self, conn, token: bytes) -> tuple[bytes, str | None]:
        """One SaslAuthenticate round: (server token, error message or None). On success
        of the last round sets ``conn.principal``; on failure the caller answers and the
        connection closes."""
        session = conn.auth
        try:
            reply, done = await conn.server.run_blocking(self._step, session, token)
        except AuthFailed as e:
            await asyncio.sleep(FAILED_AUTH_DELAY)
            return b"", f"Authentication failed: {e}"
        except FslogError as e:  # the users file became unreadable
            self.logger.error("serve: %s", e)
            return b"", "Authentication failed: the server cannot read its users"
        if done:
            conn.principal = session.user
            conn.auth = None
            self.logger.info("serve: %s: authenticated as %s (%s)", conn.peer,
                             session.user, session.mechanism)
        return reply, None

    async def raw_token(self, conn, token: bytes) -> bytes | None:
        """A raw SASL token after SaslHandshake v0: the whole response frame, or None
        (logged) when the login failed and the connection must close."""
        reply, error = await self.authenticate(conn, token)
        if error is not None:
            conn._refuse(error)
            return None
        return _SIZE.pack(len(reply)) + reply  # PLAIN's empty answer too, as Kafka sends it


def _scram_attr(message: str, name: str) -> str | None:
    """An attribute of a SCRAM message ("n,,n=NAME,r=NONCE": n is the user, r the nonce)."""
    for part in message.split(","):
        if part.startswith(name + "=") and len(part) > 2:
            value = part[2:]
            return value.replace("=2C", ",").replace("=3D", "=") if name == "n" else value
    return None
