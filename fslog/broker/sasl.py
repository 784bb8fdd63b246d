"""SaslHandshake (key 17, v0-1) and SaslAuthenticate (key 36, v0-2).

The exchange itself (mechanisms, users, what is allowed before it ends) is
``security.py``'s; these handlers carry it in Kafka's messages:

- SaslHandshake names the mechanism. Error UNSUPPORTED_SASL_MECHANISM (33) with the
  enabled list, or ILLEGAL_SASL_STATE (34) when SASL is off on this listener or the
  exchange already began; either closes the connection after the answer (as Kafka).
  After v0 the client sends the SASL tokens as raw frames (``connection.py`` hands them
  to ``Security.raw_token``); after v1 in SaslAuthenticate requests.
- SaslAuthenticate carries one token each way. A refused login gets
  SASL_AUTHENTICATION_FAILED (58) with a message, after a short delay, and the
  connection closes. ``session_lifetime_ms`` is 0: no re-authentication.
"""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode

from .handlers import RequestContext, handles
from .protocol import build

_ZERO = datetime.timedelta(0)


@handles(17)
async def sasl_handshake(ctx: RequestContext, request):
    security = ctx.server.security
    conn = ctx.connection
    code, why = security.handshake(conn, request.mechanism, ctx.api_version)
    if code:
        conn.stop(f"SaslHandshake {request.mechanism}: {why}")
    return build(ctx.response_class(), error_code=ErrorCode(code),
                 mechanisms=tuple(security.mechanisms))


@handles(36)
async def sasl_authenticate(ctx: RequestContext, request):
    security = ctx.server.security
    conn = ctx.connection
    cls = ctx.response_class()
    if conn.auth is None or conn.auth.raw:
        why = ("SaslAuthenticate after authentication (re-authentication is off)"
               if conn.principal is not None else "SaslAuthenticate before SaslHandshake v1")
        conn.stop(why)
        return build(cls, error_code=ErrorCode.illegal_sasl_state, error_message=why,
                     auth_bytes=b"", session_lifetime=_ZERO)
    reply, error = await security.authenticate(conn, bytes(request.auth_bytes))
    if error is not None:
        conn.stop(error)
        return build(cls, error_code=ErrorCode.sasl_authentication_failed,
                     error_message=error, auth_bytes=b"", session_lifetime=_ZERO)
    return build(cls, error_code=ErrorCode.none, error_message=None, auth_bytes=reply,
                 session_lifetime=_ZERO)


__all__ = ["sasl_authenticate", "sasl_handshake"]
