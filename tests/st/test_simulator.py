"""The device simulator CLI (`python -m mindspore_federated.client.simulator`) against real servers: N devices for
K iterations spread over two servers, one summary line per iteration, every new model checked (w + delta)."""
import re

from tests.utils.cluster import start_server, write_yaml
from tests.utils.multi import ENTRY

DEVICES, ITERATIONS = 12, 3


def test_simulator_trains_iterations_over_two_servers(tmp_path, redis_server, fl_name, procs):
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": DEVICES, "update_model_ratio": 1.0})
    addresses = [start_server(procs, yaml_path, tmp_path / f"srv{i}", name=f"server{i}", entry=ENTRY)[1]
                 for i in range(2)]
    sim = procs.python("simulator", "-m", "mindspore_federated.client.simulator",
                       "--servers", ",".join(f"http://{a}" for a in addresses), "--fl-name", fl_name,
                       "--devices", str(DEVICES), "--iterations", str(ITERATIONS), "--delta", "0.25",
                       "--retry-delay", "0.05", "--iteration-timeout", "60", "--no-progress")
    sim.wait_line(f"iteration={ITERATIONS} ", timeout=120)
    assert sim.wait_exit(10) == 0, "\n".join(sim.lines)
    summaries = [line for line in sim.lines if line.startswith("iteration=")]
    assert len(summaries) == ITERATIONS, sim.lines
    assert not any("turned away by startFLJob" in line for line in sim.lines)   # devices == threshold
    for index, line in enumerate(summaries, start=1):
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        assert fields["iteration"] == str(index) and fields["server_iteration"] == str(index), line
        assert (fields["accepted"], fields["failures"], fields["mismatched"]) == (str(DEVICES), "0", "0"), line


def test_simulator_warns_when_more_devices_run_than_the_cluster_admits(tmp_path, redis_server, fl_name,
                                                                       procs):
    from mindspore_federated import errors

    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": 2, "update_model_ratio": 1.0,
                                  "start_fl_job_time_window": 2000, "update_model_time_window": 2000,
                                  "global_iteration_time_window": 4000})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    sim = procs.python("simulator", "-m", "mindspore_federated.client.simulator", "--servers", f"http://{address}",
                       "--fl-name", fl_name, "--devices", "3", "--iterations", "1", "--retry-delay", "0.05",
                       "--max-restart-wait", "1", "--iteration-timeout", "15", "--no-progress")
    warning = errors.SIM_OVER_ADMISSION.format(turned_away=1, devices=3)
    sim.wait_line(warning, timeout=120)
    summary = next(line for line in sim.lines if line.startswith("iteration="))
    assert dict(re.findall(r"(\w+)=(\S+)", summary))["server_iteration"].startswith("1"), summary
    sim.wait_exit(30)


def test_simulator_compress_trains_with_both_compressions(tmp_path, redis_server, fl_name, procs):
    """--compress: QUANT downloads and DIFF_SPARSE_QUANT uploads against a cluster configured for both."""
    devices = 4
    yaml_path = write_yaml(tmp_path, redis_server.address, fl_name, fl_iteration_num=10,
                           round={"start_fl_job_threshold": devices, "update_model_ratio": 1.0},
                           compression={"upload_compress_type": "DIFF_SPARSE_QUANT", "upload_sparse_rate": 0.4,
                                        "download_compress_type": "QUANT"})
    _, address = start_server(procs, yaml_path, tmp_path / "srv", entry=ENTRY)
    sim = procs.python("simulator", "-m", "mindspore_federated.client.simulator", "--servers", f"http://{address}",
                       "--fl-name", fl_name, "--devices", str(devices), "--iterations", "2", "--compress",
                       "--retry-delay", "0.05", "--iteration-timeout", "60", "--no-progress")
    sim.wait_line("iteration=2 ", timeout=120)
    assert sim.wait_exit(10) == 0, "\n".join(sim.lines)
    for line in (x for x in sim.lines if x.startswith("iteration=")):
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        assert (fields["accepted"], fields["failures"]) == (str(devices), "0"), line
