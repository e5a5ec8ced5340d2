"""Process exit codes: one range per role, each with a help text."""


class ExitCode:
    """0 success, 100-119 scheduler, 120-139 server, 140-159 worker, 160-179 common (all < 256)."""

    SUCCESS = 0
    GRACEFUL_STOP = 0
    SCHEDULER_START_FAILED = 100
    SERVER_START_FAILED = 120
    SERVER_FATAL = 121
    WORKER_START_FAILED = 140
    CONFIG_ERROR = 160
    REDIS_UNREACHABLE = 161
    LOCAL_CLUSTER_FAILED = 162
    INTERRUPTED = 130


HELP = {
    ExitCode.SUCCESS: "stopped normally",
    ExitCode.SCHEDULER_START_FAILED: "the scheduler could not start (address in use, Redis, config)",
    ExitCode.SERVER_START_FAILED: "the server could not start (config, Redis, model mismatch, TLS material)",
    ExitCode.SERVER_FATAL: "the server stopped on an unrecoverable error",
    ExitCode.WORKER_START_FAILED: "the worker could not start",
    ExitCode.CONFIG_ERROR: "the YAML configuration is invalid; every problem is listed above",
    ExitCode.REDIS_UNREACHABLE: "Redis could not be reached within the start-up deadline",
    ExitCode.LOCAL_CLUSTER_FAILED: "the local cluster could not be brought up",
    ExitCode.INTERRUPTED: "interrupted by the user",
}


def describe(code):
    """Help text for an exit code."""
    return HELP.get(code, "unknown exit code")
