"""The autoscaling policy as a pure function: bounds, hysteresis band, cooldown, several signals."""
import pytest

from mindspore_federated.autoscale import PolicyConfig, Signals, decide

CFG = PolicyConfig(min_servers=1, max_servers=4, target_devices_per_server=10, hysteresis=0.2, cooldown_s=30)


def d(servers, devices, now=100.0, last=None, cfg=CFG, **kw):
    return decide(cfg, Signals(servers=servers, devices_per_iteration=devices, **kw), now, last).desired


def test_scales_out_to_the_target_above_the_band():
    assert d(1, 12) == 1           # 12 <= 10 * 1.2: inside the band
    assert d(1, 13) == 2
    assert d(2, 35) == 4


def test_scales_in_only_below_the_band_and_keeps_the_rest_inside_it():
    assert d(3, 25) == 3           # 8.3 per server >= 8: inside
    assert d(3, 23) == 3           # 7.7 per server is below the band, but ceil(23 / 10) = 3 already
    assert d(4, 22) == 3
    assert d(4, 5) == 1


def test_bounds_win_over_everything():
    assert d(0, 0) == 1
    assert d(6, 60, last=99.0) == 4
    assert d(4, 400) == 4


def test_cooldown_holds_a_change():
    assert d(1, 40, now=100.0, last=80.0) == 1
    assert d(1, 40, now=111.0, last=80.0) == 4


def test_no_signal_holds():
    assert d(2, None) == 2


def test_the_most_demanding_signal_wins():
    cfg = PolicyConfig(min_servers=1, max_servers=8, target_devices_per_server=10, target_requests_per_server=50,
                       hysteresis=0.1, cooldown_s=0)
    assert d(1, 5, cfg=cfg, request_rate=300) == 6
    assert d(6, 5, cfg=cfg, request_rate=40) == 1


@pytest.mark.parametrize("kw", [dict(min_servers=0), dict(min_servers=3, max_servers=2), dict(hysteresis=1.0),
                                dict(target_devices_per_server=0), dict(cooldown_s=-1)])
def test_bad_config_is_refused(kw):
    with pytest.raises(ValueError):
        PolicyConfig(**kw)
