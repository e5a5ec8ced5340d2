"""The adaptive-sync rule on a hand-checked sequence (one weight of one element, EMA alpha 0.5)."""
import numpy as np
import pytest

from mindspore_federated.trainer.adaptive import AdaptiveSync


def _round(rule, g, a):
    return rule.observe({"w": np.array([g])}, {"w": np.array([a])})


def test_frequency_follows_the_rule_on_a_hand_checked_sequence():
    rule = AdaptiveSync(8, ema_alpha=0.5, observation_window_size=2, frequency_increase_ratio=2)
    # round 0: ema g 0.5, ema |g| 1.0 -> 0.5, the first low (rate starts at 1.1)
    assert _round(rule, 1, 2) == 8 and rule.last_rate == pytest.approx(0.5)
    assert (rule.min_rate, rule.min_round) == (pytest.approx(0.5), 0)
    # rounds 1, 2: 0.75 then 0.875, no new low, 1 and 2 rounds since it: not more than the window (2)
    assert _round(rule, 1, 1) == 8 and rule.last_rate == pytest.approx(0.75)
    assert _round(rule, 1, 1) == 8 and rule.last_rate == pytest.approx(0.875)
    # round 3: 3 rounds since the low > 2: frequency ceil(8 / 2) = 4, window 4, statistics reset
    assert _round(rule, 1, 1) == 4
    assert (rule.min_rate, rule.min_round, rule.window, rule.ema) == (1.1, 3, 4, {})
    # round 4 (fresh EMA): 0.5 / 2 = 0.25, a new low at round 4
    assert _round(rule, 1, 4) == 4 and rule.last_rate == pytest.approx(0.25)
    # rounds 5..8: 0.5, 0.7, 0.8333, 0.9118; 1..4 rounds since the low: not more than 4
    for expected in (0.75 / 1.5, 0.875 / 1.25, 0.9375 / 1.125, 0.96875 / 1.0625):
        assert _round(rule, 1, 1) == 4 and rule.last_rate == pytest.approx(expected)
    # round 9: 5 rounds since the low > 4: frequency ceil(4 / 2) = 2, window 8
    assert _round(rule, 1, 1) == 2 and rule.window == 8


def test_a_new_low_keeps_the_frequency_and_odd_frequencies_round_up():
    rule = AdaptiveSync(5, ema_alpha=0.5, observation_window_size=1, frequency_increase_ratio=2)
    assert [_round(rule, 1, a) for a in (1, 2, 4, 8)] == [5, 5, 5, 5]   # falling rate: a new low each round
    assert _round(rule, 8, 8) == 5 and _round(rule, 8, 8) == 3          # 2 rounds without a low > 1: ceil(5/2)


def test_unchanged_round_and_frequency_one_hold_it():
    rule = AdaptiveSync(8, ema_alpha=0.5, observation_window_size=1, unchanged_round=10)
    assert [_round(rule, 1, 1) for _ in range(6)] == [8] * 6
    one = AdaptiveSync(1, ema_alpha=0.5, observation_window_size=1)
    assert [_round(one, 1, 1) for _ in range(6)] == [1] * 6


@pytest.mark.parametrize("kwargs", [{"ema_alpha": 1.0}, {"ema_alpha": 0.0}, {"observation_window_size": 0},
                                    {"frequency_increase_ratio": 0}, {"unchanged_round": -1},
                                    {"min_consistent_rate": -0.1}, {"observation_window_size": True}])
def test_bad_kwargs_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AdaptiveSync(4, **kwargs)
