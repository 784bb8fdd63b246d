"""How a replication client (``fslog replicate --from HOST:PORT``, ``fslog mirror --to``)
reaches a server that wants TLS and/or SASL: one small value, turned into settings for
fslog's own protocol client (``wire.py``) or for librdkafka (``mirror.py``). Immutable;
shared freely."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import FslogError

if TYPE_CHECKING:
    import ssl

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class ClientSecurity:
    """How to reach a server that wants TLS and/or SASL (Kafka's client settings
    ``security.protocol``, ``ssl.ca.location``, ``sasl.mechanism``, ``sasl.username``,
    ``sasl.password``). ``tls_ca``: a PEM file of the CAs to trust (None: the system's)."""

    tls: bool = False
    tls_ca: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    @property
    def protocol(self) -> str:
        """Kafka's name: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        if self.sasl_mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    def librdkafka_config(self) -> dict[str, str]:
        """The same settings for a confluent-kafka client."""
        cfg = {"security.protocol": self.protocol}
        if self.tls_ca:
            cfg["ssl.ca.location"] = self.tls_ca
        if self.sasl_mechanism:
            cfg["sasl.mechanism"] = self.sasl_mechanism
            cfg["sasl.username"] = self.sasl_username or ""
            cfg["sasl.password"] = self.sasl_password or ""
        return cfg

    def ssl_context(self) -> ssl.SSLContext:
        import ssl
        try:
            return ssl.create_default_context(cafile=self.tls_ca)
        except (OSError, ssl.SSLError) as e:
            raise FslogError(f"{self.tls_ca}: cannot load the CA certificates (--tls-ca): "
                             f"{getattr(e, 'strerror', None) or e}") from None


PLAINTEXT = ClientSecurity()
