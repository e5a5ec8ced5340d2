"""`pip install .` (non-editable) must ship a working `mindspore_federated._core`.

Builds a real wheel from the source tree with the real CMake path of setup.py (not the prebuilt copy that
./build.sh uses for the editable install), installs it into a throw-away `--target` directory and imports
the extension from a directory outside the repository, so neither the source tree nor the editable
install can satisfy the import.
"""
import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WHEEL_TIMEOUT_S = 240  # a cold CMake build of the core on 2 cores takes ~2 min; incremental ~20 s
STEP_TIMEOUT_S = 60


def _package_data():
    """setup.py's PACKAGE_DATA globs, read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        targets = [getattr(t, "id", None) for t in getattr(node, "targets", ())]
        if isinstance(node, ast.Assign) and "PACKAGE_DATA" in targets:
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no PACKAGE_DATA")


def test_package_data_globs_match_files_of_the_tree():
    package = ROOT / "mindspore_federated"
    for pattern in _package_data():
        assert list(package.glob(pattern)), f"setup.py ships {pattern!r}, which matches no file"


def _run(cmd, timeout, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.timeout(WHEEL_TIMEOUT_S + 3 * STEP_TIMEOUT_S)
def test_wheel_installs_an_importable_core(tmp_path):
    wheel_dir, target, outside = tmp_path / "wheel", tmp_path / "target", tmp_path / "elsewhere"
    outside.mkdir()
    env = dict(os.environ)
    env.pop("MSF_CORE_PREBUILT", None)  # exercise the CMake build of setup.py, not the in-place copy
    env.pop("PYTHONPATH", None)
    # setuptools' staging dirs (build/lib.*, build/bdist.*) go to tmp_path, so stale files left in the
    # repository's build/ by an earlier `pip install .` cannot end up in (and mask a bug in) this wheel.
    cfg = tmp_path / "setuptools.cfg"
    cfg.write_text(f"[build]\nbuild_base = {tmp_path / 'setuptools-build'}\n")
    env["DIST_EXTRA_CONFIG"] = str(cfg)
    _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "-w", str(wheel_dir)], WHEEL_TIMEOUT_S, env=env, cwd=outside)

    wheels = list(wheel_dir.glob("mindspore_federated-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
    cores = [n for n in names if Path(n).name.startswith("_core") and n.endswith(".so")]
    assert len(cores) == 1 and Path(cores[0]).parent == Path("mindspore_federated"), cores
    for pattern in _package_data():   # every shipped data file of the tree is in the wheel
        for path in (ROOT / "mindspore_federated").glob(pattern):
            assert path.relative_to(ROOT).as_posix() in names, path

    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--disable-pip-version-check",
          "--target", str(target), str(wheels[0])], STEP_TIMEOUT_S, env=env, cwd=outside)

    env["PYTHONPATH"] = str(target)
    probe = ("import numpy as np, mindspore_federated._core as c; a = np.zeros(3, np.float32); "
             "c.accumulate(a, np.ones(3, np.float32)); assert a.tolist() == [1.0, 1.0, 1.0]; print(c.__file__)")
    out = _run([sys.executable, "-c", probe], STEP_TIMEOUT_S, env=env, cwd=outside).stdout.strip().splitlines()[-1]
    core_file = Path(out).resolve()
    assert core_file.is_relative_to(target.resolve()), core_file
    assert core_file.parent == (target / "mindspore_federated").resolve()
