"""Gate: which rounds are served in which engine state, and what a round script's status code means."""
import asyncio

import pytest

from mindspore_federated import errors
from mindspore_federated.errors import Unavailable
from mindspore_federated.server.engine.context import EngineContext
from mindspore_federated.server.engine.gate import Gate
from mindspore_federated.state.base import CountResult, Outcome
from mindspore_federated.state.keys import InstanceState
from tests.utils.engine import RecordingHooks, engine_config, peers_for, small_spec


def with_gate(check):
    async def scenario():
        async with peers_for(small_spec()) as peers:
            ctx = EngineContext(engine_config("gate"), None, small_spec(), None, "127.0.0.1:1", peers,
                                RecordingHooks())
            check(ctx, Gate(ctx))

    asyncio.run(asyncio.wait_for(scenario(), 20))


@pytest.mark.parametrize("flags, running_state, write_reply, read_reply", [
    ({}, InstanceState.RUNNING, None, None),
    ({"safemode": True}, InstanceState.RUNNING, errors.SAFEMODE, None),
    ({"cache_ok": False}, InstanceState.RUNNING, errors.SAFEMODE, None),
    ({"leaving": True}, InstanceState.RUNNING, errors.SAFEMODE, None),
    ({"stopping": True}, InstanceState.DISABLE, errors.SAFEMODE, None),
    ({}, InstanceState.DISABLE, errors.JOB_DISABLED, errors.JOB_DISABLED),
    ({}, InstanceState.FINISH, errors.JOB_DISABLED, None),
])
def test_gate(flags, running_state, write_reply, read_reply):
    def check(ctx, gate):
        for name, value in flags.items():
            setattr(ctx, name, value)
        ctx.running_state = running_state
        assert gate.check(read_only=False) == write_reply
        assert gate.check(read_only=True) == read_reply

    with_gate(check)


NOT_SERVING = [(Outcome.STATUS_LOST, errors.SAFEMODE), (Outcome.ITERATION_CHANGED, errors.SAFEMODE),
               (Outcome.NOT_RUNNING, errors.JOB_DISABLED)]


@pytest.mark.parametrize("outcome, reply", NOT_SERVING)
def test_a_stale_view_of_the_instance_is_answered_in_plain_text_and_syncs(outcome, reply):
    def check(ctx, gate):
        with pytest.raises(Unavailable) as raised:
            gate.check_state_result(CountResult(outcome))
        assert str(raised.value) == reply
        assert ctx.sync_wanted.is_set()

    with_gate(check)


def test_other_outcomes_are_the_round_s_to_interpret():
    def check(ctx, gate):
        others = [Outcome.ACCEPTED, Outcome.THRESHOLD_REACHED, Outcome.DUPLICATE, Outcome.LOCAL_ERROR]
        assert [gate.check_state_result(CountResult(o)) for o in others] == others
        assert not ctx.sync_wanted.is_set()

    with_gate(check)
