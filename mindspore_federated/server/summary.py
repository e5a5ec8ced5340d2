"""Per-iteration statistics of one server, and the cluster summary files: metrics.json and event.txt."""
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields

from mindspore_federated.clock import local_time_ms


@dataclass
class IterationStats:
    """What one server saw during one iteration (summed across servers by the summary writer)."""

    start_total: int = 0
    start_accept: int = 0
    update_total: int = 0
    update_accept: int = 0
    get_total: int = 0
    get_accept: int = 0
    loss_sum: float = 0.0        # Σ upload_loss · data_size
    loss_weight: float = 0.0     # Σ data_size
    acc_sum: float = 0.0         # Σ upload_accuracy · eval_data_size
    acc_weight: float = 0.0      # Σ eval_data_size
    level1: int = 0
    level2: int = 0
    level3: int = 0
    start_ms: int = 0            # first startFLJob of the iteration (0: none)
    pushed_loss: float = float("nan")
    pushed_accuracy: float = float("nan")

    def count_reply(self, counter):
        """One more reply in `counter` (e.g. "start_total" for a rejected startFLJob body, spec §8.2)."""
        setattr(self, counter, getattr(self, counter) + 1)

    def record_update(self, data_size, eval_size, loss, accuracy, cost_ms, levels_ms):
        self.loss_sum += float(loss) * data_size
        self.loss_weight += data_size
        self.acc_sum += float(accuracy) * eval_size
        self.acc_weight += eval_size
        bounds = (levels_ms[0], levels_ms[1], float("inf"))
        self.level1 += cost_ms < bounds[0]
        self.level2 += cost_ms < bounds[1]
        self.level3 += 1

    def to_dict(self):
        return asdict(self)

    @classmethod
    def total(cls, dicts):
        out = cls()
        names = [f.name for f in fields(cls)]
        for d in dicts:
            for name in names:
                if name == "start_ms":
                    starts = [v for v in (out.start_ms, d.get(name, 0)) if v]
                    out.start_ms = min(starts) if starts else 0
                elif name.startswith("pushed_"):
                    if d.get(name) == d.get(name):  # not NaN
                        setattr(out, name, d[name])
                else:
                    setattr(out, name, getattr(out, name) + d.get(name, 0))
        return out


def metrics_line(stats, *, fl_name, instance, status_name, fl_iteration_num, iteration, success, end_ms, hybrid):
    """One metrics.json object (keys sorted as the reference writes them)."""
    start_ms = stats.start_ms or end_ms
    if hybrid:
        loss, auc = stats.pushed_loss, stats.pushed_accuracy
    else:
        loss = stats.loss_sum / stats.loss_weight if stats.loss_weight else 0.0
        auc = stats.acc_sum / stats.acc_weight if stats.acc_weight else 0.0
    # JSON has no NaN/Infinity: an iteration without pushed metrics (hybrid) reports 0, like FL without
    # updates
    loss, auc = (float(v) if math.isfinite(v) else 0.0 for v in (loss, auc))
    visited = {
        "startFLJobTotalClientNum": stats.start_total, "startFLJobAcceptClientNum": stats.start_accept,
        "startFLJobRejectClientNum": stats.start_total - stats.start_accept,
        "updateModelTotalClientNum": stats.update_total, "updateModelAcceptClientNum": stats.update_accept,
        "updateModelRejectClientNum": stats.update_total - stats.update_accept,
        "getModelTotalClientNum": stats.get_total, "getModelAcceptClientNum": stats.get_accept,
        "getModelRejectClientNum": stats.get_total - stats.get_accept,
        "participationTimeLevel1": stats.level1, "participationTimeLevel2": stats.level2,
        "participationTimeLevel3": stats.level3,
    }
    return {
        "clientVisitedInfo": visited, "currentIteration": iteration, "endTime": local_time_ms(end_ms),
        "flIterationNum": fl_iteration_num, "flName": fl_name, "instanceName": instance,
        "instanceStatus": status_name, "iterationExecutionTime": max(0, int(end_ms - start_ms)),
        "iterationResult": "success" if success else "fail", "metricsAuc": auc, "metricsLoss": loss,
        "startTime": local_time_ms(start_ms),
    }


def append_json_line(path, obj):
    """Appends one JSON line (creating the directory)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")


def ensure_file(path):
    """Creates `path` (and its folder) if missing, leaving an existing file untouched."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8"):
        pass


def append_failure_event(path, tcp_address, failures):
    """event.txt line after `failures` consecutive failed iterations."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    line = (f"nodeRole:SERVER,{tcp_address},currentTime:{local_time_ms(time.time() * 1000)},"
            f"event:Iteration failed {failures} times continuously;\n")
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def parse_participation_levels(text):
    """`"a,b"` minutes (0<a<b<=2880) -> (a_ms, b_ms); invalid text falls back to 5,15."""
    try:
        a, b = (int(x) for x in str(text).split(","))
        if 0 < a < b <= 2880:
            return a * 60_000, b * 60_000
    except ValueError:
        pass
    return 5 * 60_000, 15 * 60_000
