"""Modules from keyword configs, module methods, optimizer settings."""
import numpy as np
import pytest

import mmrec
from mmrec.model import MODULE_KINDS


def test_every_module_kind_has_a_constructor():
    for kind in ("linear", "mlp", "embedding", "layernorm", "mha", "transformer",
                 "sequence_encoder", "adapter", "fqformer"):
        assert kind in MODULE_KINDS
    for kind in MODULE_KINDS:
        assert callable(getattr(mmrec.Model, kind)), kind


def test_embedding_layernorm_and_lora():
    with mmrec.Model(seed=2) as m, mmrec.Tape() as tape:
        emb = m.embedding("item", num_rows=10, dim=4)
        x = emb.forward(tape, [1, 2, 2])               # n filled from the ids
        table = m.param("item.weight").numpy()
        np.testing.assert_array_equal(x.numpy(), table[[1, 2, 2]])
        ln = m.layernorm("ln", dim=4)
        y = ln.forward(tape, x).numpy()
        np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-5)
        fc = m.linear("fc", {"in_dim": 4, "out_dim": 3}, bias=False)
        before = fc.forward(tape, x).numpy().copy()
        fc.call("lora_attach", rank=2, alpha=4.0)      # config fields as keywords
        assert any(k.startswith("fc.lora") for k in m.params()) or len(m.params()) > 3
        after = fc.forward(tape, x).numpy()
        np.testing.assert_allclose(after, before, rtol=1e-6)  # B starts at zero
        with pytest.raises(AttributeError, match="mmrec_linear_nope"):
            fc.nope


def test_config_object():
    cfg = mmrec.Config("mmrec_mlp_config", sizes=[4, 8, 2], activation="tanh")
    assert cfg.num_sizes == 3 and cfg.activation == mmrec.lib.MMREC_ACT_TANH
    cfg.dropout = 0.25
    assert "dropout=0.25" in repr(cfg)
    with pytest.raises(TypeError, match="'nope'"):
        cfg.nope = 1
    with mmrec.Model() as m:
        t = m.mlp("t", cfg)
        assert t.params()["t.1.weight"].shape == (2, 8)


def test_optimizer_settings():
    with mmrec.Model() as m:
        m.linear("content", in_dim=2, out_dim=2)
        m.linear("id", in_dim=2, out_dim=2)
        opt = mmrec.Optimizer(m, "sgd", lr=0.1, momentum=0.9, nesterov=True)
        g = opt.add_group("content", lr=0.01)
        assert g == 1 and opt.get_lr(1) == pytest.approx(0.01)
        opt.lr = 0.05
        assert opt.lr == pytest.approx(0.05)
        with pytest.raises(mmrec.RangeError):
            opt.set_lr(0.1, group=7)
        with pytest.raises(mmrec.InvalidArgument, match="momentum"):
            mmrec.Optimizer(m, "sgd", nesterov=True)
        assert m.freeze("content") == 2 and m.param_count()[0] == 6
        assert m.unfreeze("") == 4 and m.param_count() == (12, 12)
        opt.close()
