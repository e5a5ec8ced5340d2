#!/usr/bin/env bash
# One driver for mindspore_federated: set-up, build, test, run, bench, lint, clean.
#   ./build.sh            set up (apt + venv + pip) and build the C++ core (idempotent)
#   ./build.sh run        the main job: a local cluster training LeNet on digits
#   ./build.sh test       C++ tests (ctest) + Python tests (pytest)
#   ./build.sh bench      benchmarks under bench/
#   ./build.sh lint       static checks: ruff (pyproject.toml), clang-format (.clang-format) on the C++
#   ./build.sh clean      remove build outputs (keeps the venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="${MSF_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
BUILD_DIR="$ROOT/build"
APT_PKGS=(g++ cmake ninja-build libssl-dev redis-server redis-tools flatbuffers-compiler libflatbuffers-dev libgtest-dev clang-format chromium)
PIP_PKGS=(numpy pyyaml "aiohttp>=3.9" "redis>=5" hiredis cryptography "flatbuffers>=23" "pybind11>=2.12"
          uvloop httptools setuptools wheel pytest pytest-timeout scikit-learn "mindspore==2.10.0" "ruff==0.16.9"
          prometheus-client playwright kubernetes kubernetes-validate)

log() { printf '[build.sh] %s\n' "$*" >&2; }

need_apt() {
  local missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

need_venv() {
  if [ ! -x "$PY" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.deps-$(printf '%s\n' "${PIP_PKGS[@]}" | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    log "pip install ${PIP_PKGS[*]}"
    "$PY" -m pip install -q --disable-pip-version-check "${PIP_PKGS[@]}" 2>&1 | grep -v "is ignored: it is neither" || true
    "$PY" -c "import numpy, yaml, aiohttp, redis, flatbuffers, pybind11, mindspore" >/dev/null
    touch "$stamp"
  fi
}

build_core() {
  local pbdir; pbdir="$("$PY" -c 'import pybind11; print(pybind11.get_cmake_dir())')"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTS=ON \
        -DPython_EXECUTABLE="$PY" -Dpybind11_DIR="$pbdir" >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)"
  MSF_CORE_PREBUILT=1 "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT" 2>&1 \
     | grep -v "is ignored: it is neither" || true
}

setup() { need_apt; need_venv; build_core; }

cmd="${1:-build}"; shift || true
case "$cmd" in
  build|setup) setup ;;
  test)
    setup
    log "C++ tests"
    (cd "$BUILD_DIR" && ctest --output-on-failure -j 2)
    log "Python tests"
    "$PY" -m pytest "$@"
    ;;
  run) setup; exec "$PY" -m mindspore_federated.local --example lenet "$@" ;;
  bench) setup; "$PY" bench/run_all.py "$@" ;;
  fuzz) setup; "$PY" bench/fuzz.py "$@" ;;   # the long HTTP fuzz campaign (issue 14): bench/fuzz.py --help
  lint)
    need_apt; need_venv
    bad=$(grep -rl '<pybind11/' ccsrc | grep -v '^ccsrc/python/' || true)
    [ -z "$bad" ] || { echo "pybind11 included outside ccsrc/python: $bad"; exit 1; }
    "$PY" -m compileall -q mindspore_federated tests example bench >/dev/null
    "$PY" -m ruff check --no-cache .
    clang-format --dry-run -Werror $(git ls-files 'ccsrc/*.cc' 'ccsrc/*.h' 'tests/ut/cpp/*.cc' 'tests/ut/cpp/*.h')
    echo "lint ok"
    ;;
  clean) rm -rf "$BUILD_DIR" mindspore_federated/_core*.so ./*.egg-info ;;
  *) echo "usage: $0 [build|run|test|bench|fuzz|lint|clean]"; exit 2 ;;
esac
