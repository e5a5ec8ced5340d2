"""Process identity for the `processes` registry, so finish_cloud.py stops exactly the registered processes.

Contract for every role process (scheduler, server, worker): at start-up HSET
`Keys(fl_name).processes` field `<node id>` to `registration_json(role, ...)`, i.e. a JSON object

    {"pid": int, "host": str, "start_time": int, "boot_id": str, "role": "SCHEDULER"|"SERVER"|"WORKER", ...}

(`start_time` is field 22 of /proc/<pid>/stat, in clock ticks since boot; `boot_id` is
/proc/sys/kernel/random/boot_id). Extra keys (e.g. "address") are allowed. HDEL the field at stop.
finish_cloud.py only signals a PID whose host, boot id and start time all match, so a stale entry
(process gone, or PID reused by an unrelated process) is never acted upon. Entries without
`start_time` cannot be verified and are skipped with a warning.
"""
import json
import os
import socket

ALIVE = "alive"
GONE = "gone"
REUSED = "reused"
FOREIGN = "foreign"
UNVERIFIABLE = "unverifiable"


def local_host() -> str:
    """The host name recorded in registrations (compared by finish_cloud.py)."""
    return socket.gethostname()


def boot_id() -> str:
    """This boot's id ("" when /proc does not provide it)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _stat_fields(pid: int):
    """Fields of /proc/<pid>/stat after the command name (index 0 = state), or None if gone."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            raw = f.read()
    except (OSError, ValueError):
        return None
    return raw[raw.rfind(b")") + 2:].split()


def start_time(pid: int):
    """Start time of `pid` in clock ticks since boot, or None if there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (a zombie has already exited)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in (b"Z", b"X")


def process_identity(pid=None) -> dict:
    """{"pid", "host", "start_time", "boot_id"} of `pid` (default: this process)."""
    pid = os.getpid() if pid is None else int(pid)
    return {"pid": pid, "host": local_host(), "start_time": start_time(pid), "boot_id": boot_id()}


def registration(role: str, pid=None, **extra) -> dict:
    """The registration object of a role process: its identity plus `role` and any extra keys."""
    return {**process_identity(pid), "role": role, **extra}


def registration_json(role: str, pid=None, **extra) -> str:
    """`registration(...)` serialised, the value to HSET into the `processes` hash."""
    return json.dumps(registration(role, pid, **extra), sort_keys=True)


def classify(entry: dict) -> str:
    """ALIVE if `entry` still names a running process on this host, else why not."""
    if entry.get("host") != local_host():
        return FOREIGN
    if entry.get("boot_id") and boot_id() and entry["boot_id"] != boot_id():
        return GONE
    try:
        pid = int(entry["pid"])
    except (KeyError, TypeError, ValueError):
        return UNVERIFIABLE
    if pid <= 0 or not is_running(pid):
        return GONE
    if entry.get("start_time") is None:
        return UNVERIFIABLE
    return ALIVE if start_time(pid) == int(entry["start_time"]) else REUSED
