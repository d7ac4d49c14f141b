"""The generated declarations against the headers and the C compiler."""
import os
import re
import subprocess
import sys

import pytest

import mmrec
from mmrec import ffi
from mmrec._cdef import CDEF, CONSTANTS

from conftest import PKG_ROOT, ROOT

STRUCTS = re.findall(r"typedef struct (\w+) \{", CDEF)


def test_generated_file_is_current():
    sys.path.insert(0, PKG_ROOT)
    import gen_cdef
    with open(gen_cdef.OUT) as f:
        assert f.read() == gen_cdef.render(), "run make python-cdef"


def test_every_public_function_is_declared():
    """Every MMREC_API name in the headers is a function cffi can see."""
    names = set()
    for h in os.listdir(os.path.join(ROOT, "include", "mmrec")):
        with open(os.path.join(ROOT, "include", "mmrec", h)) as f:
            text = f.read()
        names |= set(re.findall(r"MMREC_API(?:_EXPERIMENTAL)?\s[^;(]*?\b(mmrec_\w+)\s*\(", text))
    assert len(names) > 200
    for name in sorted(names):
        assert ffi.typeof(getattr(mmrec.lib, name)).kind == "function", name


def _compile_and_run(tmp_path, body):
    src = tmp_path / "probe.c"
    src.write_text('#include <stddef.h>\n#include <stdio.h>\n#include <mmrec/mmrec.h>\n'
                   "int main(void) {\n" + body + "return 0;\n}\n")
    exe = tmp_path / "probe"
    cc = os.environ.get("CC", "cc").split()
    res = subprocess.run(cc + ["-std=c11", "-I", os.path.join(ROOT, "include"), str(src),
                               "-o", str(exe)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(res.stderr)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


def test_struct_layouts_match_the_compiler(tmp_path):
    """sizeof and every field's offset as cffi computes them (ABI mode)
    equal the C compiler's."""
    assert len(STRUCTS) >= 30
    body = []
    for s in STRUCTS:
        body.append('printf("%s %%zu\\n", sizeof(%s));' % (s, s))
        for field, _ in ffi.typeof(s).fields:
            body.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (s, field, s, field))
    out = _compile_and_run(tmp_path, "\n".join(body))
    checked = 0
    for line in out.splitlines():
        name, value = line.split()
        if "." in name:
            s, field = name.split(".")
            assert ffi.offsetof(s, field) == int(value), name
        else:
            assert ffi.sizeof(name) == int(value), name
        checked += 1
    assert checked > 100


def test_constants_match_the_compiler(tmp_path):
    ints = {k: v for k, v in CONSTANTS.items() if isinstance(v, int)}
    body = "\n".join('printf("%s %%lld\\n", (long long)(%s));' % (k, k) for k in ints)
    out = _compile_and_run(tmp_path, body)
    got = {k: int(v) for k, v in (line.split() for line in out.splitlines())}
    assert got == ints
    assert mmrec.MMREC_MAX_DIMS == 4 == mmrec.lib.mmrec_max_dims()
    assert mmrec.MMREC_CACHE_MISSING_ZERO == 1
    assert mmrec.MMREC_SEQUENCES_TEST == 4
    assert mmrec.lib.MMREC_TENSOR_READONLY == 1  # enum constants come through cffi


def test_version_matches_the_headers():
    n = mmrec.lib.mmrec_version_number()
    assert (n // 10000, n // 100 % 100) == mmrec.HEADER_VERSION[:2]
    assert mmrec.version() == mmrec.MMREC_VERSION_STRING
