"""Role processes for system tests: start, readiness handshake, signals, and a no-leftovers check."""
import os
import signal
import subprocess
import sys
import threading
import time

from tests.utils.wait import WaitTimeout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RoleProcess:
    """A child process whose stdout+stderr lines are kept (and logged to a file) for inspection."""

    def __init__(self, args, name, log_dir, env=None, cwd=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.lines = []
        self._cond = threading.Condition()
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, f"{name}.log")
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=full_env, cwd=cwd or REPO, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self):
        return self.proc.pid

    def _read(self):
        with open(self.log_path, "a", encoding="utf-8") as log:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        self.proc.stdout.close()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, needle, timeout=30.0, start=0):
        """Waits until an output line (from index `start`) contains `needle`; returns that line."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if needle in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    tail = "\n".join(self.lines[-30:])
                    raise WaitTimeout(f"{self.name}: no line with {needle!r} within {timeout}s "
                                      f"(exit={self.proc.poll()}); output tail:\n{tail}")
                self._cond.wait(min(remaining, 0.2))

    def wait_ready(self, timeout=60.0):
        """Waits for the role's `READY` line and returns it."""
        return self.wait_line("READY ", timeout)

    def output(self):
        with self._cond:
            return "\n".join(self.lines)

    def alive(self):
        return self.proc.poll() is None

    def send(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=20.0):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=15.0):
        """SIGTERM, wait with a deadline, then SIGKILL. Returns the exit code."""
        if self.alive():
            self.send(signal.SIGCONT)
            self.send(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        return code

    def kill(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


class ProcessGroup:
    """Tracks every process a test starts; `close()` stops them and reports leftovers."""

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)
        self.procs = []

    def python(self, name, *args, env=None, cwd=None):
        """Starts `python <args>` with the repo on PYTHONPATH."""
        proc = RoleProcess([sys.executable, *args], name, self.log_dir, env=env, cwd=cwd)
        self.procs.append(proc)
        return proc

    def close(self):
        """Stops every process (SIGTERM, then SIGKILL); returns problems: processes that needed SIGKILL
        or whose process group still had members afterwards."""
        problems = []
        for proc in self.procs:
            if proc.alive():
                proc.send(signal.SIGCONT)
                proc.send(signal.SIGTERM)
                try:
                    proc.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    problems.append(f"{proc.name} ignored SIGTERM")
            proc.stop(timeout=1)
            if _group_alive(proc.pid):
                problems.append(f"{proc.name} left child processes")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return problems


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
