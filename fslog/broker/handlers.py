"""The handler registry: which coroutine answers which API key.

A handler module decorates one coroutine per API key with ``@handles(API_KEY)``::

    @handles(3)
    async def metadata(ctx: RequestContext, request) -> response | Deferred | None

``request`` is the kio request object of the version the client sent (``ctx.api_version``);
the handler returns the kio response object of the same version (``ctx.response_class()``
gives its class), a ``RawFrame`` it encoded itself (Fetch), ``None`` for no response at
all (Produce with acks=0), or
``Deferred(awaitable)`` when the answer must wait (an fsync, a long-poll Fetch): the
connection then goes on with the next request and sends the responses in request order.
Everything a handler does before it returns happens in request order on its connection.

A handler raises ``ApiError(code, message)`` for a request-level error it cannot express
in its response; the connection logs the message and closes (as Kafka does for requests
it cannot answer). Handlers never block the event loop: storage calls go through
``ctx.run(fn, *args)`` (a worker thread).

``HANDLER_MODULES`` lists the modules imported at start-up; add yours there.
"""

from __future__ import annotations

import importlib
from typing import Any, Awaitable, Callable

HANDLER_MODULES = (
    "api_versions",
    "metadata",
    "produce",
    "fetch",
    "list_offsets",
    "init_producer_id",
    "admin",
    "groups",
    "offset_for_leader_epoch",
    "sasl",
)

Handler = Callable[..., Awaitable[Any]]
HANDLERS: dict[int, Handler] = {}


def handles(api_key: int) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if api_key in HANDLERS and HANDLERS[api_key] is not fn:
            raise RuntimeError(f"two handlers for api key {api_key}: "
                               f"{HANDLERS[api_key].__module__} and {fn.__module__}")
        HANDLERS[api_key] = fn
        return fn
    return register


def load_handlers() -> dict[int, Handler]:
    for name in HANDLER_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return HANDLERS


class Deferred:
    """A response that comes later: the connection awaits ``awaitable`` for it (in
    request order) while it goes on reading and handling the next requests."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]):
        self.awaitable = awaitable


class RawFrame:
    """A response a handler encoded itself: the whole frame (size prefix included) as
    buffers the connection writes one after another, never joined (the Fetch path:
    record batches go out as they were read)."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[bytes]):
        self.parts = parts


class ApiError(Exception):
    """A request that cannot be answered: the connection logs ``message`` and closes."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class RequestContext:
    """What a handler knows about the request it answers."""

    __slots__ = ("server", "connection", "api_key", "api_version", "correlation_id",
                 "client_id")

    def __init__(self, server, connection, api_key: int, api_version: int,
                 correlation_id: int, client_id: str | None):
        self.server = server
        self.connection = connection
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id

    @property
    def storage(self):
        return self.server.storage

    @property
    def log(self):
        return self.server.logger

    def response_class(self) -> type:
        from .protocol import response_class
        return response_class(self.api_key, self.api_version)

    async def run(self, fn, *args):
        """Run a blocking call (storage) on a worker thread."""
        return await self.server.run_blocking(fn, *args)
