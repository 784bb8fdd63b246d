"""InitProducerId (key 22), v0-4: a producer id for an idempotent producer.

A new producer gets a fresh id with epoch 0 (``ProducerStates.allocate_id``); one that
sends its current id and epoch (v3+, KIP-360, after an error it cannot otherwise get
past) gets the same id with the next epoch, which resets its sequences. Transactional
producers (a transactional id) get TRANSACTIONAL_ID_AUTHORIZATION_FAILED: fslog serve
has no transactions, and logs that.
"""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode

from .handlers import RequestContext, handles
from .protocol import build

_ZERO = datetime.timedelta(0)
MAX_EPOCH = 32767


@handles(22)
async def init_producer_id(ctx: RequestContext, request):
    cls = ctx.response_class()
    if request.transactional_id is not None:
        ctx.log.warning("serve: %s: InitProducerId for transactional id %r refused: fslog "
                        "serve does not support transactions (use an idempotent producer)",
                        ctx.connection.peer, request.transactional_id)
        return build(cls, throttle_time=_ZERO,
                     error_code=ErrorCode.transactional_id_authorization_failed,
                     producer_id=-1, producer_epoch=-1)
    pid = getattr(request, "producer_id", -1)
    epoch = getattr(request, "producer_epoch", -1)
    if pid >= 0 and 0 <= epoch < MAX_EPOCH:
        return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none, producer_id=pid,
                     producer_epoch=epoch + 1)
    pid = await ctx.run(ctx.server.producers.allocate_id)
    return build(cls, throttle_time=_ZERO, error_code=ErrorCode.none, producer_id=pid,
                 producer_epoch=0)
