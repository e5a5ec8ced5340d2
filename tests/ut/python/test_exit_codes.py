"""Exit codes: each role's codes lie in its own range, no two non-zero codes collide, all have help."""
from mindspore_federated import exit_codes
from mindspore_federated.exit_codes import RANGES, ExitCode, codes, describe, role_of


def test_ranges_are_disjoint_and_fit_a_byte():
    seen = set()
    for role, rng in RANGES.items():
        assert 0 < rng.start and rng.stop <= 256, role
        assert not seen & set(rng), f"{role} overlaps another role's range"
        seen |= set(rng)


def test_each_code_is_in_its_roles_range():
    by_role = {}
    for name, value in codes().items():
        if value == 0:
            assert name in ("SUCCESS", "GRACEFUL_STOP"), name
            continue
        role = role_of(name)
        by_role.setdefault(role, []).append(name)
        assert value in RANGES[role], f"{name}={value} is outside the {role} range {RANGES[role]}"
    # every role in use has at least one code; the prefixes are recognised
    assert {"scheduler", "server", "worker", "common"} <= set(by_role), by_role
    assert role_of("SERVER_FATAL") == "server" and role_of("INTERRUPTED") == "common"


def test_non_zero_codes_are_unique_and_described():
    nonzero = {n: v for n, v in codes().items() if v != 0}
    values = list(nonzero.values())
    assert len(values) == len(set(values)), sorted(nonzero.items(), key=lambda kv: kv[1])
    for name, value in codes().items():
        assert describe(value) != "unknown exit code", name
    assert set(exit_codes.HELP) == set(codes().values())


def test_interrupted_is_common_not_server():
    assert ExitCode.INTERRUPTED in RANGES["common"]
    assert ExitCode.INTERRUPTED not in RANGES["server"]
