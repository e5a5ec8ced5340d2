"""The YAML's `log_level` is applied by the scheduler and server processes at start-up (over the environment)."""
import signal

from tests.utils.cluster import start_server, write_yaml
from tests.utils.redis_server import free_port


def _info_lines(proc, text):
    return [line for line in proc.output().splitlines() if line.startswith("[INFO]") and text in line]


def _start_scheduler(procs, yaml_path, name, env):
    address = f"127.0.0.1:{free_port()}"
    proc = procs.python(name, "-m", "mindspore_federated.scheduler", "--yaml_config", yaml_path,
                        "--scheduler_manage_address", address, env=env)
    assert proc.wait_ready(timeout=20).endswith(f"READY scheduler {address}")
    return proc


def test_scheduler_uses_the_yaml_log_level(redis_server, fl_name, procs, tmp_path):
    # the "listening on" INFO line is logged just before the READY line, on the same pipe
    loud = write_yaml(tmp_path, redis_server.address, f"{fl_name}_loud", log_level="INFO")
    quiet = write_yaml(tmp_path, redis_server.address, f"{fl_name}_quiet", log_level="ERROR")
    loud_proc = _start_scheduler(procs, loud, "sched_loud", {"MSF_LOG_LEVEL": "ERROR"})
    quiet_proc = _start_scheduler(procs, quiet, "sched_quiet", {"MSF_LOG_LEVEL": "DEBUG"})
    assert len(_info_lines(loud_proc, "listening on")) == 1, loud_proc.output()
    for proc in (loud_proc, quiet_proc):
        proc.send(signal.SIGTERM)
        assert proc.wait_exit(timeout=10) == 0
    assert _info_lines(loud_proc, "scheduler stopping"), loud_proc.output()
    assert not [line for line in quiet_proc.output().splitlines() if line.startswith(("[INFO]", "[DEBUG]"))], \
        quiet_proc.output()


def test_server_uses_the_yaml_log_level(redis_server, fl_name, procs, tmp_path):
    loud = write_yaml(tmp_path, redis_server.address, f"{fl_name}_loud", log_level="INFO")
    quiet = write_yaml(tmp_path, redis_server.address, f"{fl_name}_quiet", log_level="ERROR")
    loud_proc, _ = start_server(procs, loud, tmp_path / "loud", name="server_loud", env={"MSF_LOG_LEVEL": "ERROR"})
    quiet_proc, _ = start_server(procs, quiet, tmp_path / "quiet", name="server_quiet",
                                 env={"MSF_LOG_LEVEL": "DEBUG"})
    assert "[INFO]" in loud_proc.wait_line("server started:", timeout=20)
    for proc in (loud_proc, quiet_proc):
        proc.send(signal.SIGTERM)
        assert proc.wait_exit(timeout=20) == 0
    assert _info_lines(loud_proc, "stop requested"), loud_proc.output()
    quiet_out = quiet_proc.output()
    assert "READY server" in quiet_out and "server started:" not in quiet_out, quiet_out
    assert not [line for line in quiet_out.splitlines() if line.startswith(("[INFO]", "[DEBUG]"))], quiet_out
