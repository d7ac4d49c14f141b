"""Errors: the status, its name and the library's message; Python-side
argument errors name the argument."""
import numpy as np
import pytest

import mmrec
from mmrec import lib


def test_shape_error_carries_status_and_message():
    with mmrec.Tape() as tape:
        a = tape.wrap(np.ones((2, 3), np.float32))
        with pytest.raises(mmrec.ShapeError) as e:
            mmrec.ops.matmul(tape, a, a)
    err = e.value
    assert isinstance(err, mmrec.Error)
    assert err.status == lib.MMREC_ESHAPE == 11
    assert err.status_name == "MMREC_ESHAPE"
    assert "mmrec_matmul" in err.message and "[2,3]" in err.message
    assert str(err).startswith("MMREC_ESHAPE: mmrec_matmul")


@pytest.mark.parametrize("status,cls", [
    (10, mmrec.InvalidArgument), (11, mmrec.ShapeError), (12, mmrec.RangeError),
    (13, mmrec.NotFound), (20, mmrec.StateError), (21, mmrec.StaleTensorError),
    (22, mmrec.Unsupported), (30, mmrec.OutOfMemory), (31, mmrec.FileError),
    (32, mmrec.FormatError), (40, mmrec.NumericError)])
def test_one_class_per_status(status, cls):
    err = mmrec.errors.error_for(status, "m")
    assert type(err) is cls and err.status == status and isinstance(err, mmrec.Error)
    assert err.status_name == mmrec.ffi.string(lib.mmrec_status_name(status)).decode()


def test_not_found_and_file_errors(tmp_path):
    with mmrec.Model() as m:
        with pytest.raises(mmrec.NotFound) as e:
            m.param("nope")
        assert "nope" in e.value.message
        with pytest.raises(mmrec.FileError) as e:
            m.load(str(tmp_path / "missing.mmrc"))
        assert e.value.status == lib.MMREC_EIO and "missing.mmrc" in e.value.message
        (tmp_path / "junk.mmrc").write_bytes(b"not a checkpoint" * 10)
        m.linear("fc", in_dim=2, out_dim=2)
        with pytest.raises(mmrec.FormatError):
            m.load(str(tmp_path / "junk.mmrc"))


def test_range_error_from_rows():
    with mmrec.Model() as m, mmrec.Tape() as tape:
        table = m.add_param("table", (4, 2))
        with pytest.raises(mmrec.RangeError) as e:
            mmrec.ops.gather_rows(tape, table, [0, 9])
        assert "9" in e.value.message


def test_config_keywords_are_checked():
    with mmrec.Model() as m:
        with pytest.raises(TypeError, match="'in_dims'"):
            m.linear("fc", in_dims=3, out_dim=2)
        with pytest.raises(ValueError, match="relux"):
            m.mlp("t", sizes=[2, 2], activation="relux")
        with pytest.raises(mmrec.InvalidArgument) as e:
            m.linear("fc", in_dim=0, out_dim=2)
        assert "in_dim" in e.value.message
        t = m.mlp("tower", sizes=[3, 4, 1], activation="gelu", bias=False)
        assert set(t.params()) == {"tower.0.weight", "tower.1.weight"}


def test_array_arguments_are_checked():
    with mmrec.Tape() as tape:
        with pytest.raises(TypeError, match="array: expected dtype float32, got float64"):
            tape.wrap(np.ones((2, 2)))
        with pytest.raises(ValueError, match="array: the array must be C-contiguous"):
            tape.wrap(np.ones((4, 4), np.float32)[:, ::2])
        with pytest.raises(ValueError, match="array: expected 1 to 4 dims, got 5"):
            tape.wrap(np.ones((1, 1, 1, 1, 2), np.float32))
        with pytest.raises(TypeError, match="array: expected a numpy.ndarray"):
            tape.wrap([1.0, 2.0])
        rng = mmrec.Rng(1)
        with pytest.raises(TypeError, match="out: expected dtype float32"):
            rng.normal(out=np.zeros(3, np.float64))
    with mmrec.Model() as m:
        m.linear("fc", in_dim=2, out_dim=2)
        with pytest.raises(TypeError, match="mmrec_model_export_params: dst: expected dtype float32"):
            m.export_params(out=np.zeros(6, np.float64))


def test_closed_handles_raise_state_error():
    m = mmrec.Model()
    w = m.add_param("w", (2,))
    m.close()
    m.close()  # idempotent
    with pytest.raises(mmrec.StateError):
        m.param_count()
    with pytest.raises(mmrec.StateError):
        w.numpy()


def test_version_mismatch_is_reported(monkeypatch):
    monkeypatch.setattr(mmrec._ffi, "HEADER_VERSION", (9, 1, 0))
    with pytest.raises(mmrec.LibraryVersionError, match="9.1 headers"):
        mmrec._ffi._check_version()


def test_wrong_handle_type_names_the_parameter():
    with mmrec.Model() as m, mmrec.Tape() as tape:
        e = m.add_param("e", (4, 2))
        with pytest.raises(TypeError, match="mmrec_lightgcn: graph: expected a mmrec_graph, "
                                            "got a Model"):
            mmrec.ops.lightgcn(tape, m, e, 3, None)
        with pytest.raises(TypeError, match="mmrec_relu: x: expected a Tensor, got str"):
            mmrec.ops.relu(tape, "x")
        with pytest.raises(TypeError, match="missing argument 'x'"):
            mmrec.ops.relu(tape)


def test_messages_are_per_thread():
    """Each thread reads the message of its own failed call (the library's
    buffer is thread-local and cffi releases the GIL during calls)."""
    import threading
    results = {}

    def work(k):
        with mmrec.Model() as m:
            m.add_param("p%d" % k, (1,))
            for _ in range(200):
                try:
                    m.param("missing_%d" % k)
                except mmrec.NotFound as e:
                    if "missing_%d" % k not in e.message:
                        results[k] = e.message
                        return
        results[k] = "ok"

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: "ok" for k in range(4)}
