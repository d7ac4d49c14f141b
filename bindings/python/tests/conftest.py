"""Test setup: import the package from this source tree (bindings/python),
which finds the library of the build tree unless MMREC_LIBRARY is set."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)
ROOT = os.environ.get("MMREC_ROOT") or os.path.normpath(os.path.join(PKG_ROOT, "..", ".."))
sys.path.insert(0, PKG_ROOT)


@pytest.fixture
def root():
    """The source tree's top folder."""
    return ROOT
