"""Build and install mindspore_federated: the Python package plus the C++ core `_core` (via CMake)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# Non-Python files shipped inside the package (globs relative to mindspore_federated/); each must match a
# file of the tree (tests/ut/python/test_packaging.py checks it).
PACKAGE_DATA = ["schema/*.fbs", "*.pyi",
                "scheduler/dashboard/*.html", "scheduler/dashboard/*.js", "scheduler/dashboard/*.css"]  # issue 17


class CMakeExtension(Extension):
    """An extension built by CMake from the top-level CMakeLists.txt."""

    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Runs CMake + Ninja; `MSF_CORE_PREBUILT=1` reuses a core that ./build.sh already built in place."""

    def build_extension(self, ext):
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        if os.environ.get("MSF_CORE_PREBUILT") == "1":
            built = sorted((ROOT / "mindspore_federated").glob("_core*.so"))
            if not built:
                raise RuntimeError("MSF_CORE_PREBUILT=1 but no mindspore_federated/_core*.so: run ./build.sh")
            if built[-1].resolve() != target:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(built[-1], target)
            return
        import pybind11

        extdir = target.parent  # already .../mindspore_federated: the package dir inside build_lib
        build_dir = ROOT / "build" / "setup"
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = "Debug" if self.debug else "Release"
        subprocess.run(
            ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja", f"-DCMAKE_BUILD_TYPE={cfg}",
             f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
             f"-DFL_CORE_OUTPUT_DIR={extdir}", "-DBUILD_TESTS=OFF"],
            check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "_core", "-j", str(os.cpu_count() or 2)],
                       check=True)
        if not target.is_file():
            # CMake names the module itself (pybind11's suffix); it must be exactly where setuptools packs it.
            raise RuntimeError(f"CMake did not produce {target}; check FL_CORE_OUTPUT_DIR and the module suffix")


setup(
    name="mindspore_federated",
    version="0.2.0",
    description="Cloud-side cross-device federated learning cluster (MindSpore Federated compatible)",
    packages=find_packages(include=["mindspore_federated", "mindspore_federated.*"]),
    package_data={"mindspore_federated": PACKAGE_DATA},
    ext_modules=[CMakeExtension("mindspore_federated._core")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["numpy", "pyyaml", "aiohttp>=3.9", "redis>=5", "cryptography", "flatbuffers>=23",
                      "prometheus-client>=0.17"],
    extras_require={"fast": ["uvloop", "hiredis"], "worker": ["mindspore"]},
    entry_points={"console_scripts": [
        "msf-server=mindspore_federated.server:main",
        "msf-scheduler=mindspore_federated.scheduler:main",
        "msf-local=mindspore_federated.local:main",
        "msf-cli=mindspore_federated.cli:main",
        "msf-simulator=mindspore_federated.client.simulator:main",
    ]},
    zip_safe=False,
)
