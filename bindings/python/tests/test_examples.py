"""The Python quickstart prints the C example's RESULT line."""
import os
import subprocess
import sys

import pytest

from conftest import PKG_ROOT, ROOT


def _result(cmd, cwd, env=None):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.startswith("RESULT")][0]


def test_quickstart_matches_c(tmp_path):
    exe = os.path.join(ROOT, "build", "examples", "quickstart")
    if not os.path.exists(exe):
        pytest.skip("build/examples/quickstart not built")
    c = _result([exe, "2", str(tmp_path / "c.mmrc")], str(tmp_path))
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    py = _result([sys.executable, os.path.join(PKG_ROOT, "examples", "quickstart.py"), "2",
                  str(tmp_path / "py.mmrc")], str(tmp_path), env)
    assert py == c
    assert (tmp_path / "c.mmrc").read_bytes() == (tmp_path / "py.mmrc").read_bytes()
