"""The event loop: the cluster's event channel, where servers announce aggregations and opened rounds."""
import asyncio

from redis.exceptions import RedisError

from mindspore_federated.log import get_logger

logger = get_logger(__name__)
RESUBSCRIBE_DELAY_S = 0.5


class EventLoop:
    """Subscribes to the event channel: an aggregation event starts the aggregation here, every other event
    triggers an immediate sync. Also publishes this server's opened rounds."""

    def __init__(self, ctx, windows, lifecycle):
        self.ctx = ctx
        self.windows = windows
        self.lifecycle = lifecycle

    def announce_round(self, name):
        """Tells every server at once that round `name` opened here (they read the start time from Redis)."""
        self.ctx.spawn(self._publish_round(name, self.ctx.iteration))

    async def _publish_round(self, name, iteration):
        ctx = self.ctx
        try:
            await ctx.state.publish({"event": "round", "instance": ctx.inst, "iteration": iteration,
                                     "round": name})
        except RedisError as exc:
            logger.debug("round event not published: %s", exc)

    async def run(self):
        ctx = self.ctx
        while not ctx.stopping:
            subscription = None
            try:
                subscription = await ctx.state.subscribe()
                while not ctx.stopping:
                    event = await subscription.get(timeout=1.0)
                    if event is not None:
                        self.on_event(event)
            except (RedisError, OSError) as exc:
                logger.debug("event subscription lost: %s", exc)
                await asyncio.sleep(RESUBSCRIBE_DELAY_S)
            finally:
                try:
                    if subscription is not None:
                        await subscription.aclose()
                except (RedisError, OSError):
                    pass

    def on_event(self, event):
        """Reacts to one event (a dict; {} for an unreadable one)."""
        ctx = self.ctx
        kind = event.get("event")
        if kind == "aggregate" and event.get("instance") == ctx.inst:
            ctx.spawn(self.lifecycle.aggregate(int(event["iteration"])))
        elif kind == "round" and event.get("instance") == ctx.inst:
            if event.get("iteration") == ctx.iteration and event.get("round") not in self.windows.starts:
                ctx.request_sync()  # the start time is read from Redis's timer hash
        else:
            ctx.request_sync()
