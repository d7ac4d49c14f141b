"""The Python examples print the C examples' RESULT lines."""
import os
import subprocess
import sys

import numpy as np
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


def _lightgcn_data(folder):
    """A small LightGCN-format split: "user item item ..." lines."""
    rng = np.random.default_rng(4)
    with open(folder / "train.txt", "w") as tr, open(folder / "test.txt", "w") as te:
        for u in range(120):
            items = rng.choice(200, size=int(rng.integers(4, 12)), replace=False)
            tr.write(" ".join(map(str, [u] + sorted(items[2:].tolist()))) + "\n")
            te.write(" ".join(map(str, [u] + sorted(items[:2].tolist()))) + "\n")


def test_lightgcn_matches_c(tmp_path):
    exe = os.path.join(ROOT, "build", "examples", "lightgcn")
    if not os.path.exists(exe):
        pytest.skip("build/examples/lightgcn not built")
    _lightgcn_data(tmp_path)
    args = [str(tmp_path), "--epochs", "3", "--batch", "128", "--eval-every", "1",
            "--threads", "1"]
    c = _result([exe] + args, str(tmp_path))
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    py = _result([sys.executable, os.path.join(PKG_ROOT, "examples", "lightgcn.py")] + args,
                 str(tmp_path), env)
    strip = lambda line: line.rsplit(" seconds=", 1)[0]  # noqa: E731
    assert strip(py) == strip(c)
    assert "recall@20=0.0000" not in c
