"""Process exit codes: one range per role, each with a help text."""

# Role -> the exit codes it may use besides 0. A code belongs to the role its name starts with
# (SCHEDULER_, SERVER_, WORKER_); every other non-zero code is common to all roles.
RANGES = {
    "scheduler": range(100, 120),
    "server": range(120, 140),
    "worker": range(140, 160),
    "common": range(160, 180),
}


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
    INTERRUPTED = 163


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


def codes():
    """Every declared exit code, name -> value."""
    return {k: v for k, v in vars(ExitCode).items() if k.isupper() and isinstance(v, int)}


def role_of(name):
    """The role whose range the code `name` must lie in ('common' unless the name carries a role prefix)."""
    prefix = name.split("_", 1)[0].lower()
    return prefix if prefix in RANGES and prefix != "common" else "common"


def describe(code):
    """Help text for an exit code."""
    return HELP.get(code, "unknown exit code")
