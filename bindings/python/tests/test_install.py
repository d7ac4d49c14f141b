"""The package after `make install PREFIX=...`, imported from outside the
source tree, finding the library through MMREC_LIBRARY or the system
loader (LD_LIBRARY_PATH)."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

PROBE = r"""
import numpy as np, mmrec
print(mmrec.LIBRARY_PATH)
print(mmrec.__file__)
m = mmrec.Model(seed=1)
fc = m.linear("fc", in_dim=2, out_dim=1, bias=False)
with mmrec.Tape() as t:
    y = fc.forward(t, np.ones((1, 2), np.float32))
    assert abs(y.item() - m.param("fc.weight").numpy().sum()) < 1e-6
print("ok")
"""


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("make not found")
    prefix = tmp_path_factory.mktemp("prefix")
    subprocess.run(["make", "-s", "-C", ROOT, "install", "PREFIX=%s" % prefix],
                   check=True, capture_output=True)
    return prefix


def _run(prefix, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MMREC_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(prefix / "lib" / "python3" / "dist-packages")
    env.update(env_extra)
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_installed_package_with_mmrec_library(prefix, tmp_path):
    lib = str(prefix / "lib" / "libmmrec.so.0")
    path, pkg, ok = _run(prefix, {"MMREC_LIBRARY": lib}, tmp_path)
    assert path == lib and pkg.startswith(str(prefix)) and ok == "ok"


def test_installed_package_with_the_system_loader(prefix, tmp_path):
    path, pkg, ok = _run(prefix, {"LD_LIBRARY_PATH": str(prefix / "lib")}, tmp_path)
    assert path == "libmmrec.so.0" and pkg.startswith(str(prefix)) and ok == "ok"


def test_bad_mmrec_library_is_a_clear_import_error(prefix, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(prefix / "lib" / "python3" / "dist-packages")
    env["MMREC_LIBRARY"] = str(tmp_path / "nope.so")
    res = subprocess.run([sys.executable, "-c", "import mmrec"], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True)
    assert res.returncode != 0 and "MMREC_LIBRARY" in res.stderr and "nope.so" in res.stderr
