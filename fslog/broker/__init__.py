"""``fslog serve``: a Kafka wire-protocol broker over the root.

Network clients (librdkafka/kcat, kafka-python, aiokafka, kafkajs, Java) produce to
and fetch from the same segment files the CLI uses, under the same partition locks.

Layout (imports point down: the broker uses storage, groups and clients, never the CLI)::

    server.py        listener, worker threads, shutdown
    security.py      which listeners are allowed, TLS, the SASL exchange (``Security``)
    users.py         SASL users: salted SCRAM credentials in ROOT/serve/users.json
    connection.py    one connection: framing, request order, pipelining, limits
    protocol.py      request/response framing around the ``kio`` codec; ``build`` helper
    versions.py      THE API-version table (one row per API key)
    handlers.py      the handler registry (``@handles``), ``RequestContext``, ``Deferred``
    storage.py       ``BrokerStorage``: everything the handlers may ask of the root
    (the running server's entry in the root, for status and top: storage/servers.py)
    wakeup.py        waking long-poll Fetches on appends from any process
    fsync.py         acks=all group commit, flush.ms for acks=1
    producer_state.py  idempotent producer ids and sequences
    coordinator.py   the group coordinator's state machine (classic protocol)
    group_offsets.py committed offsets (OffsetCommit/OffsetFetch) in the CLI's files
    group_admin.py   groups as admin clients see them: list, describe, delete
    consumer_protocol.py  the subscription/assignment bytes inside JoinGroup/SyncGroup
    api_versions.py, metadata.py, produce.py, fetch.py, list_offsets.py,
    init_producer_id.py, admin.py, groups.py, sasl.py   one handler module per API family

Adding an API handler (e.g. the group coordinator):

1. Add a row to ``versions.API_VERSIONS``: ``KEY: ApiRange("Name", advertised_min,
   min_version, max_version)`` — only versions ``kio`` has classes for
   (``kio/schema/<api>/v<N>``).
2. Write ``fslog/broker/<family>.py`` with one coroutine per key::

       from .handlers import RequestContext, handles
       from .protocol import build, nested

       @handles(12)                       # Heartbeat
       async def heartbeat(ctx: RequestContext, request):
           cls = ctx.response_class()     # the kio response class of ctx.api_version
           ...                            # blocking work: await ctx.run(fn, *args)
           return build(cls, throttle_time=datetime.timedelta(0), error_code=ErrorCode.none)

   ``build`` drops the fields a version does not have, so one handler serves every
   version; ``nested(cls, "Name")`` gives the nested classes of the same version.
   Return ``Deferred(awaitable)`` to answer later without holding up the connection
   (JoinGroup waiting for members), ``None`` for no response.
3. Add the module name to ``handlers.HANDLER_MODULES``, and a row to docs/serve.md.

Servers in tests: ``tests/serve_fixtures.py`` (fixture ``serve``) starts ``fslog serve``
on a free 127.0.0.1 port and kills it at teardown.
"""

from .. import kio_import

kio_import.load()  # kio without hypothesis's start-up (see kio_import.py)

__all__ = ["ServeConfig", "Server", "serve"]


def __getattr__(name: str):
    # lazy: ``fslog status`` and ``fslog top`` read the registration without loading
    # asyncio and kio
    if name in __all__:
        from . import server
        return getattr(server, name)
    raise AttributeError(name)
