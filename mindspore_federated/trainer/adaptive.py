"""Adaptive synchronisation: lowers the number of local steps between syncs when the updates agree.

Consistency of a sync round: per element, |EMA of the global update| / EMA of the summed magnitudes of the
local updates (1 where that is 0), averaged over the model. The round with the lowest consistency seen so
far is remembered; when `observation_window_size` rounds pass without a new low (and the frequency is
above 1 and past `unchanged_round`), the frequency is divided by `frequency_increase_ratio` (rounded up),
the window grows by the same ratio and the statistics start afresh."""
import numpy as np

from mindspore_federated import errors

RESET_RATE = 1.1   # above any reachable consistency: the next round always sets a new low

DEFAULTS = {"min_consistent_rate": 1.1, "min_consistent_rate_at_round": 0, "ema_alpha": 0.5,
            "observation_window_size": 5, "frequency_increase_ratio": 2, "unchanged_round": 0}


def _check(name, value, ok, what):
    if isinstance(value, bool) or not ok(value):
        raise ValueError(errors.WORKER_ARG.format(name=name, what=what, value=value))
    return value


def check_kwargs(kwargs):
    """The adaptive-sync settings from FederatedLearningManager's kwargs, validated (ValueError)."""
    v = {**DEFAULTS, **{k: kwargs[k] for k in DEFAULTS if k in kwargs}}
    num = (int, float)
    _check("min_consistent_rate", v["min_consistent_rate"], lambda x: isinstance(x, num) and x >= 0, "a float >= 0")
    _check("min_consistent_rate_at_round", v["min_consistent_rate_at_round"],
           lambda x: isinstance(x, int) and x >= 0, "an int >= 0")
    _check("ema_alpha", v["ema_alpha"], lambda x: isinstance(x, num) and 0 < x < 1, "a float in (0, 1)")
    _check("observation_window_size", v["observation_window_size"], lambda x: isinstance(x, int) and x > 0,
           "an int > 0")
    _check("frequency_increase_ratio", v["frequency_increase_ratio"], lambda x: isinstance(x, int) and x > 0,
           "an int > 0")
    _check("unchanged_round", v["unchanged_round"], lambda x: isinstance(x, int) and x >= 0, "an int >= 0")
    return v


class AdaptiveSync:
    """The rule's state; `observe(grads, abs_grads)` after each sync returns the (possibly new) frequency.

    grads:     name -> Σ of the participants' updates (new global − last global) · participants
    abs_grads: name -> Σ of the magnitudes of the participants' updates"""

    def __init__(self, sync_frequency, **kwargs):
        v = check_kwargs(kwargs)
        self.sync_frequency = int(sync_frequency)
        self.min_rate = float(v["min_consistent_rate"])
        self.min_round = int(v["min_consistent_rate_at_round"])
        self.alpha = float(v["ema_alpha"])
        self.window = int(v["observation_window_size"])
        self.ratio = int(v["frequency_increase_ratio"])
        self.unchanged_round = int(v["unchanged_round"])
        self.round_id = 0
        self.ema = {}
        self.abs_ema = {}
        self.last_rate = None

    def consistency(self, grads, abs_grads):
        a = self.alpha
        total, size = 0.0, 0
        for name, g in grads.items():
            g = np.asarray(g, np.float64)
            ema = self.ema[name] = a * self.ema.get(name, 0.0) + (1 - a) * g
            abs_ema = self.abs_ema[name] = a * self.abs_ema.get(name, 0.0) + (1 - a) * np.asarray(
                abs_grads[name], np.float64)
            base = np.where(abs_ema == 0, 1.0, abs_ema)
            total += float(np.sum(np.abs(ema) / base))
            size += g.size
        return total / max(size, 1)

    def observe(self, grads, abs_grads):
        """One sync round's statistics; returns the sync frequency for the next rounds."""
        rate = self.last_rate = self.consistency(grads, abs_grads)
        if rate < self.min_rate:
            self.min_rate, self.min_round = rate, self.round_id
        elif (self.round_id - self.min_round > self.window and self.sync_frequency > 1
              and self.round_id > self.unchanged_round):
            self.sync_frequency = -(-self.sync_frequency // self.ratio)
            self.min_rate, self.min_round = RESET_RATE, self.round_id
            self.window *= self.ratio
            self.ema.clear()
            self.abs_ema.clear()
        self.round_id += 1
        return self.sync_frequency
