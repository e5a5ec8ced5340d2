"""The ClusterState contract of the device-PKI verbs (key-attestation certificates per iteration), on the
in-memory backend and a real redis-server."""
from tests.ut.python.state.test_contract import backend, run, started  # noqa: F401 - the fixture

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_key_attestations_are_kept_per_iteration_and_device(backend, fl_name):  # noqa: F811
    async def scenario():
        state, inst = await started(backend, fl_name)
        assert await state.key_attestation(inst, 1, "dev") is None
        await state.put_key_attestation(inst, 1, "dev", PEM)
        await state.put_key_attestation(inst, 1, "other", PEM + "x")
        assert await state.key_attestation(inst, 1, "dev") == PEM
        assert await state.key_attestation(inst, 1, "other") == PEM + "x"
        assert await state.key_attestation(inst, 2, "dev") is None       # a new iteration needs a new startFLJob
        assert await state.key_attestation("i_other", 1, "dev") is None  # and so does another instance
        await state.put_key_attestation(inst, 1, "dev", PEM + "y")       # a device re-proving replaces its key
        assert await state.key_attestation(inst, 1, "dev") == PEM + "y"
    run(backend, scenario)
