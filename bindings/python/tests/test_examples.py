"""The Python examples print the C examples' RESULT lines."""
import os
import re
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


def _lightgcn_data(folder, valid=False):
    """A small LightGCN-format split: "user item item ..." lines; with
    valid, a disjoint valid.txt too (the held-out layout)."""
    rng = np.random.default_rng(4)
    names = ["train.txt", "test.txt"] + (["valid.txt"] if valid else [])
    files = [open(folder / name, "w") for name in names]
    for u in range(120):
        items = rng.choice(200, size=int(rng.integers(6, 14)), replace=False).tolist()
        parts = [items[4:], items[:2], items[2:4]] if valid else [items[2:], items[:2]]
        for f, part in zip(files, parts):
            f.write(" ".join(map(str, [u] + sorted(part))) + "\n")
    for f in files:
        f.close()


@pytest.mark.parametrize("layout", ["train_test", "held_out"])
def test_lightgcn_matches_c(tmp_path, layout):
    exe = os.path.join(ROOT, "build", "examples", "lightgcn")
    if not os.path.exists(exe):
        pytest.skip("build/examples/lightgcn not built")
    _lightgcn_data(tmp_path, valid=layout == "held_out")
    args = [str(tmp_path), "--epochs", "3", "--batch", "128", "--eval-every", "1",
            "--threads", "1"]
    if layout == "held_out":  # early stopping on valid.txt, test with valid masked
        args = [str(tmp_path), "--epochs", "30", "--batch", "128", "--eval-every", "1",
                "--patience", "2", "--threads", "1"]
    c = _result([exe] + args, str(tmp_path))
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    py = _result([sys.executable, os.path.join(PKG_ROOT, "examples", "lightgcn.py")] + args,
                 str(tmp_path), env)
    strip = lambda line: re.sub(r" seconds=[0-9]+", "", line)  # noqa: E731
    assert strip(py) == strip(c)
    assert "recall@20=0.0000" not in c
    assert c.endswith(" split=test")
    keys = dict(kv.split("=") for kv in c.split()[2:])
    if layout == "held_out":  # stopped early, the best epoch restored
        assert int(keys["best_epoch"]) + 2 == int(keys["epochs"]) < 30
