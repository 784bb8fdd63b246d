"""ApiVersions (key 18), v0-4: the API-version table (``versions.py``) as Kafka sends it.

An ApiVersions request of a version fslog does not handle gets a v0 body with error 35
(UNSUPPORTED_VERSION) and the table: librdkafka then retries at v0.
"""

from __future__ import annotations

import datetime

from kio.schema.api_versions.v0.response import ApiVersion as ApiVersionV0
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.errors import ErrorCode

from .handlers import RequestContext, handles
from .protocol import build, encode_response, nested
from .versions import API_VERSIONS

_ZERO = datetime.timedelta(0)


def _keys(cls):
    return tuple(cls(api_key=k, min_version=r.advertised_min, max_version=r.max_version)
                 for k, r in sorted(API_VERSIONS.items()))


def unsupported_version_response() -> ApiVersionsResponseV0:
    """Kafka's answer to an ApiVersions version it does not know: a v0 response (header
    v0) with UNSUPPORTED_VERSION and the table. The connection frames it with the
    request's correlation id: see ``connection.py``."""
    return ApiVersionsResponseV0(error_code=ErrorCode.unsupported_version,
                                 api_keys=_keys(ApiVersionV0))


_RESPONSES: dict[type, object] = {}


@handles(18)
async def api_versions(ctx: RequestContext, request):
    cls = ctx.response_class()
    got = _RESPONSES.get(cls)  # the table never changes: one response object per version
    if got is None:
        got = _RESPONSES[cls] = build(cls, error_code=ErrorCode.none,
                                      api_keys=_keys(nested(cls, "ApiVersion")),
                                      throttle_time=_ZERO)
    return got


__all__ = ["api_versions", "unsupported_version_response", "encode_response"]
