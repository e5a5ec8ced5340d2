"""Recovery-file policy: naming, ordering, rotation (keep 3) and choosing the newest loadable checkpoint."""
import datetime
import logging
import os
import re
import stat
import time

import numpy as np

from mindspore_federated.checkpoint.ckpt_format import load_checkpoint, save_checkpoint

__all__ = ["RecoveryCheckpoints"]

logger = logging.getLogger("mindspore_federated.checkpoint")

_TS_FORMAT = "%Y%m%d_%H%M%S"
_KEEP = 3
_STALE_TMP_SECONDS = 600


class RecoveryCheckpoints:
    """The recovery checkpoints of one fl_name in `checkpoint_dir` (spec §4.3).

    Files are named ``<fl_name>_recovery_iteration_<iteration>_<YYYYmmdd_HHMMSS>.ckpt`` and ordered by the
    timestamp in the name (ties, e.g. from foreign files, by mtime then iteration). ``save`` never reuses or
    goes back in time: when the current second is not newer than the newest existing file's timestamp it
    writes that timestamp + 1 s, so two saves in one second still sort in save order and the names keep
    the reference pattern. At most 3 files per fl_name are kept; other fl_names' files are never touched.
    Nothing is written when `checkpoint_dir` does not exist (as in the reference; the server creates the
    dir at start). Files carry MindSpore's CRC trailer, so bit rot and torn files are detected on loading.
    """

    def __init__(self, checkpoint_dir, fl_name):
        if not isinstance(fl_name, str) or "/" in fl_name or os.sep in fl_name or "\0" in fl_name:
            raise ValueError(f"invalid fl_name {fl_name!r}")
        self.checkpoint_dir = os.fspath(checkpoint_dir)
        self.fl_name = fl_name
        self._prefix = f"{fl_name}_recovery_iteration_"
        self._pattern = re.compile(re.escape(self._prefix) + r"(\d+)_(\d{8}_\d{6})\.ckpt")

    def _entries(self):
        """[(sort key, path)] of this fl_name's files, newest first."""
        found = []
        try:
            with os.scandir(self.checkpoint_dir) as it:
                for entry in it:
                    m = self._pattern.fullmatch(entry.name)
                    if not m:
                        continue
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found.append(((m.group(2), st.st_mtime_ns, int(m.group(1))), entry.path))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found.sort(reverse=True)
        return found

    def list(self):
        """Paths of this fl_name's recovery checkpoints, newest first."""
        return [path for _, path in self._entries()]

    def save(self, iteration, features):
        """Write a recovery checkpoint and prune to 3 files; returns its path, or "" if the dir is missing."""
        if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)) or iteration < 0:
            raise ValueError(f"iteration must be a non-negative int, got {iteration!r}")
        if not os.path.isdir(self.checkpoint_dir):
            return ""
        existing = self._entries()
        stamp = time.strftime(_TS_FORMAT, time.localtime())
        if existing and stamp <= existing[0][0][0]:
            newest = datetime.datetime.strptime(existing[0][0][0], _TS_FORMAT)
            stamp = (newest + datetime.timedelta(seconds=1)).strftime(_TS_FORMAT)
        path = os.path.join(self.checkpoint_dir, f"{self._prefix}{int(iteration)}_{stamp}.ckpt")
        save_checkpoint(path, features, crc_check=True)
        for _, old in self._entries()[_KEEP:]:
            _remove(old)
        self._remove_stale_temps()
        return path

    def newest(self, accept=None):
        """(path, float32 features) of the newest checkpoint that loads, or None.

        Unreadable, corrupt or empty files, and ones `accept(features)` rejects, are skipped with a warning.
        Pass an `accept` that checks the names/shapes you expect: a file cut exactly between two parameters
        still loads (MindSpore's CRC trailer is optional, so it is not required here, for compatibility with
        recovery files written by the reference).
        """
        for path in self.list():
            try:
                features = load_checkpoint(path)
            except (OSError, ValueError) as exc:
                logger.warning("skipping recovery checkpoint %s: %s", path, exc)
                continue
            if not features:
                logger.warning("skipping recovery checkpoint %s: no float32 parameters", path)
                continue
            if accept is not None and not accept(features):
                logger.warning("skipping recovery checkpoint %s: rejected by the caller", path)
                continue
            return path, features
        return None

    def _remove_stale_temps(self):
        """Temp files of this fl_name left by a crash mid-save (older than 10 min)."""
        tmp_prefix = "." + self._prefix
        cutoff = time.time() - _STALE_TMP_SECONDS
        try:
            with os.scandir(self.checkpoint_dir) as it:
                stale = [e.path for e in it if e.name.startswith(tmp_prefix) and e.name.endswith(".tmp")
                         and self._pattern.fullmatch(e.name[1:].rsplit(".", 2)[0])
                         and e.stat().st_mtime < cutoff]
        except OSError:
            return
        for path in stale:
            _remove(path)


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not delete old recovery checkpoint %s: %s", path, exc)
