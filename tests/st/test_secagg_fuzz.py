"""Mutated bodies against every cipher endpoint of a live PW_ENCRYPT server: error replies only, the server
stays up and logs no traceback, and a real PW iteration afterwards gives the exact FedAvg.
(bench/secagg_fuzz.py runs the same with --count 10000.)"""
import asyncio

from tests.utils.cipher_fuzz import fuzz
from tests.utils.cluster import health, start_server, write_yaml
from tests.utils.multi import ENTRY
from tests.utils.secagg import fedavg, pw_section, run_devices

PER_ENDPOINT = 500


def test_cipher_endpoints_answer_mutations_with_errors_only(tmp_path, redis_server, fl_name, procs):
    import numpy as np

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, encrypt=pw_section(t=1),
                           round={"start_fl_job_threshold": 2, "update_model_ratio": 1.0})
    proc, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    sent, problems = asyncio.run(fuzz(f"http://{address}", PER_ENDPOINT))
    assert sent == 8 * PER_ENDPOINT and not problems, problems[:5]
    assert health(address)["iteration"] == 1 and "Traceback" not in proc.output()
    sizes = [2, 5]
    outcomes = asyncio.run(run_devices([f"http://{address}"], fl_name, sizes))
    start = {"w1": np.arange(6, dtype=np.float32), "b1": np.zeros(3, np.float32)}
    expected = fedavg(start, [0, 1], sizes)
    for name in start:
        np.testing.assert_allclose(outcomes[0].model[name], expected[name], rtol=1e-4, atol=1e-4)
