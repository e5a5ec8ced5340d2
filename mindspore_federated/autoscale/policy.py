"""The autoscaling policy: a pure function from load signals to a server count, with bounds, a hysteresis
band and a cooldown."""
import dataclasses
import math
from typing import Optional


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """min/max_servers bound every decision. A signal with target t asks for ceil(load / t) servers; the
    count changes only when the load per current server leaves [t * (1 - hysteresis), t * (1 + hysteresis)]
    and `cooldown_s` has passed since the last change (bounds are restored at once, cooldown or not).
    A target of 0 disables that signal."""

    min_servers: int = 1
    max_servers: int = 4
    target_devices_per_server: float = 100.0
    target_requests_per_server: float = 0.0
    target_cpu: float = 0.0
    hysteresis: float = 0.2
    cooldown_s: float = 30.0

    def __post_init__(self):
        if not 1 <= self.min_servers <= self.max_servers:
            raise ValueError(f"autoscale needs 1 <= min_servers <= max_servers, "
                             f"got {self.min_servers} and {self.max_servers}")
        if not 0 <= self.hysteresis < 1:
            raise ValueError(f"autoscale hysteresis must be in [0, 1), got {self.hysteresis}")
        targets = (self.target_devices_per_server, self.target_requests_per_server, self.target_cpu)
        if min(targets) < 0 or max(targets) == 0:
            raise ValueError("autoscale needs at least one positive target (devices, requests or CPU)")
        if self.cooldown_s < 0:
            raise ValueError(f"autoscale cooldown must be >= 0, got {self.cooldown_s}")


@dataclasses.dataclass(frozen=True)
class Signals:
    """One sample of the cluster's load: `servers` live now; devices of the latest iteration; device
    requests per second over the whole cluster; mean CPU of the servers (1.0 = one core busy). None: unknown."""

    servers: int
    devices_per_iteration: Optional[float] = None
    request_rate: Optional[float] = None
    cpu: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Decision:
    desired: int
    reason: str

    def changes(self, servers):
        return self.desired != servers


def _demands(cfg, s):
    """(signal name, total load, target per server) of every signal that is known and enabled."""
    cpu_total = None if s.cpu is None else s.cpu * max(s.servers, 1)
    rows = (("devices", s.devices_per_iteration, cfg.target_devices_per_server),
            ("requests", s.request_rate, cfg.target_requests_per_server),
            ("cpu", cpu_total, cfg.target_cpu))
    return [(name, float(load), target) for name, load, target in rows if load is not None and target > 0]


def decide(cfg: PolicyConfig, signals: Signals, now: float, last_change: Optional[float]) -> Decision:
    """The server count to run; `now` and `last_change` are seconds on one monotonic clock."""
    servers = signals.servers
    clamp = min(max(servers, cfg.min_servers), cfg.max_servers)
    if clamp != servers:
        return Decision(clamp, f"bounds [{cfg.min_servers}, {cfg.max_servers}]")
    demands = _demands(cfg, signals)
    if not demands:
        return Decision(servers, "no signal")
    wanted, why = servers, "within band"
    out = [(n, load, t) for n, load, t in demands if load / servers > t * (1 + cfg.hysteresis)]
    if out:
        name, load, target = max(out, key=lambda d: math.ceil(d[1] / d[2]))
        wanted, why = math.ceil(load / target), f"{name} {load:g} > {servers} x {target:g} + band"
    elif all(load / servers < t * (1 - cfg.hysteresis) for _, load, t in demands):
        need = max(max(1, math.ceil(load / t)) for _, load, t in demands)
        # scale in only as far as the remaining servers stay inside the band
        while need < servers and any(load / need > t * (1 + cfg.hysteresis) for _, load, t in demands):
            need += 1
        wanted, why = need, "load below band: " + ", ".join(f"{n} {load:g}" for n, load, _ in demands)
    wanted = min(max(wanted, cfg.min_servers), cfg.max_servers)
    if wanted == servers:
        return Decision(servers, why if not out else f"{why} (at max)")
    if last_change is not None and now - last_change < cfg.cooldown_s:
        return Decision(servers, f"cooldown ({cfg.cooldown_s - (now - last_change):.0f} s left), wants {wanted}")
    return Decision(wanted, why)
