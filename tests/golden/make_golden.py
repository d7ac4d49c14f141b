#!/usr/bin/python3
"""Writes the golden reference vectors of libmmrec's tests from PyTorch.

Run with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden.py [name ...]
(names as in WRITERS at the end; none: every file).
Outputs (committed): tests/golden/<name>.bin, e.g. ops.bin, losses.bin,
batch_softmax.bin.

Every input is a float32 array; the references are computed in float64
from exactly those values and stored as float32. File format, as read by
tests/mt.c: repeated records of
    u32 name_len, name bytes, u32 ndim, i64 shape[ndim], f32 data[numel]
little-endian. Names are "<case>.<array>".

Op and loss cases ("ops.bin", "losses.bin"):
    <case>.op      [1]  operation code (OPS below, shared with test_golden.c)
    <case>.args    [k]  scalar arguments of the call
    <case>.in<i>        inputs; <case>.d<i> is the gradient of sum(r * y)
                        with respect to input i when it is differentiated
    <case>.r            upstream gradient (losses: [1.0])
    <case>.y            output
    <case>.ids          integer ids / labels, stored as floats
Module cases ("modules.bin"): <case>.kind, <case>.cfg (transformer:
[dim, heads, ffn, norm_first] optionally followed by [causal, activation
code]), <case>.x, optional
<case>.key_mask (1 = token, 0 = padding) and <case>.ids, <case>.r, <case>.y,
<case>.dx, and <case>.param.<torch name> / <case>.grad.<torch name>.
Optimizer cases ("optim.bin"): <case>.cfg, <case>.steps, and for each
parameter p<j>: <case>.init.p<j>, <case>.g<k>.p<j> (gradient of step k),
<case>.final.p<j>.

Accuracy cases ("numerics.bin"): as op cases, but each reference
(<case>.y, <case>.d<i>) is computed in float64 and stored as two float32
arrays, <name> = float32(ref) and <name>_lo = float32(ref - <name>), with
<name>_terr [1], the largest absolute error of PyTorch's own float32
result against it.

Cases added after the first release of these files draw their values from
their own generator (own_stream), so the arrays of the earlier cases stay
byte-identical when cases are added.
"""
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.dirname(os.path.abspath(__file__))

OPS = dict(matmul=0, add=1, sub=2, mul=3, scale=4, bias_add=5, relu=6, gelu_erf=7,
           gelu_tanh=8, sigmoid=9, tanh=10, softmax=11, log_softmax=12, layer_norm=13,
           concat=14, slice=15, reshape=16, transpose=17, sum=18, mean=19,
           l2_normalize=20, cosine_similarity=21, gather_rows=22,
           bce_logits=30, softmax_ce=31, bpr=32, mse=33, cic=34)
AXIS_ALL = 1000


class Writer:
    def __init__(self, name):
        self.path = os.path.join(OUT, name)
        self.records = []

    def add(self, name, array):
        assert len(name) < 64, "tests/mt.c reads names of up to 63 bytes: " + name
        a = np.asarray(array, dtype=np.float32)
        if a.ndim == 0:
            a = a.reshape(1)
        rec = struct.pack("<I", len(name)) + name.encode()
        rec += struct.pack("<I", a.ndim) + struct.pack("<%dq" % a.ndim, *a.shape)
        rec += a.astype("<f4").tobytes()
        self.records.append(rec)

    def close(self):
        with open(self.path, "wb") as f:
            f.write(b"".join(self.records))


gen = torch.Generator().manual_seed(20261123)


class own_stream:
    """Within the block, rand() draws from a generator of its own."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def __enter__(self):
        global gen
        self.saved, gen = gen, self.gen

    def __exit__(self, *exc):
        global gen
        gen = self.saved


def rand(*shape, low=-1.0, high=1.0):
    """float32 values, returned as float64 tensors holding exactly those."""
    x = torch.rand(*shape, generator=gen, dtype=torch.float32) * (high - low) + low
    return x.double()


def op_case(w, name, op, inputs, fn, args=(), ids=None, diff=None):
    """inputs: list of float64 tensors; diff[i]: differentiate input i."""
    diff = diff or [True] * len(inputs)
    leaves = [x.clone().requires_grad_(d) for x, d in zip(inputs, diff)]
    y = fn(*leaves)
    r = torch.ones_like(y) if op >= 30 else rand(*y.shape)
    y.backward(r)
    w.add(name + ".op", [op])
    w.add(name + ".args", list(args) if args else [0])
    for i, (x, d) in enumerate(zip(leaves, diff)):
        w.add("%s.in%d" % (name, i), x.detach().numpy())
        if d:
            w.add("%s.d%d" % (name, i), x.grad.numpy())
    if ids is not None:
        w.add(name + ".ids", np.asarray(ids, dtype=np.float32))
    w.add(name + ".r", r.numpy())
    w.add(name + ".y", y.detach().numpy())


def masked(x, mask):
    return x.masked_fill(mask == 0, float("-inf"))


def write_ops():
    w = Writer("ops.bin")
    # matmul: every transpose combination, batched and with a shared operand
    for flags in range(4):
        ta, tb = flags & 1, flags & 2
        m, k, n = 3, 5, 7
        a = rand(2, k, m) if ta else rand(2, m, k)
        b = rand(2, n, k) if tb else rand(2, k, n)

        def mm(a, b, ta=ta, tb=tb):
            return torch.matmul(a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)
        op_case(w, "matmul_batched_%d" % flags, OPS["matmul"], [a, b], mm, [flags])
        op_case(w, "matmul_shared_b_%d" % flags, OPS["matmul"], [a, b[0]], mm, [flags])
        op_case(w, "matmul_shared_a_%d" % flags, OPS["matmul"], [a[0], b], mm, [flags])
    for op, fn in (("add", torch.add), ("sub", torch.sub), ("mul", torch.mul)):
        op_case(w, op + "_same", OPS[op], [rand(3, 5), rand(3, 5)], fn)
        op_case(w, op + "_bcast", OPS[op], [rand(2, 1, 5), rand(3, 1)], fn)
        op_case(w, op + "_trailing", OPS[op], [rand(2, 3, 5), rand(5)], fn)
    op_case(w, "scale", OPS["scale"], [rand(3, 7)], lambda x: x * -1.375, [-1.375])
    op_case(w, "bias_add", OPS["bias_add"], [rand(2, 3, 7), rand(7)], torch.add)
    op_case(w, "relu", OPS["relu"], [rand(5, 7, low=-0.5, high=1.5)], F.relu)
    op_case(w, "gelu_erf", OPS["gelu_erf"], [rand(5, 7, low=-3, high=3)], F.gelu)
    op_case(w, "gelu_tanh", OPS["gelu_tanh"], [rand(5, 7, low=-3, high=3)],
            lambda x: F.gelu(x, approximate="tanh"))
    op_case(w, "sigmoid", OPS["sigmoid"], [rand(5, 7, low=-4, high=4)], torch.sigmoid)
    op_case(w, "tanh", OPS["tanh"], [rand(5, 7, low=-2, high=2)], torch.tanh)
    # softmax: plain, with a [B, 1, T] mask broadcast over the rows
    mask = torch.ones(2, 1, 7, dtype=torch.float64)
    mask[0, 0, 2] = 0
    mask[1, 0, 5] = 0
    for op in ("softmax", "log_softmax"):
        fn = getattr(torch, op)
        op_case(w, op, OPS[op], [rand(2, 3, 7, low=-2, high=2)], lambda x, fn=fn: fn(x, -1), [0])
        op_case(w, op + "_mask", OPS[op], [rand(2, 3, 7, low=-2, high=2), mask],
                lambda x, m, fn=fn: fn(masked(x, m), -1), [1], diff=[True, False])
    x = rand(3, 4, 13, low=-2, high=2)
    op_case(w, "layer_norm_affine", OPS["layer_norm"],
            [x, rand(13, low=0.5, high=1.5), rand(13)],
            lambda x, g, b: F.layer_norm(x, (13,), g, b, 1e-5), [1, 1, 1e-5])
    op_case(w, "layer_norm_plain", OPS["layer_norm"], [x],
            lambda x: F.layer_norm(x, (13,), None, None, 1e-5), [0, 0, 1e-5])
    op_case(w, "concat_axis0", OPS["concat"], [rand(2, 5), rand(3, 5), rand(1, 5)],
            lambda *xs: torch.cat(xs, 0), [0])
    op_case(w, "concat_last", OPS["concat"], [rand(2, 3, 5), rand(2, 3, 2)],
            lambda *xs: torch.cat(xs, -1), [-1])
    op_case(w, "slice", OPS["slice"], [rand(3, 7, 5)], lambda x: x.narrow(1, 2, 4), [1, 2, 4])
    op_case(w, "reshape", OPS["reshape"], [rand(3, 7, 5)], lambda x: x.reshape(7, 15), [7, 15])
    op_case(w, "transpose", OPS["transpose"], [rand(3, 7, 5)], lambda x: x.transpose(-1, -2))
    for op in ("sum", "mean"):
        fn = getattr(torch, op)
        op_case(w, op + "_axis1", OPS[op], [rand(3, 7, 5)], lambda x, fn=fn: fn(x, 1), [1])
        op_case(w, op + "_all", OPS[op], [rand(3, 7, 5)], lambda x, fn=fn: fn(x).reshape(1),
                [AXIS_ALL])
    op_case(w, "l2_normalize", OPS["l2_normalize"], [rand(5, 7)],
            lambda x: F.normalize(x, dim=-1, eps=1e-12), [1e-12])
    op_case(w, "cosine_similarity", OPS["cosine_similarity"], [rand(3, 5, 7), rand(3, 5, 7)],
            lambda a, b: F.cosine_similarity(a, b, dim=-1, eps=1e-8), [1e-8])
    ids = [4, 0, 4, 6, 1, 2]
    op_case(w, "gather_rows", OPS["gather_rows"], [rand(7, 5)],
            lambda t: t[torch.tensor(ids)], ids=ids)
    with own_stream(1):
        x = rand(3, 4, 13, low=-2, high=2)
        op_case(w, "layer_norm_weight_only", OPS["layer_norm"], [x, rand(13, low=0.5, high=1.5)],
                lambda x, g: F.layer_norm(x, (13,), g, None, 1e-5), [1, 0, 1e-5])
        # a mask of x's own shape: rows with 1, 2 or no removed positions
        full = torch.ones(3, 5, dtype=torch.float64)
        full[0, 1] = 0
        full[1, 0] = 0
        full[1, 4] = 0
        for op in ("softmax", "log_softmax"):
            fn = getattr(torch, op)
            op_case(w, op + "_full_mask", OPS[op], [rand(3, 5, low=-2, high=2), full],
                    lambda x, m, fn=fn: fn(masked(x, m), -1), [1], diff=[True, False])
    w.close()


def write_losses():
    w = Writer("losses.bin")
    op_case(w, "bce_logits", OPS["bce_logits"], [rand(5, 7, low=-4, high=4), rand(5, 7, low=0, high=1)],
            lambda x, y: F.binary_cross_entropy_with_logits(x, y).reshape(1), diff=[True, False])
    labels = [3, 0, 12, 5, 5]
    op_case(w, "softmax_ce", OPS["softmax_ce"], [rand(5, 13, low=-3, high=3)],
            lambda x: F.cross_entropy(x, torch.tensor(labels)).reshape(1), ids=labels)
    op_case(w, "bpr", OPS["bpr"], [rand(11, low=-3, high=3), rand(11, low=-3, high=3)],
            lambda p, n: F.softplus(n - p).mean().reshape(1))
    op_case(w, "mse", OPS["mse"], [rand(3, 7), rand(3, 7)],
            lambda p, t: F.mse_loss(p, t).reshape(1), diff=[True, False])
    w.close()


# ---- modules ----

KIND = dict(linear=0, mlp=1, embedding=2, layernorm=3, mha=4, transformer=5, lora=6,
            fqformer=7, target_attention=8)


def perturb(module):
    """Random parameters everywhere (biases and norms too), float32 exact."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(rand(*p.shape, low=-0.5, high=0.5))


def module_case(w, name, kind, cfg, module, x=None, key_mask=None, ids=None, call=None,
                names=None, x2=None):
    module = module.double()
    perturb(module)
    w.add(name + ".kind", [KIND[kind]])
    w.add(name + ".cfg", cfg)
    if x is not None:
        x = x.clone().requires_grad_(True)
        w.add(name + ".x", x.detach().numpy())
    if key_mask is not None:
        w.add(name + ".key_mask", key_mask.numpy())
    if ids is not None:
        w.add(name + ".ids", np.asarray(ids, dtype=np.float32))
    if x2 is not None:
        x2 = x2.clone().requires_grad_(True)
        w.add(name + ".x2", x2.detach().numpy())
    y = call(module, x) if x2 is None else call(module, x, x2)
    r = rand(*y.shape)
    y.backward(r)
    w.add(name + ".r", r.numpy())
    w.add(name + ".y", y.detach().numpy())
    if x is not None:
        w.add(name + ".dx", x.grad.numpy())
    if x2 is not None:
        w.add(name + ".dx2", x2.grad.numpy())
    for pname, p in module.named_parameters():
        cname = names(pname) if names else pname
        w.add("%s.param.%s" % (name, cname), p.detach().numpy())
        if p.grad is not None:  # frozen parameters have none
            w.add("%s.grad.%s" % (name, cname), p.grad.numpy())


def write_modules():
    w = Writer("modules.bin")
    for bias in (1, 0):
        module_case(w, "linear_bias%d" % bias, "linear", [7, 5, bias],
                    torch.nn.Linear(7, 5, bias=bool(bias)), x=rand(2, 3, 7),
                    call=lambda m, x: m(x))
    for act, code, mod in (("relu", 1, torch.nn.ReLU()), ("gelu", 2, torch.nn.GELU())):
        seq = torch.nn.Sequential(torch.nn.Linear(7, 13), mod, torch.nn.Linear(13, 5))
        # Sequential index 0 and 2 are the Linear layers 0 and 1.
        module_case(w, "mlp_" + act, "mlp", [7, 13, 5, code], seq, x=rand(4, 7, low=-2, high=2),
                    call=lambda m, x: m(x),
                    names=lambda n: n.replace("2.", "1.", 1) if n.startswith("2.") else n)
    ids = [3, 0, 3, 8, 1, 5, 2]
    module_case(w, "embedding", "embedding", [9, 6], torch.nn.Embedding(9, 6), ids=ids,
                call=lambda m, x: m(torch.tensor(ids)))
    module_case(w, "layernorm", "layernorm", [13, 1e-5], torch.nn.LayerNorm(13),
                x=rand(3, 4, 13, low=-2, high=2), call=lambda m, x: m(x))
    B, T, D, H = 2, 5, 12, 3
    key_mask = torch.ones(B, T, dtype=torch.float64)
    key_mask[0, 3:] = 0
    key_mask[1, 1] = 0
    pad = key_mask == 0
    causal = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), diagonal=1)
    module_case(w, "mha_mask", "mha", [D, H, 0], torch.nn.MultiheadAttention(D, H, batch_first=True),
                x=rand(B, T, D), key_mask=key_mask,
                call=lambda m, x: m(x, x, x, key_padding_mask=pad, need_weights=False)[0])
    module_case(w, "mha_causal", "mha", [D, H, 1],
                torch.nn.MultiheadAttention(D, H, batch_first=True), x=rand(B, T, D),
                call=lambda m, x: m(x, x, x, attn_mask=causal, need_weights=False)[0])
    for norm_first in (1, 0):
        layer = torch.nn.TransformerEncoderLayer(D, H, dim_feedforward=20, dropout=0.0,
                                                 activation="gelu", batch_first=True,
                                                 norm_first=bool(norm_first))
        module_case(w, "transformer_prenorm%d" % norm_first, "transformer",
                    [D, H, 20, norm_first], layer, x=rand(B, T, D), key_mask=key_mask,
                    call=lambda m, x: m(x, src_key_padding_mask=pad))
    with own_stream(2):
        # key 0 is real in every sequence: with the causal mask no query
        # loses every key
        module_case(w, "mha_mask_causal", "mha", [D, H, 1],
                    torch.nn.MultiheadAttention(D, H, batch_first=True), x=rand(B, T, D),
                    key_mask=key_mask,
                    call=lambda m, x: m(x, x, x, key_padding_mask=pad, attn_mask=causal,
                                        need_weights=False)[0])
        for name, norm_first, act, code, is_causal in (("transformer_causal", 0, "gelu", 2, 1),
                                                       ("transformer_relu", 1, "relu", 1, 0)):
            layer = torch.nn.TransformerEncoderLayer(D, H, dim_feedforward=20, dropout=0.0,
                                                     activation=act, batch_first=True,
                                                     norm_first=bool(norm_first))
            src_mask = causal if is_causal else None
            module_case(w, name, "transformer", [D, H, 20, norm_first, is_causal, code], layer,
                        x=rand(B, T, D), key_mask=key_mask,
                        call=lambda m, x, src_mask=src_mask: m(x, src_mask=src_mask,
                                                               src_key_padding_mask=pad))
    w.close()


# ---- optimizers ----

OPT = dict(sgd=0, adam=1, adamw=2, adagrad=3)


def optim_case(w, name, kind, cfg, make):
    """cfg: [type, lr, weight_decay, momentum, dampening, nesterov, beta1, beta2,
    eps, initial_accumulator, clip_norm]."""
    shapes = [(3, 5), (7,)]
    params = [torch.nn.Parameter(rand(*s)) for s in shapes]
    w.add(name + ".cfg", cfg)
    steps = 5
    w.add(name + ".steps", [steps])
    for j, p in enumerate(params):
        w.add("%s.init.p%d" % (name, j), p.detach().numpy())
    opt = make(params)
    clip = cfg[10]
    for k in range(steps):
        for j, p in enumerate(params):
            g = rand(*p.shape, low=-2, high=2)
            w.add("%s.g%d.p%d" % (name, k, j), g.numpy())
            p.grad = g.clone()
        if clip > 0:
            norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
            scale = min(1.0, clip / (float(norm) + 1e-6))
            for p in params:
                p.grad.mul_(scale)
        opt.step()
    for j, p in enumerate(params):
        w.add("%s.final.p%d" % (name, j), p.detach().numpy())


def write_optim():
    w = Writer("optim.bin")
    optim = torch.optim
    optim_case(w, "sgd", "sgd", [0, 0.1, 0, 0, 0, 0, 0.9, 0.999, 0, 0, 0],
               lambda ps: optim.SGD(ps, lr=0.1))
    optim_case(w, "sgd_momentum", "sgd", [0, 0.05, 0.01, 0.9, 0.1, 0, 0.9, 0.999, 0, 0, 0],
               lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01))
    optim_case(w, "sgd_nesterov", "sgd", [0, 0.05, 0, 0.8, 0, 1, 0.9, 0.999, 0, 0, 0],
               lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True))
    optim_case(w, "adam", "adam", [1, 0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0],
               lambda ps: optim.Adam(ps, lr=0.01))
    optim_case(w, "adam_wd", "adam", [1, 0.01, 0.1, 0, 0, 0, 0.8, 0.99, 1e-6, 0, 0],
               lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1))
    optim_case(w, "adamw", "adamw", [2, 0.01, 0.05, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0],
               lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.05))
    optim_case(w, "adagrad", "adagrad", [3, 0.1, 0.01, 0, 0, 0, 0.9, 0.999, 1e-10, 0.1, 0],
               lambda ps: optim.Adagrad(ps, lr=0.1, weight_decay=0.01,
                                        initial_accumulator_value=0.1))
    optim_case(w, "adam_clip", "adam", [1, 0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 1.0],
               lambda ps: optim.Adam(ps, lr=0.01))
    w.close()


# ---- EM3 ----

class LoraLinear(torch.nn.Module):
    """y = sg(x W^T + b) + scale (x A^T) B^T"""

    def __init__(self, n_in, n_out, rank, scale):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(n_out, n_in))
        self.bias = torch.nn.Parameter(torch.zeros(n_out))
        self.lora_A = torch.nn.Parameter(torch.zeros(rank, n_in))
        self.lora_B = torch.nn.Parameter(torch.zeros(n_out, rank))
        self.scale = scale

    def forward(self, x):
        base = F.linear(x, self.weight, self.bias).detach()
        return base + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)


class FQFormer(torch.nn.Module):
    def __init__(self, dv, dt, d, q, layers, heads, ffn, norm_first):
        super().__init__()
        self.queries = torch.nn.Parameter(torch.zeros(q, d))
        self.f_v = torch.nn.Linear(dv, d)
        self.f_t = torch.nn.Linear(dt, d)
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=norm_first)
            for _ in range(layers))

    def forward(self, image, text, presence):
        B, Q = image.shape[0], self.queries.shape[0]
        tokens = torch.cat([self.queries.expand(B, -1, -1), self.f_v(image), self.f_t(text)], 1)
        pad = torch.cat([torch.zeros(B, Q, dtype=torch.bool), presence == 0], 1)
        for layer in self.layers:
            tokens = layer(tokens, src_key_padding_mask=pad)
        return tokens[:, :Q]


class TargetAttention(torch.nn.Module):
    def __init__(self, d, hidden=None):
        super().__init__()
        self.d = d
        self.mlp = None
        if hidden:
            self.mlp = torch.nn.Sequential(torch.nn.Linear(4 * d, hidden), torch.nn.Sigmoid(),
                                           torch.nn.Linear(hidden, 1))

    def forward(self, cand, seq, mask):
        c = cand.unsqueeze(1)
        if self.mlp is None:
            scores = (seq * c).sum(-1) / self.d ** 0.5
        else:
            cb = c.expand_as(seq)
            scores = self.mlp(torch.cat([seq, cb, seq - cb, seq * cb], -1)).squeeze(-1)
        p = torch.softmax(scores.masked_fill(mask == 0, float("-inf")), -1)
        return (p.unsqueeze(-1) * seq).sum(1)


def cic_reference(C, I, negs, tau):
    """0.5 (L_C2I + L_I2C) with fixed negatives negs [B, H]."""
    Cn, In = F.normalize(C, dim=-1, eps=1e-12), F.normalize(I, dim=-1, eps=1e-12)
    idx = torch.tensor(negs)
    total = 0
    for a, b in ((Cn, In), (In, Cn)):
        pos = (a * b).sum(-1, keepdim=True)
        neg = (a.unsqueeze(1) * b[idx]).sum(-1)
        logits = torch.cat([pos, neg], 1) / tau
        total = total + F.cross_entropy(logits, torch.zeros(len(C), dtype=torch.long))
    return (0.5 * total).reshape(1)


def write_em3():
    w = Writer("em3.bin")
    with own_stream(3):
        module_case(w, "lora", "lora", [9, 7, 3, 6.0], LoraLinear(9, 7, 3, 2.0),
                    x=rand(2, 4, 9), call=lambda m, x: m(x))
        B, M, K, dv, dt, d = 2, 2, 3, 6, 5, 8
        presence = torch.tensor([[1, 0, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.float64)
        for norm_first in (1, 0):
            module_case(w, "fqformer_prenorm%d" % norm_first, "fqformer",
                        [dv, dt, d, 2, 2, 2, 12, norm_first],
                        FQFormer(dv, dt, d, 2, 2, 2, 12, bool(norm_first)),
                        x=rand(B, M, dv), x2=rand(B, K, dt), key_mask=presence,
                        call=lambda m, a, b: m(a, b, presence))
        mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 1, 1]],
                            dtype=torch.float64)
        for hidden in (0, 7):
            module_case(w, "target_attention_%s" % ("mlp" if hidden else "dot"),
                        "target_attention", [6, hidden], TargetAttention(6, hidden),
                        x=rand(3, 6), x2=rand(3, 5, 6), key_mask=mask,
                        call=lambda m, c, s: m(c, s, mask),
                        names=lambda n: n.replace("mlp.2.", "mlp.1.", 1))
    w.close()
    w = Writer("em3_losses.bin")
    with own_stream(4):
        negs = [[1, 3], [2, 0], [4, 1], [0, 2], [3, 1]]
        op_case(w, "cic_fixed", OPS["cic"], [rand(5, 6), rand(5, 6)],
                lambda c, i: cic_reference(c, i, negs, 0.2), [0.2, 2],
                ids=[j for row in negs for j in row])
        every = [[j for j in range(4) if j != i] for i in range(4)]
        op_case(w, "cic_all", OPS["cic"], [rand(4, 6), rand(4, 6)],
                lambda c, i: cic_reference(c, i, every, 0.5), [0.5, 0])
    w.close()


def lightgcn_adjacency(users, items, n_users, n_items):
    """A_hat = D^-1/2 A D^-1/2 as a torch sparse tensor, as LightGCN-PyTorch's
    getSparseGraph builds it (duplicate pairs count once, zero degree -> 0)."""
    r = torch.zeros(n_users, n_items, dtype=torch.float64)
    r[torch.tensor(users), torch.tensor(items)] = 1.0
    n = n_users + n_items
    a = torch.zeros(n, n, dtype=torch.float64)
    a[:n_users, n_users:] = r
    a[n_users:, :n_users] = r.t()
    deg = a.sum(1)
    d_inv = deg.pow(-0.5)
    d_inv[torch.isinf(d_inv)] = 0.0
    return (d_inv[:, None] * a * d_inv[None, :]).to_sparse()


def write_graph():
    """Propagation and LightGCN (torch.sparse.mm, layer mean or given
    weights), forward and backward."""
    w = Writer("graph.bin")
    with own_stream(5):
        U, I, d = 6, 9, 5
        users = [0, 0, 1, 1, 2, 2, 2, 4, 5, 5, 0, 3, 5]
        items = [0, 3, 3, 8, 1, 2, 8, 4, 0, 7, 3, 6, 8]  # (0, 3) twice; item 5 isolated
        adj = lightgcn_adjacency(users, items, U, I)
        w.add("graph.users", np.asarray(users, dtype=np.float32))
        w.add("graph.items", np.asarray(items, dtype=np.float32))
        w.add("graph.sizes", [U, I])
        for name, layers, weights in (("propagate", -1, None), ("lightgcn3", 3, None),
                                      ("lightgcn2w", 2, [0.5, 1.25, -0.75])):
            ego = rand(U + I, d).requires_grad_(True)
            if layers < 0:
                y = torch.sparse.mm(adj, ego)
            else:
                wk = weights or [1.0 / (layers + 1)] * (layers + 1)
                e, y = ego, wk[0] * ego
                for k in range(1, layers + 1):
                    e = torch.sparse.mm(adj, e)
                    y = y + wk[k] * e
            r = rand(*y.shape)
            y.backward(r)
            w.add(name + ".layers", [layers])
            w.add(name + ".weights", weights or [0])
            w.add(name + ".x", ego.detach().numpy())
            w.add(name + ".r", r.numpy())
            w.add(name + ".y", y.detach().numpy())
            w.add(name + ".dx", ego.grad.numpy())
    w.close()


def knn_adjacency(x, k, binary):
    """AlignRec's item-item graph as the MMRec / AlignRec code builds it:
    F.normalize, sim = x x^T, torch.topk per row, a sparse adjacency with
    the kept values (binary: ones), row-sum degrees, w / sqrt(deg_i deg_j)
    (libmmrec: 0 where a degree is <= 0). torch.topk leaves the order of
    ties open; libmmrec keeps the lower id, as a stable sort does, and the
    cases have no other ties at a row's k-th value."""
    xn = F.normalize(x, dim=1)
    sim = xn @ xn.t()
    val, ind = torch.sort(sim, dim=-1, descending=True, stable=True)
    top = torch.topk(sim, k, dim=-1).indices
    for i in range(len(x)):
        if k < len(x) and val[i, k - 1] != val[i, k]:
            assert val[i, k - 1] - val[i, k] > 1e-4, "near tie in row %d" % i
            assert set(top[i].tolist()) == set(ind[i, :k].tolist())
    rows = torch.arange(len(x)).repeat_interleave(k)
    cols = ind[:, :k].flatten()
    vals = torch.ones(len(rows)) if binary else val[:, :k].flatten()
    deg = torch.zeros(len(x)).scatter_add_(0, rows, vals)
    d_inv = torch.where(deg > 0, deg.clamp_min(1e-300).pow(-0.5), torch.zeros_like(deg))
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), d_inv[rows] * vals * d_inv[cols],
                                   (len(x), len(x))).coalesce()


def write_knn():
    """The kNN content graph (dense), and propagation and 2-layer LightGCN
    over it, forward and backward (dx = A^T r: A is not symmetric)."""
    w = Writer("knn.bin")
    with own_stream(7):
        x = rand(12, 6)
        x[7] = 0.0  # a zero row: similarity 0 to everything, its own row ties
        x[9] = x[3]  # a duplicate: both in each other's top k
        neg = torch.tensor([[1.0], [-1.0], [-2.0], [-4.0], [-0.5]])  # row 0's degree is -1
        for name, feats, k, binary in (("knn", x, 4, 0), ("knn_binary", x, 3, 1),
                                       ("knn_negdeg", neg, 3, 0)):
            adj = knn_adjacency(feats, k, binary)
            w.add(name + ".features", feats.numpy())
            w.add(name + ".cfg", [k, binary])
            w.add(name + ".adj", adj.to_dense().numpy())
            for layers in (-1, 2):
                ego = rand(len(feats), 5).requires_grad_(True)
                if layers < 0:
                    y = torch.sparse.mm(adj, ego)
                else:
                    e, y = ego, ego / 3
                    for _ in range(layers):
                        e = torch.sparse.mm(adj, e)
                        y = y + e / 3
                r = rand(*y.shape)
                y.backward(r)
                case = "%s.%s" % (name, "propagate" if layers < 0 else "lightgcn2")
                w.add(case + ".x", ego.detach().numpy())
                w.add(case + ".r", r.numpy())
                w.add(case + ".y", y.detach().numpy())
                w.add(case + ".dx", ego.grad.numpy())
    w.close()


def write_metrics():
    """Full ranking as LightGCN-PyTorch evaluates: scores = U I^T, training
    items set to -inf, torch.topk; Recall, NDCG, Precision, HR, MRR at K."""
    w = Writer("metrics.bin")
    with own_stream(6):
        U, I, d = 40, 60, 8
        ue, ie = rand(U, d).float(), rand(I, d).float()
        g = torch.Generator().manual_seed(7)
        train, test = set(), set()
        for u in range(U - 3):  # the last 3 users have no test items
            for i in torch.randperm(I, generator=g)[:9].tolist():
                (train if len([p for p in train if p[0] == u]) < 6 else test).add((u, i))
        train, test = sorted(train), sorted(test)
        scores = ue @ ie.t()
        for u, i in train:
            scores[u, i] = float("-inf")
        ks = [1, 5, 10, 20]
        rows = []
        for k in ks:
            top = torch.topk(scores, k, dim=1).indices
            m = np.zeros(5)
            users = sorted({u for u, _ in test})
            for u in users:
                items = {i for v, i in test if v == u}
                hits = [1.0 if top[u, p].item() in items else 0.0 for p in range(k)]
                dcg = sum(h / np.log2(p + 2) for p, h in enumerate(hits))
                idcg = sum(1 / np.log2(p + 2) for p in range(min(k, len(items))))
                first = next((p for p, h in enumerate(hits) if h), None)
                m += [sum(hits) / len(items), dcg / idcg, sum(hits) / k, float(any(hits)),
                      0.0 if first is None else 1.0 / (first + 1)]
            rows.append(m / len(users))
        w.add("rank.user_emb", ue.numpy())
        w.add("rank.item_emb", ie.numpy())
        w.add("rank.train", np.asarray(train, dtype=np.float32))
        w.add("rank.test", np.asarray(test, dtype=np.float32))
        w.add("rank.ks", ks)
        w.add("rank.metrics", np.asarray(rows))
    w.close()


# ---- AlignRec ----
# A transcription of ALIGNREC (github.com/sjtulyf123/AlignRec_CIKM24,
# src/models/alignrec.py) with MMRec's EmbLoss and the LATTICE utilities
# (src/common/loss.py, src/utils/utils.py), dense matrices for the sparse
# ones, in float64.

def alignrec_infonce(view1, view2, temperature):
    """ALIGNREC.InfoNCE: one direction, view1's rows are the anchors."""
    view1, view2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    pos_score = torch.exp((view1 * view2).sum(dim=-1) / temperature)
    ttl_score = torch.exp(torch.matmul(view1, view2.transpose(0, 1)) / temperature).sum(dim=1)
    return torch.mean(-torch.log(pos_score / ttl_score))


def alignrec_build_sim(context):
    context_norm = context.div(torch.norm(context, p=2, dim=-1, keepdim=True))
    return torch.mm(context_norm, context_norm.transpose(1, 0))


def alignrec_sim_loss(embedding, sim):
    """ALIGNREC.sim_loss with EmbLoss: torch.norm(x, p=2) / rows."""
    diff = torch.mm(embedding, embedding.t()) - sim.detach()
    return torch.norm(diff, p=2) / diff.shape[0]


def alignrec_ui_cosine(u, i):
    return 1 - F.cosine_similarity(u, i, dim=-1).mean()


def alignrec_knn_adj(features, topk):
    """build_knn_normalized_graph(build_sim(features), topk, sparse, 'sym')
    as a dense matrix: each row keeps its top-k similarities, then
    w_ij / sqrt(deg_i deg_j) with deg the row sums of the kept values."""
    sim = alignrec_build_sim(features)
    knn_val, knn_ind = torch.topk(sim, topk, dim=-1)
    adj = torch.zeros_like(sim).scatter_(-1, knn_ind, knn_val)
    d_inv_sqrt = adj.sum(-1).pow(-0.5)
    d_inv_sqrt[torch.isinf(d_inv_sqrt)] = 0.0
    return d_inv_sqrt[:, None] * adj * d_inv_sqrt[None, :]


class AlignRecRef(torch.nn.Module):
    """ALIGNREC.forward(adj, train=True) with use_ln, n_ui_layers,
    n_layers; parameters named as libmmrec names them."""

    def __init__(self, n_users, n_items, features, dim, id_layers, mm_layers, use_ln):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.id_layers, self.mm_layers = id_layers, mm_layers
        self.user_embedding = torch.nn.Embedding(n_users, dim)
        self.item_embedding = torch.nn.Embedding(n_items, dim)
        cdim = features.shape[1]
        self.content = torch.nn.Module()
        # nn.Embedding.from_pretrained(v_feat, freeze=False) in the reference
        self.content.features = torch.nn.Parameter(features.clone())
        self.content.norm = torch.nn.LayerNorm(cdim) if use_ln else None
        self.content.proj = torch.nn.Linear(cdim, dim)
        self.content.gate = torch.nn.Linear(dim, dim)

    def forward(self, norm_adj, mm_adj):
        feats = self.content.features
        if self.content.norm is not None:
            feats = self.content.norm(feats)
        mm_feats = self.content.proj(feats)
        mm_item = self.item_embedding.weight * torch.sigmoid(self.content.gate(mm_feats))
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], 0)
        layers = [ego]
        for _ in range(self.id_layers):
            ego = torch.mm(norm_adj, ego)
            layers.append(ego)
        content_embeds = torch.stack(layers, 1).mean(1)
        for _ in range(self.mm_layers):
            mm_item = torch.mm(mm_adj, mm_item)
        R = norm_adj[:self.n_users, self.n_users:]
        mm_user = torch.mm(R, mm_item)
        mm_embeds = torch.cat([mm_user, mm_item], 0)
        all_embeds = content_embeds + mm_embeds
        return all_embeds, content_embeds, mm_embeds


def alignrec_case(w, name, U, I, cdim, dim, id_layers, mm_layers, use_ln, knn_k,
                  users, items, batch, weights):
    """Forward views and ALIGNREC.calculate_loss (ui_cosine_loss on) with
    its gradients. weights: [reg_weight, cl_loss, sim_weight,
    ui_cosine_loss_weight]; temperature 0.2 as the reference."""
    features = rand(I, cdim, low=0.05, high=1.0)  # positive: every top-k similarity > 0
    model = AlignRecRef(U, I, features, dim, id_layers, mm_layers, bool(use_ln))
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname != "content.features":
                p.copy_(rand(*p.shape, low=-0.5, high=0.5))
    norm_adj = lightgcn_adjacency(users, items, U, I).to_dense()
    mm_adj = alignrec_knn_adj(features, knn_k)
    all_e, id_e, mm_e = model(norm_adj, mm_adj)
    bu, bi, bj = (torch.tensor(x) for x in batch)
    ua, ia = torch.split(all_e, [U, I], 0)
    u_g, pos_g, neg_g = ua[bu], ia[bi], ia[bj]
    reg_weight, cl_weight, sim_weight, ui_weight = weights
    pos_scores = (u_g * pos_g).sum(1)
    neg_scores = (u_g * neg_g).sum(1)
    reg = 0.5 * (u_g ** 2).sum() + 0.5 * (pos_g ** 2).sum() + 0.5 * (neg_g ** 2).sum()
    mf_loss = -torch.mean(F.logsigmoid(pos_scores - neg_scores))
    emb_loss = reg_weight * reg / len(batch[0])
    mm_u, mm_i = torch.split(mm_e, [U, I], 0)
    id_u, id_i = torch.split(id_e, [U, I], 0)
    cl = alignrec_infonce(mm_i[bi], id_i[bi], 0.2) + alignrec_infonce(mm_u[bu], id_u[bu], 0.2)
    mf_loss = mf_loss + alignrec_ui_cosine(u_g, pos_g) * ui_weight
    # v_feat aliases mm_embedding.weight in the reference: the table's rows
    sim = alignrec_sim_loss(mm_i[bi], alignrec_build_sim(model.content.features[bi].detach()))
    loss = mf_loss + emb_loss + cl_weight * cl + sim_weight * sim
    loss.backward()
    w.add(name + ".cfg", [U, I, cdim, dim, id_layers, mm_layers, use_ln, knn_k])
    w.add(name + ".weights", weights)
    w.add(name + ".inter", np.asarray([users, items], dtype=np.float32))
    w.add(name + ".batch", np.asarray(batch, dtype=np.float32))
    w.add(name + ".mm_adj", mm_adj.numpy())
    for tag, t in (("users", ua), ("items", ia), ("id_users", id_u), ("id_items", id_i),
                   ("mm_users", mm_u), ("mm_items", mm_i)):
        w.add("%s.%s" % (name, tag), t.detach().numpy())
    w.add(name + ".loss", loss.detach().reshape(1).numpy())
    for pname, p in model.named_parameters():
        w.add("%s.param.%s" % (name, pname), p.detach().numpy())
        w.add("%s.grad.%s" % (name, pname), p.grad.numpy())


def write_alignrec():
    """AlignRec's losses (inputs, output, input gradients of the loss
    itself) and the whole block with the reference's training loss."""
    w = Writer("alignrec.bin")
    with own_stream(40):
        for name, fn, shapes in (
                ("infonce", lambda a, b: alignrec_infonce(a, b, 0.2), [(6, 5), (6, 5)]),
                ("infonce_t05", lambda a, b: alignrec_infonce(a, b, 0.5), [(4, 3), (4, 3)]),
                ("anti_collapse", lambda m, c: alignrec_sim_loss(m, alignrec_build_sim(c)),
                 [(5, 4), (5, 7)]),
                ("ui_alignment", alignrec_ui_cosine, [(6, 5), (6, 5)])):
            xs = [rand(*s).requires_grad_(True) for s in shapes]
            y = fn(*xs).reshape(1)
            y.backward()
            for k, x in enumerate(xs):
                w.add("%s.in%d" % (name, k), x.detach().numpy())
                if x.grad is not None:
                    w.add("%s.d%d" % (name, k), x.grad.numpy())
            w.add(name + ".y", y.detach().numpy())
        U, I = 5, 8
        users = [0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4, 1]
        items = [0, 2, 5, 1, 2, 3, 6, 7, 4, 0, 7, 5]
        batch = [[0, 1, 2, 3, 4, 2], [2, 1, 6, 4, 7, 3], [4, 3, 0, 1, 5, 1]]
        alignrec_case(w, "ar_plain", U, I, 6, 4, 2, 1, 0, 3, users, items, batch,
                      [1e-2, 0.5, 0.3, 0.1])
        alignrec_case(w, "ar_ln", U, I, 6, 4, 1, 2, 1, 4, users, items, batch,
                      [1e-2, 0.5, 0.3, 0.1])
        alignrec_case(w, "ar_nomm", U, I, 6, 4, 2, 0, 1, 3, users, items, batch,
                      [1e-2, 0.5, 0.3, 0.1])
    w.close()


def batch_softmax_rows(scores, tau, pos_t, bias=None, ids=None, mask=None):
    """Each row's cross-entropy of scores / tau + bias against its positive,
    the removed pairs (mask 0, accidental hits; never the positive) filled
    with -inf."""
    B, N = scores.shape
    logits = scores / tau
    if bias is not None:
        logits = logits + torch.tensor(bias, dtype=torch.float64)
    removed = torch.zeros(B, N, dtype=torch.bool)
    if mask is not None:
        removed |= torch.tensor(mask) == 0
    if ids is not None:
        id_t = torch.tensor(ids)
        removed |= id_t[None, :] == id_t[pos_t][:, None]
    removed[torch.arange(B), pos_t] = False
    logits = logits.masked_fill(removed, float("-inf"))
    return F.cross_entropy(logits, pos_t, reduction="none")


def batch_softmax_reference(q, c, tau, normalize, symmetric, weight_mean, bias=None,
                            pos=None, ids=None, mask=None, w=None):
    """mmrec_loss_batch_softmax with plain torch ops: logits, the removed
    pairs filled with -inf, cross_entropy(reduction="none"), row weights."""
    if normalize:
        q, c = F.normalize(q, dim=-1, eps=1e-12), F.normalize(c, dim=-1, eps=1e-12)
    B = len(q)
    pos_t = torch.arange(B) if pos is None else torch.tensor(pos)
    w_t = torch.ones(B) if w is None else torch.tensor(w, dtype=torch.float64)
    rows = batch_softmax_rows(q @ c.T, tau, pos_t, bias, ids, mask)
    if symmetric:
        rows = 0.5 * (rows + batch_softmax_rows(c @ q.T, tau, pos_t, bias, ids, mask))
    divisor = w_t.sum() if weight_mean else B
    return ((w_t * rows).sum() / divisor).reshape(1)


def write_batch_softmax():
    """Cases of mmrec_loss_batch_softmax: <case>.cfg = [tau, normalize,
    symmetric, weight_mean], <case>.q / .c (inputs), optional .bias, .pos,
    .ids, .mask ([B, N], 1 = kept), .w, then .y and the gradients .dq, .dc
    of the loss itself."""
    w = Writer("batch_softmax.bin")
    gen_np = np.random.default_rng(7)

    def case(name, q, c, tau, normalize=0, symmetric=0, weight_mean=0, **opt):
        q, c = q.clone().requires_grad_(True), c.clone().requires_grad_(True)
        y = batch_softmax_reference(q, c, tau, normalize, symmetric, weight_mean, **opt)
        y.backward()
        w.add(name + ".cfg", [tau, normalize, symmetric, weight_mean])
        w.add(name + ".q", q.detach().numpy())
        w.add(name + ".c", c.detach().numpy())
        for key in ("bias", "pos", "ids", "mask", "w"):
            if opt.get(key) is not None:
                w.add("%s.%s" % (name, key), np.asarray(opt[key], dtype=np.float32))
        w.add(name + ".y", y.detach().numpy())
        w.add(name + ".dq", q.grad.numpy())
        w.add(name + ".dc", c.grad.numpy())

    def log_p(n):  # a logQ correction: -log of a sampling probability
        p = gen_np.uniform(0.05, 1.0, n)
        return list(-np.log(p / p.sum()).astype(np.float32))

    with own_stream(60):
        case("plain", rand(5, 4), rand(5, 4), 1.0)
        case("normalize_bias", rand(6, 5), rand(6, 5), 0.1, normalize=1, bias=log_p(6))
        case("positives_extra", rand(4, 3), rand(7, 3), 0.5, bias=log_p(7), pos=[2, 0, 5, 2])
        mask = (gen_np.uniform(size=(6, 9)) > 0.3).astype(np.float32)
        mask[1, 4] = 0  # row 1's positive: never removed
        case("ids_mask_weights", rand(6, 5), rand(9, 5), 0.2, normalize=1, weight_mean=1,
             bias=log_p(9), pos=[0, 4, 2, 7, 8, 4], ids=[10, 11, 12, 10, 13, 14, 11, 15, 16],
             mask=mask, w=[1.0, 0.5, 0.0, 2.0, 1.0, 1.5])
        mask = (gen_np.uniform(size=(6, 6)) > 0.4).astype(np.float32)
        case("symmetric", rand(6, 5), rand(6, 5), 0.3, normalize=1, symmetric=1,
             bias=log_p(6), ids=[1, 2, 3, 1, 4, 5], mask=mask, w=[1.0, 2.0, 0.5, 1.0, 0.0, 1.0])
        case("symmetric_weight_mean", rand(5, 3), rand(5, 3), 0.7, symmetric=1, weight_mean=1,
             w=[0.5, 1.0, 0.0, 2.0, 1.0])
        # logits near 1e4, exact in float32 (integer dot products): the
        # log-sum-exp must be formed as (x - max) - log(sum) to keep them
        a = torch.randint(-3, 4, (5,), generator=gen).double()
        b = torch.randint(-3, 4, (6,), generator=gen).double()
        q = torch.stack([torch.full((5,), 100.0), a], 1)
        c = torch.stack([torch.full((6,), 100.0), b], 1)
        case("large_logits", q, c, 1.0, pos=[1, 0, 3, 5, 2])
    w.close()


def pair_auc(pos, neg):
    """AUC by brute force over all (positive, negative) pairs, ties 1/2."""
    pos, neg = torch.as_tensor(pos).double(), torch.as_tensor(neg).double()
    gt = (pos[:, None] > neg[None, :]).sum().item()
    eq = (pos[:, None] == neg[None, :]).sum().item()
    return (gt + 0.5 * eq) / (len(pos) * len(neg))


def write_metrics_auc():
    """Pointwise AUC and GAUC (DIN: groups weighted by their sample count,
    groups lacking a positive or a negative skipped) and the per-user AUC of
    full ranking (candidates: all items but the user's train items), all by
    brute force over pairs, as sklearn.metrics.roc_auc_score defines AUC."""
    w = Writer("metrics_auc.bin")
    with own_stream(31):
        n = 400
        scores = (rand(n) * 10).round() / 10  # ties, and -0.0 next to 0.0
        labels = (rand(n, low=0, high=1) < 0.3).double()
        groups = (rand(n, low=-6, high=14)).floor()
        w.add("point.scores", scores.numpy())
        w.add("point.labels", labels.numpy())
        w.add("point.groups", groups.numpy())
        w.add("point.auc", [pair_auc(scores[labels == 1], scores[labels == 0])])
        num = den = kept = 0.0
        for g in sorted(set(groups.tolist())):
            m = groups == g
            pos, neg = scores[m & (labels == 1)], scores[m & (labels == 0)]
            if len(pos) and len(neg):
                num += m.sum().item() * pair_auc(pos, neg)
                den += m.sum().item()
                kept += 1
        w.add("point.gauc", [num / den])
        w.add("point.groups_kept", [kept])
        # full ranking: embeddings on a 1/8 grid make float32 scores exact,
        # so ties are real and the C products match these ones bit for bit
        U, I, d = 30, 70, 6
        ue = (rand(U, d) * 8).round() / 8
        ie = (rand(I, d) * 8).round() / 8
        ie[5] = ie[9]  # tied items
        g = torch.Generator().manual_seed(32)
        train, test = set(), set()
        for u in range(U - 2):  # the last two users have no test items
            items = torch.randperm(I, generator=g)[:12].tolist()
            train.update((u, i) for i in items[:8])
            test.update((u, i) for i in items[8:8 + 1 + u % 4])
        train.add((3, 0))  # a test item also in train: not a candidate
        test.add((3, 0))
        train, test = sorted(train), sorted(test)
        scores = ue @ ie.t()
        aucs, weights = [], []
        for u in sorted({u for u, _ in test}):
            tr = {i for v, i in train if v == u}
            pos = [i for v, i in test if v == u and i not in tr]
            neg = [i for i in range(I) if i not in tr and i not in pos]
            if pos and neg:
                aucs.append(pair_auc(scores[u, pos], scores[u, neg]))
                weights.append(len(pos))
        aucs, weights = np.array(aucs), np.array(weights)
        w.add("full.user_emb", ue.numpy())
        w.add("full.item_emb", ie.numpy())
        w.add("full.train", np.asarray(train, dtype=np.float32))
        w.add("full.test", np.asarray(test, dtype=np.float32))
        w.add("full.auc", [aucs.mean(), (aucs * weights).sum() / weights.sum(), len(aucs)])
    w.close()


def cosine_rank(q, feats, target, excluded):
    """Rank (1-based) of `target` among the items not in `excluded` by
    cosine similarity to q (0 with a zero vector), lower id first on ties;
    and the smallest gap between the target's score and another candidate's
    (ties between zero rows excepted), which must stay clear of float32
    rounding."""
    qn, norms = q.norm(), feats.norm(dim=1)
    cos, nz = torch.zeros(len(feats)), norms > 0
    if qn > 0:
        cos[nz] = feats[nz] @ q / (norms[nz] * qn)
    s, rank, gap = cos[target].item(), 1, float("inf")
    for j in range(len(feats)):
        if j == target or j in excluded:
            continue
        c = cos[j].item()
        rank += c > s or (c == s and j < target)
        if not (c == s and (norms[j] == 0 or qn == 0)):
            gap = min(gap, abs(c - s))
    return rank, gap


def one_target_metrics(ranks, ks):
    rows = []
    for k in ks:
        hit = np.array([r <= k for r in ranks], dtype=np.float64)
        ndcg = np.array([1 / np.log2(r + 1) if r <= k else 0.0 for r in ranks])
        mrr = np.array([1 / r if r <= k else 0.0 for r in ranks])
        rows.append([hit.mean(), ndcg.mean(), hit.mean() / k, hit.mean(), mrr.mean()])
    return np.asarray(rows)


def write_content_eval():
    """AlignRec's intermediate evaluations (shared/METHODS.md): zero-shot
    (query = mean content of the history without the last item, history
    items excluded, target = the last item) and item-CF (target = the item
    with the most common users, lower id on ties; the item itself excluded),
    cosine ranking, per K: recall, ndcg, precision, hit rate, mrr."""
    w = Writer("content_eval.bin")
    I, F, U = 60, 12, 36
    ks = [1, 5, 10, 20]
    for attempt in range(50):  # the first draw whose ranks are clear of rounding
        with own_stream(41 + attempt):
            feats = rand(I, F)
            feats[7] = 0.0  # a zero row: cosine 0
            g = torch.Generator().manual_seed(42 + attempt)
            seqs = []
            for u in range(U):
                length = int(torch.randint(1, 9, (1,), generator=g))
                seqs.append(torch.randint(0, I, (length,), generator=g).tolist())
            seqs[4] = [3, 11, 3, 20, 11]  # the target also earlier in the history
            # the users' pairs interleaved at random, each user's in order
            slots = [u for u in range(U) for _ in seqs[u]]
            pairs, seen = [], [0] * U
            for k in torch.randperm(len(slots), generator=g).tolist():
                u = slots[k]
                pairs.append((u, seqs[u][seen[u]]))
                seen[u] += 1
            zs_ranks, gaps = [], []
            for u in range(U):
                if len(seqs[u]) < 2:
                    continue
                hist, target = seqs[u][:-1], seqs[u][-1]
                q = feats[hist].mean(0)
                r, gap = cosine_rank(q, feats, target, set(hist) - {target})
                zs_ranks.append(r)
                gaps.append(gap)
            # item-CF
            R = torch.zeros(U + 4, I)
            for u in range(U + 4):
                for i in torch.randperm(I, generator=g)[:int(torch.randint(2, 9, (1,),
                                                                           generator=g))]:
                    R[u, i] = 1
            inter = [(u, i) for u in range(U + 4) for i in range(I) if R[u, i]]
            inter += inter[:5]  # repeats count once
            C = R.t() @ R
            C.fill_diagonal_(0)
            cf_ranks = []
            for j in range(I):
                if C[j].max() == 0:
                    continue
                target = int(torch.argmax(C[j]))  # the first maximum: the lowest id
                r, gap = cosine_rank(feats[j], feats, target, {j})
                cf_ranks.append(r)
                gaps.append(gap)
            if min(gaps) > 1e-4:
                break
    else:
        raise SystemExit("content_eval: no draw clear of rounding")
    w.add("ks", ks)
    w.add("features", feats.numpy())
    w.add("zero_shot.pairs", np.asarray(pairs, dtype=np.float32))
    w.add("zero_shot.metrics", one_target_metrics(zs_ranks, ks))
    w.add("zero_shot.users", [len(zs_ranks)])
    w.add("item_cf.pairs", np.asarray(inter, dtype=np.float32))
    w.add("item_cf.metrics", one_target_metrics(cf_ranks, ks))
    w.add("item_cf.items", [len(cf_ranks)])
    w.close()


# ---- numerics: accuracy against float64 on large offsets ----

def randn(*shape, mean=0.0, std=1.0):
    """float32 normal values, returned as float64 tensors holding exactly those."""
    x = torch.randn(*shape, generator=gen, dtype=torch.float32) * std + mean
    return x.double()


def layer_norm_f64(x, w, b, eps):
    """Two-pass LayerNorm in float64 (F.layer_norm's float64 Welford
    leaves a residue of about 1e-12 on a constant row of 12345.68)."""
    mu = x.mean(-1, keepdim=True)
    d = x - mu
    var = (d * d).mean(-1, keepdim=True)
    y = d / torch.sqrt(var + eps)
    return y if w is None else y * w + b


def add_hi_lo(w, name, t):
    """A float64 reference as two float32 arrays: hi = float32(t) and
    lo = float32(t - hi), so a test recovers t to about 2^-48 relative."""
    hi = t.float().double()
    w.add(name, hi.numpy())
    w.add(name + "_lo", (t - hi).numpy())


def accuracy_case(w, name, op, inputs, fn64, fn32=None, args=(), ids=None, diff=None):
    """Like op_case, with the float64 reference stored as hi/lo pairs
    (<case>.y, <case>.d<i>, each with _lo) and, for every stored
    reference, the largest absolute error of PyTorch's float32 result
    (<case>.y_terr, <case>.d<i>_terr): a float32 implementation is as
    careful as PyTorch's when its error is within a small factor of that."""
    fn32 = fn32 or fn64
    diff = diff or [True] * len(inputs)
    leaves = [x.clone().requires_grad_(d) for x, d in zip(inputs, diff)]
    y = fn64(*leaves)
    r = torch.ones_like(y) if op >= 30 else rand(*y.shape)
    leaves32 = [x.float().requires_grad_(d) for x, d in zip(inputs, diff)]
    y32 = fn32(*leaves32)
    if any(diff):
        y.backward(r)
        y32.backward(r.float())
    w.add(name + ".op", [op])
    w.add(name + ".args", list(args) if args else [0])
    if ids is not None:
        w.add(name + ".ids", np.asarray(ids, dtype=np.float32))
    w.add(name + ".r", r.numpy())
    pairs = [("y", y.detach(), y32.detach())]
    for i, (x, x32, d) in enumerate(zip(leaves, leaves32, diff)):
        w.add("%s.in%d" % (name, i), x.detach().numpy())
        if d:
            pairs.append(("d%d" % i, x.grad, x32.grad))
    for tag, ref, got in pairs:
        add_hi_lo(w, "%s.%s" % (name, tag), ref)
        w.add("%s.%s_terr" % (name, tag), [(got.double() - ref).abs().max().item()])


def write_numerics():
    """Log-softmax and softmax cross-entropy at logit offsets 1e2 .. 1e4;
    LayerNorm on rows whose mean is large against their spread and on
    constant rows (float64 reference: two-pass, so a constant row has
    variance 0); sum, mean, L2 normalization and cosine similarity on
    offset data."""
    w = Writer("numerics.bin")
    with own_stream(100):
        for tag, off in (("1e2", 1e2), ("1e3", 1e3), ("1e4", 1e4)):
            accuracy_case(w, "log_softmax_o" + tag, OPS["log_softmax"],
                          [rand(5, 33, low=off - 8, high=off + 8)],
                          lambda x: torch.log_softmax(x, -1), args=[0])
            labels = torch.randint(0, 41, (6,), generator=gen).tolist()
            accuracy_case(w, "softmax_ce_o" + tag, OPS["softmax_ce"],
                          [rand(6, 41, low=off - 8, high=off + 8)],
                          lambda x, lab=labels: F.cross_entropy(x, torch.tensor(lab)).reshape(1),
                          ids=labels)
    with own_stream(101):
        def ln(x, g, b):
            return layer_norm_f64(x, g, b, 1e-5)

        def ln32(x, g, b):
            return F.layer_norm(x, x.shape[-1:], g, b, 1e-5)

        for name, x in (("layer_norm_m2.5_n56", randn(6, 56, mean=-2.5, std=0.1)),
                        ("layer_norm_m2.5_n768", randn(2, 768, mean=-2.5, std=0.1)),
                        ("layer_norm_m12345_n200", randn(3, 200, mean=12345.68, std=1.0)),
                        ("layer_norm_const_n56", torch.full((3, 56), 12345.68).float().double()),
                        ("layer_norm_const_n768",
                         torch.full((2, 768), 12345.68).float().double())):
            n = x.shape[-1]
            accuracy_case(w, name, OPS["layer_norm"],
                          [x, rand(n, low=0.5, high=1.5), rand(n)], ln, ln32, args=[1, 1, 1e-5])
        accuracy_case(w, "layer_norm_plain_m100_n200", OPS["layer_norm"],
                      [randn(3, 200, mean=100.0, std=0.5)],
                      lambda x: layer_norm_f64(x, None, None, 1e-5),
                      lambda x: F.layer_norm(x, x.shape[-1:], None, None, 1e-5), args=[0, 0, 1e-5])
    with own_stream(102):
        # the backward of sum and mean (a scaled copy of dy) is not compared
        accuracy_case(w, "mean_last_m12345_n768", OPS["mean"],
                      [randn(2, 768, mean=12345.68)], lambda x: x.mean(-1), args=[-1],
                      diff=[False])
        accuracy_case(w, "sum_last_m2.5_n4096", OPS["sum"], [randn(1, 4096, mean=-2.5, std=0.1)],
                      lambda x: x.sum(-1), args=[-1], diff=[False])
        accuracy_case(w, "mean_axis0_m100", OPS["mean"], [randn(500, 8, mean=100.0)],
                      lambda x: x.mean(0), args=[0], diff=[False])
        accuracy_case(w, "mean_all_m12345", OPS["mean"], [randn(50, 100, mean=12345.68)],
                      lambda x: x.mean().reshape(1), args=[AXIS_ALL], diff=[False])
        accuracy_case(w, "l2_normalize_m100_n512", OPS["l2_normalize"],
                      [randn(2, 512, mean=100.0)],
                      lambda x: F.normalize(x, dim=-1, eps=1e-12), args=[1e-12])
        accuracy_case(w, "cosine_n512", OPS["cosine_similarity"], [randn(2, 512), randn(2, 512)],
                      lambda a, b: F.cosine_similarity(a, b, dim=-1, eps=1e-8), args=[1e-8])
        accuracy_case(w, "cosine_m100_n512", OPS["cosine_similarity"],
                      [randn(2, 512, mean=100.0), randn(2, 512, mean=100.0)],
                      lambda a, b: F.cosine_similarity(a, b, dim=-1, eps=1e-8), args=[1e-8])
    w.close()


# ---- IISAN (write_iisan) ----
# A transcription of the reference's modules (github.com/GAIR-Lab/IISAN,
# Code_Cached/model/modules.py AdapterBlock; Code_Cached/model/model.py
# IISANAdaptedMModel and ModelMM's com_dense, with Code_Uncached's
# per-modality conditionals), with the same attribute names, so
# named_parameters() gives the reference's names.

IISAN_MODES = ["intra_inter", "intra", "inter", "text", "image"]  # mmrec_iisan_mode order


class IisanAdapterBlock(torch.nn.Module):
    """AdapterBlock: fc_up(activate(fc_down(x))) + x. The reference creates
    a dropout it never applies."""

    def __init__(self, input_size, down_size, gelu):
        super().__init__()
        self.fc_down = torch.nn.Linear(input_size, down_size)
        self.activate = torch.nn.GELU() if gelu else torch.nn.ReLU()
        self.fc_up = torch.nn.Linear(down_size, input_size)
        self.dropout = torch.nn.Dropout(0.1)

    def forward(self, input_embs):
        x = self.fc_down(input_embs)
        x = self.activate(x)
        return self.fc_up(x) + input_embs


class IisanItemEncoder(torch.nn.Module):
    """IISANAdaptedMModel.forward and com_dense. `layers`: the layer each
    adapter reads (the reference's side_*_adapter_num_list); `first`: the
    layer that starts the intra-modal SANs under remove_first (the
    reference: 0), None otherwise. text-only and image-only are the intra
    path of one modality."""

    def __init__(self, H, d, r, gelu, modality, gated, layers, first):
        super().__init__()
        self.modality, self.gated, self.layers, self.first = modality, gated, layers, first
        self.text = modality in ("intra_inter", "intra", "text")
        self.image = modality in ("intra_inter", "intra", "image")
        self.inter = modality in ("intra_inter", "inter")
        n = len(layers)
        if self.image:
            self.cv_pre_fc = torch.nn.Linear(H, d)
        if self.text:
            self.bert_pre_fc = torch.nn.Linear(H, d)
        if self.image:
            self.cv_adapter_list = torch.nn.ModuleList(
                [IisanAdapterBlock(H, r, gelu) for _ in range(n)])
        if self.text:
            self.bert_adapter_list = torch.nn.ModuleList(
                [IisanAdapterBlock(H, r, gelu) for _ in range(n)])
        if self.inter:
            self.mm_adapter_list = torch.nn.ModuleList(
                [IisanAdapterBlock(H, r, gelu) for _ in range(n)])
        if self.text:
            self.fc_bert = torch.nn.Linear(H, H)
        if self.image:
            self.fc_cv = torch.nn.Linear(H, H)
        if self.inter:
            self.fc_mm = torch.nn.Linear(H, H)
            self.fc_mm_down = torch.nn.Linear(H, d)
        if gated:
            zeros = lambda: torch.nn.ParameterList(
                [torch.nn.Parameter(torch.ones(1) * 0) for _ in range(n)])
            if self.text:
                self.side_gate_params_text = zeros()
            if self.image:
                self.side_gate_params_cv = zeros()
            if self.inter:
                self.side_gate_params_mm = zeros()
        towers = int(self.text) + int(self.image) + int(self.inter)
        self.com_dense = torch.nn.Linear(d * towers, d)

    def forward(self, images, texts):
        """images, texts: [..., num_layers, H] (either may be None when the
        mode does not read it)."""
        lead = (images if images is not None else texts).shape[:-2]
        H = (images if images is not None else texts).shape[-1]
        cv = [images[..., i, :].reshape(-1, H) for i in range(images.shape[-2])] \
            if images is not None else None
        tx = [texts[..., i, :].reshape(-1, H) for i in range(texts.shape[-2])] \
            if texts is not None else None
        some = cv if cv is not None else tx
        if self.first is not None:
            last_cv = cv[self.first] if cv is not None else None
            last_text = tx[self.first] if tx is not None else None
        else:
            last_cv = torch.zeros(some[0].size())
            last_text = torch.zeros(some[0].size())
        last_mm = torch.zeros(some[0].size())
        for index, layer in enumerate(self.layers):
            if self.image:
                if self.gated:
                    gate = torch.sigmoid(self.side_gate_params_cv[index] / 0.1)
                    fusion_cv = gate * cv[layer] + (1 - gate) * last_cv
                else:
                    fusion_cv = cv[layer] + last_cv
                last_cv = self.cv_adapter_list[index](fusion_cv)
            if self.text:
                if self.gated:
                    gate = torch.sigmoid(self.side_gate_params_text[index] / 0.1)
                    fusion_text = gate * tx[layer] + (1 - gate) * last_text
                else:
                    fusion_text = tx[layer] + last_text
                last_text = self.bert_adapter_list[index](fusion_text)
            if self.inter:
                if self.gated:
                    gate = torch.sigmoid(self.side_gate_params_mm[index] / 0.1)
                    last_mm = last_mm + gate * cv[layer] + (1 - gate) * tx[layer]
                else:
                    last_mm = last_mm + cv[layer] + tx[layer]
                last_mm = self.mm_adapter_list[index](last_mm)
        parts = []
        if self.image:
            parts.append(self.cv_pre_fc(self.fc_cv(last_cv)))
        if self.text:
            parts.append(self.bert_pre_fc(self.fc_bert(last_text)))
        if self.inter:
            parts.append(self.fc_mm_down(self.fc_mm(last_mm)))
        out = self.com_dense(torch.cat(parts, dim=1))
        return out.reshape(*lead, -1)


def iisan_case(w, name, lead, H, d, r, gelu, mode, gated, num_layers, kept, remove_first):
    """<case>.cfg = [H, d, r, activation (1 ReLU, 2 GELU), mode, gate (0
    sigmoid, 1 none), temperature, num_layers, remove_first, num_kept,
    kept...]; <case>.text / .image [*lead, num_layers, H] (absent when the
    mode does not read them), .r, .y, .dtext / .dimage, .param.<name>,
    .grad.<name>."""
    modality = IISAN_MODES[mode]
    layers = kept[1:] if remove_first else kept
    model = IisanItemEncoder(H, d, r, gelu, modality, gated, layers,
                             kept[0] if remove_first else None)
    with torch.no_grad():
        for pname, p in model.named_parameters():  # gates too: p != 0
            if pname.endswith("fc_down.bias"):  # most ReLU units active, not all
                p.copy_(rand(*p.shape, low=0.1, high=0.6))
            elif "adapter_list" in pname:  # the SAN's state stays near the inputs' scale
                p.copy_(rand(*p.shape, low=-0.3, high=0.3))
            else:
                p.copy_(rand(*p.shape, low=-0.5, high=0.5))
    reads_text = modality in ("intra_inter", "intra", "inter", "text")
    reads_image = modality in ("intra_inter", "intra", "inter", "image")
    text = rand(*lead, num_layers, H).requires_grad_(True) if reads_text else None
    image = rand(*lead, num_layers, H).requires_grad_(True) if reads_image else None
    y = model(image, text)
    r_up = rand(*y.shape)
    y.backward(r_up)
    w.add(name + ".cfg", [H, d, r, 2 if gelu else 1, mode, 0 if gated else 1, 0.1, num_layers,
                          int(remove_first), len(kept)] + list(kept))
    if text is not None:
        w.add(name + ".text", text.detach().numpy())
        w.add(name + ".dtext", text.grad.numpy())
    if image is not None:
        w.add(name + ".image", image.detach().numpy())
        w.add(name + ".dimage", image.grad.numpy())
    w.add(name + ".r", r_up.numpy())
    w.add(name + ".y", y.detach().numpy())
    for pname, p in model.named_parameters():
        w.add("%s.param.%s" % (name, pname), p.detach().numpy())
        w.add("%s.grad.%s" % (name, pname), p.grad.numpy())


def iisan_adapter_case(w, name, dim, r, gelu, x):
    m = IisanAdapterBlock(dim, r, gelu)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(rand(*p.shape, low=-0.5, high=0.5))
    x = x.clone().requires_grad_(True)
    y = m(x)
    r_up = rand(*y.shape)
    y.backward(r_up)
    w.add(name + ".cfg", [dim, r, 2 if gelu else 1])
    w.add(name + ".x", x.detach().numpy())
    w.add(name + ".r", r_up.numpy())
    w.add(name + ".y", y.detach().numpy())
    w.add(name + ".dx", x.grad.numpy())
    for pname, p in m.named_parameters():
        w.add("%s.param.%s" % (name, pname), p.detach().numpy())
        w.add("%s.grad.%s" % (name, pname), p.grad.numpy())


def write_iisan():
    """The bottleneck adapter alone (<case>.x, .r, .y, .dx, .param.*,
    .grad.*; cfg [dim, bottleneck, activation]) and the IISAN item encoder
    in every mode (iisan_case)."""
    w = Writer("iisan.bin")
    with own_stream(50):
        for name, gelu in (("adapter_relu", False), ("adapter_gelu", True)):
            iisan_adapter_case(w, name, 10, 3, gelu, rand(7, 10))
        H, d, r, L = 16, 3, 4, 5
        iisan_case(w, "ii", [6], H, d, r, False, 0, True, L, [0, 2, 4], False)
        iisan_case(w, "ii_rf_gelu", [6], H, d, r, True, 0, True, L, [0, 1, 3, 4], True)
        iisan_case(w, "ii_sum", [6], H, d, r, False, 0, False, L, [0, 2, 4], False)
        iisan_case(w, "intra", [5], H, d, r, False, 1, True, L, [1, 2, 4], False)
        iisan_case(w, "inter", [5], H, d, r, True, 2, True, L, [0, 2, 4], False)
        iisan_case(w, "text", [2, 3], H, d, r, False, 3, True, L, [0, 2, 4], False)
        iisan_case(w, "image_rf", [4], H, d, r, False, 4, True, L, [0, 2, 3], True)


# ---- the sequence softmax ----
# IISAN's in-batch debiased CE, transcribed from its code:
# github.com/GAIR-Lab/IISAN at 67f5c1faf12a1f9fc3258922bb05684561532d1d,
# Code_Cached/model/model.py (ModelMM.forward), with the popularity of
# data_utils/preprocess.py (read_behaviors) and the flattened ids of run.py.


def iisan_loss_verbatim(prec_vec, score_embs, sample_items_id, log_mask, pop_prob_list,
                        max_seq_len):
    """model.py ModelMM.forward from `debias_logits` to the loss, as
    written there (device moves dropped)."""
    debias_logits = torch.log(pop_prob_list[sample_items_id.view(-1)])
    bs = log_mask.size(0)
    ce_label = torch.tensor(
        [i * max_seq_len + i + j for i in range(bs) for j in range(1, max_seq_len + 1)],
        dtype=torch.long)
    logits = torch.matmul(prec_vec, score_embs.t())
    logits = logits - debias_logits
    logits[:, torch.cat((log_mask, torch.ones(log_mask.size(0)).unsqueeze(-1)),
                        dim=1).view(-1) == 0] = -1e4
    logits = logits.view(bs, max_seq_len, -1)
    id_list = sample_items_id.view(bs, -1)
    for i in range(bs):
        reject_list = id_list[i]
        u_ids = sample_items_id.repeat(max_seq_len).expand((len(reject_list), -1))
        reject_mat = reject_list.expand((u_ids.size(1), len(reject_list))).t()
        mask_mat = (u_ids == reject_mat).any(axis=0).reshape(logits[i].shape)
        for j in range(max_seq_len):
            mask_mat[j][i * (max_seq_len + 1) + j + 1] = False
        logits[i][mask_mat] = -1e4
    indices = torch.where(log_mask.view(-1) != 0)
    logits = logits.view(bs * max_seq_len, -1)
    return F.cross_entropy(logits[indices], ce_label[indices])


def sequence_softmax_reference(states, items, ids, pop, tau, debias):
    """mmrec_loss_sequence_softmax in plain torch: the reference's loss with
    the removed entries at -inf, padding columns found by id (so a user
    without items and right padding are defined), rows counted when their
    input and target are items; 0 when none is."""
    B, T, d = states.shape
    L = T + 1
    idf = ids.reshape(-1)
    logits = states.reshape(B * T, d) @ items.reshape(B * L, d).T / tau
    if debias:
        logits = logits - torch.log(torch.where(idf != 0, pop[idf], torch.ones(())))
    removed = (idf == 0).unsqueeze(0).repeat(B * T, 1)
    for b in range(B):
        removed[b * T:(b + 1) * T] |= torch.isin(idf, ids[b]).unsqueeze(0)
    pos = torch.tensor([b * L + t + 1 for b in range(B) for t in range(T)])
    removed[torch.arange(B * T), pos] = False
    ce = F.cross_entropy(logits.masked_fill(removed, float("-inf")), pos, reduction="none")
    valid = ((ids[:, :-1] != 0) & (ids[:, 1:] != 0)).reshape(-1)
    if not valid.any():
        return (ce * 0).sum().reshape(1)
    return ce[valid].mean().reshape(1)


def write_sequence_softmax():
    """mmrec_loss_sequence_softmax against IISAN's loss. Per case: <case>.cfg
    = [temperature, debias], .states [B, T, d], .items [B, T + 1, d], .ids
    [B, T + 1] (0 = padding), .pop (popularity by id: counts), .y, and the
    gradients .dstates, .ditems of the loss. The writer checks the
    reference's own code gives the same loss and gradients on the batch
    without its user that has no item."""
    w = Writer("sequence_softmax.bin")

    def case(name, ids, pop, d, tau=1.0, debias=1, check_verbatim=False):
        ids = torch.tensor(ids)
        B, L = ids.shape
        pop = torch.tensor(pop, dtype=torch.float64)
        states = rand(B, L - 1, d).requires_grad_(True)
        items = rand(B, L, d).requires_grad_(True)
        y = sequence_softmax_reference(states, items, ids, pop, tau, debias)
        y.backward()
        if check_verbatim:  # the users with items, through the reference's code
            keep = (ids != 0).any(1)
            s2 = states.detach()[keep].clone().requires_grad_(True)
            i2 = items.detach()[keep].clone().requires_grad_(True)
            prob = pop / pop[1:].sum()
            prob[0] = 1.0  # preprocess.py: np.append([1], pop_prob_list)
            # run.py flattens the ids before the call: sample_items_id.view(-1)
            y2 = iisan_loss_verbatim(s2.reshape(-1, d), i2.reshape(-1, d), ids[keep].view(-1),
                                     (ids[keep][:, :-1] != 0).double(), prob, L - 1)
            y2.backward()
            assert abs(y2.item() - y.item()) < 1e-12, (y2.item(), y.item())
            assert torch.allclose(s2.grad, states.grad[keep], rtol=0, atol=1e-12)
            assert torch.allclose(i2.grad, items.grad[keep], rtol=0, atol=1e-12)
            assert (states.grad[~keep] == 0).all() and (items.grad[~keep] == 0).all()
        w.add(name + ".cfg", [tau, debias])
        w.add(name + ".states", states.detach().numpy())
        w.add(name + ".items", items.detach().numpy())
        w.add(name + ".ids", ids.numpy().astype(np.float32))
        w.add(name + ".pop", pop.numpy())
        w.add(name + ".y", y.detach().numpy())
        w.add(name + ".dstates", states.grad.numpy())
        w.add(name + ".ditems", items.grad.numpy())

    # counts by id: 0 is padding (not read), item 13 never trained (count 0)
    pop = [0, 4, 1, 9, 2, 7, 3, 5, 1, 6, 2, 8, 3, 0]
    with own_stream(210):
        # left padding as IISAN's data: item 3 twice in user 0, items 7 and 9
        # in users 0 and 1 (each the other's negative: removed), 4 in users
        # 1 and 2, a user of one input, a user without items
        case("left", [[3, 7, 3, 9, 12, 5], [0, 0, 7, 4, 9, 8], [0, 0, 0, 0, 11, 4],
                      [0, 0, 0, 0, 0, 0]], pop, 6, check_verbatim=True)
        # right padding, a temperature; the positive 5 repeats in user 0
        case("right_tau", [[5, 2, 5, 0, 0], [6, 1, 10, 2, 8], [12, 6, 0, 0, 0]], pop, 5,
             tau=0.5)
        # no debiasing
        case("no_debias", [[0, 1, 2, 3, 1], [4, 5, 6, 1, 7], [0, 0, 0, 0, 0]], pop, 4,
             debias=0)
    w.close()


# ---- the sequence encoder ----
# IISAN's user encoder, transcribed from its code: github.com/GAIR-Lab/IISAN,
# Code_Cached/model/modules.py (TransformerEncoder and its blocks) and
# Code_Cached/model/encoders.py (User_Encoder: the attention mask).


class SeqencFeedForward(torch.nn.Module):
    """modules.py PositionwiseFeedForward."""

    def __init__(self, d_model, d_inner, dropout):
        super().__init__()
        self.w_1 = torch.nn.Linear(d_model, d_inner)
        self.w_2 = torch.nn.Linear(d_inner, d_model)
        self.layer_norm = torch.nn.LayerNorm(d_model, eps=1e-6)
        self.dropout = torch.nn.Dropout(dropout)
        self.activate = torch.nn.ReLU()

    def forward(self, x):
        residual = x
        x = self.dropout(self.w_2(self.activate(self.w_1(x))))
        return self.layer_norm(residual + x)


class SeqencAttention(torch.nn.Module):
    """modules.py MultiHeadedAttention with its SelfAttention."""

    def __init__(self, n_heads, d_model, dropout):
        super().__init__()
        self.d_model, self.d_k, self.n_heads = d_model, d_model // n_heads, n_heads
        self.w_Q = torch.nn.Linear(d_model, d_model, bias=False)
        self.w_K = torch.nn.Linear(d_model, d_model, bias=False)
        self.w_V = torch.nn.Linear(d_model, d_model, bias=False)
        self.fc = torch.nn.Linear(d_model, d_model, bias=False)
        self.attn_dropout = torch.nn.Dropout(dropout)
        self.dropout = torch.nn.Dropout(dropout)
        self.layer_norm = torch.nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x, mask):
        B, T = x.shape[:2]
        residual = x
        q = self.w_Q(x).view(B, T, self.n_heads, self.d_k).transpose(1, 2)
        k = self.w_K(x).view(B, T, self.n_heads, self.d_k).transpose(1, 2)
        v = self.w_V(x).view(B, T, self.n_heads, self.d_k).transpose(1, 2)
        attn = torch.matmul(q, k.transpose(-2, -1)) / self.d_k ** 0.5
        attn = attn + mask
        p_attn = self.attn_dropout(torch.softmax(attn, dim=-1))
        x = torch.matmul(p_attn, v).transpose(1, 2).contiguous().view(B, T, self.d_model)
        x = self.dropout(self.fc(x))
        return self.layer_norm(residual + x)


class SeqencBlock(torch.nn.Module):
    """modules.py TransformerBlock."""

    def __init__(self, d_model, n_heads, d_inner, dropout):
        super().__init__()
        self.multi_head_attention = SeqencAttention(n_heads, d_model, dropout)
        self.feed_forward = SeqencFeedForward(d_model, d_inner, dropout)

    def forward(self, x, mask):
        return self.feed_forward(self.multi_head_attention(x, mask))


class SeqencEncoder(torch.nn.Module):
    """modules.py TransformerEncoder, with encoders.py User_Encoder's mask."""

    def __init__(self, n_position, d_model, n_heads, dropout, n_layers):
        super().__init__()
        self.position_embedding = torch.nn.Embedding(n_position, d_model)
        self.dropout = torch.nn.Dropout(p=dropout)
        self.layer_norm = torch.nn.LayerNorm(d_model, eps=1e-6)
        self.transformer_blocks = torch.nn.ModuleList(
            [SeqencBlock(d_model, n_heads, d_model * 4, dropout) for _ in range(n_layers)])

    def forward(self, input_embs, log_mask):
        att_mask = (log_mask != 0).unsqueeze(1).unsqueeze(2)
        att_mask = torch.tril(att_mask.expand((-1, -1, log_mask.size(-1), -1)))
        att_mask = torch.where(att_mask, 0., -1e9)
        position_ids = torch.arange(log_mask.size(1), dtype=torch.long)
        position_ids = position_ids.unsqueeze(0).expand_as(log_mask)
        output = self.layer_norm(input_embs + self.position_embedding(position_ids))
        output = self.dropout(output)
        for transformer in self.transformer_blocks:
            output = transformer(output, att_mask)
        return output


def seqenc_params(model):
    """The reference's parameters under libmmrec's names, in its order."""
    out = [("position_embedding.weight", model.position_embedding.weight),
           ("layer_norm.weight", model.layer_norm.weight),
           ("layer_norm.bias", model.layer_norm.bias)]
    for i, blk in enumerate(model.transformer_blocks):
        a, f, p = blk.multi_head_attention, blk.feed_forward, "blocks.%d." % i
        out += [(p + "self_attn.in_proj_weight", (a.w_Q.weight, a.w_K.weight, a.w_V.weight)),
                (p + "self_attn.out_proj.weight", a.fc.weight),
                (p + "linear1.weight", f.w_1.weight), (p + "linear1.bias", f.w_1.bias),
                (p + "linear2.weight", f.w_2.weight), (p + "linear2.bias", f.w_2.bias),
                (p + "norm1.weight", a.layer_norm.weight), (p + "norm1.bias", a.layer_norm.bias),
                (p + "norm2.weight", f.layer_norm.weight), (p + "norm2.bias", f.layer_norm.bias)]
    return out


def seqenc_case(w, name, mask, max_length, d, heads, layers, use_mask=1):
    """<case>.cfg = [dim, max_length, num_layers, num_heads, use_mask (0: the
    C call passes no mask; every position is real)], .items [B, T, d], .mask
    [B, T], .seen [B, T] (1 where a real position is at or before t: the
    positions whose states are compared), .states, .last [B, d] (the state
    at each row's last real position), .r_states (zero where not seen),
    .r_last, .ditems and .param.<name> / .grad.<name> of the loss
    sum(r_states * states) + sum(r_last * last); dropout 0."""
    mask = torch.tensor(mask, dtype=torch.float64)
    B, T = mask.shape
    model = SeqencEncoder(max_length, d, heads, 0.0, layers)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "layer_norm.weight" in pname:
                p.copy_(rand(*p.shape, low=0.6, high=1.4))
            elif pname.endswith("w_1.bias"):  # most ReLU units active, not all
                p.copy_(rand(*p.shape, low=-0.1, high=0.4))
            else:
                p.copy_(rand(*p.shape, low=-0.5, high=0.5))
    items = rand(B, T, d).requires_grad_(True)
    states = model(items, mask)
    seen = (torch.cummax(mask != 0, dim=1).values).double()
    last_t = torch.tensor([max(t for t in range(T) if mask[b, t] != 0) for b in range(B)])
    last = states[torch.arange(B), last_t]
    r_states = rand(B, T, d) * seen.unsqueeze(-1)
    r_last = rand(B, d)
    ((states * r_states).sum() + (last * r_last).sum()).backward()
    w.add(name + ".cfg", [d, max_length, layers, heads, use_mask])
    w.add(name + ".items", items.detach().numpy())
    w.add(name + ".mask", mask.numpy())
    w.add(name + ".seen", seen.numpy())
    w.add(name + ".states", states.detach().numpy())
    w.add(name + ".last", last.detach().numpy())
    w.add(name + ".r_states", r_states.numpy())
    w.add(name + ".r_last", r_last.numpy())
    w.add(name + ".ditems", items.grad.numpy())
    for pname, p in seqenc_params(model):
        parts = p if isinstance(p, tuple) else (p,)
        w.add("%s.param.%s" % (name, pname), torch.cat([q.detach() for q in parts]).numpy())
        w.add("%s.grad.%s" % (name, pname), torch.cat([q.grad for q in parts]).numpy())


def write_sequence_encoder():
    """mmrec_sequence_encoder_forward against IISAN's user encoder
    (seqenc_case): left and right padding, a full row and a row of one item,
    1 and 2 blocks, and full rows without a mask."""
    w = Writer("sequence_encoder.bin")
    padded = [[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]
    with own_stream(230):
        seqenc_case(w, "pad_l1", padded, 7, 8, 2, 1)
        seqenc_case(w, "pad_l2", padded, 7, 8, 2, 2)
        seqenc_case(w, "full_l2", [[1] * 6] * 3, 6, 8, 4, 2, use_mask=0)
    w.close()


def write_cache_layers():
    """The feature cache's [L, H] records against torch's 16-bit roundings:
    cache_layers.x [n, L, H] float32 (normal values at several scales, with
    ties of both 16-bit formats, float16 subnormals and +-65504), .ids [n]
    (the writer's ids, sparse and unordered), .gather [m] (the ids
    gathered: a permutation with repeats), .keep [k] (kept layers), and for
    each storage type t in f32, f16, bf16 (x, x.half().float(),
    x.bfloat16().float()): .<t>.all [m, L, H], the full gather, and
    .<t>.kept [m, k, H], the kept layers' gather."""
    w = Writer("cache_layers.bin")
    n, L, H = 7, 5, 12
    g = torch.Generator().manual_seed(230)
    x = torch.randn(n, L, H, generator=g, dtype=torch.float32)
    scale = 10.0 ** torch.randint(-3, 4, (n, L, 1), generator=g).float()
    x = x * scale
    ties = torch.tensor([
        1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,          # float16 ties: to even, down and up
        -(1 + 2.0 ** -8), 1 + 3 * 2.0 ** -8,         # bfloat16 ties
        2.0 ** -24, 3 * 2.0 ** -25, -1e-6, 6e-8,     # float16 subnormals, a tie among them
        65504.0, -65504.0, 0.0, -0.0], dtype=torch.float32)
    x[1, 2] = ties
    x[4, 0] = ties.flip(0)
    assert x.abs().max() <= 65504
    ids = torch.tensor([40, 3, 17, 1000, 8, 5, 26])
    gather = torch.tensor([1000, 3, 3, 26, 40, 8, 17, 5, 1000])
    keep = torch.tensor([0, 2, 3])
    row = {int(i): k for k, i in enumerate(ids)}
    pick = torch.tensor([row[int(i)] for i in gather])
    stored = dict(f32=x, f16=x.half().float(), bf16=x.bfloat16().float())
    assert (stored["f16"] != x).any() and (stored["bf16"] != stored["f16"]).any()
    w.add("cache_layers.x", x.numpy())
    w.add("cache_layers.ids", ids.numpy().astype(np.float32))
    w.add("cache_layers.gather", gather.numpy().astype(np.float32))
    w.add("cache_layers.keep", keep.numpy().astype(np.float32))
    for t, v in stored.items():
        w.add("cache_layers.%s.all" % t, v[pick].numpy())
        w.add("cache_layers.%s.kept" % t, v[pick][:, keep].numpy())
    w.close()

def maxsim_reference(q, qm, d, dm):
    """ColBERT's MaxSim, every query against every item: einsum of the
    vectors, masked item vectors never the max, the max taken at its lowest
    arg-max (the gradient flows there only), masked query vectors adding
    nothing; [B, N]."""
    s = torch.einsum("bid,njd->bnij", q, d)
    s = s.masked_fill(dm[None, :, None, :] == 0, float("-inf"))
    mx = s.amax(-1, keepdim=True)
    ar = torch.arange(s.shape[-1]).expand(s.shape)
    first = torch.where(s == mx, ar, s.shape[-1]).amin(-1, keepdim=True)
    best = s.gather(-1, first).squeeze(-1)
    return (best * qm[:, None, :]).sum(-1)


def write_maxsim():
    """Cases of mmrec_maxsim: <case>.q [B, Lq, d], <case>.qm [B, Lq],
    <case>.d [N, Ld, d], <case>.dm [N, Ld] (1 = real vector), <case>.r
    [B, N] (upstream gradient), <case>.y [B, N], <case>.dq, <case>.dd.
    Paired cases (mmrec_maxsim_paired, query b against item b: the diagonal)
    have the names "paired_<case>" and r, y of shape [B]."""
    w = Writer("maxsim.bin")

    def case(name, q, qm, d, dm, paired=False):
        q, d = q.clone().requires_grad_(True), d.clone().requires_grad_(True)
        y = maxsim_reference(q, qm, d, dm)
        if paired:
            y = y.diagonal()
        r = rand(*y.shape)
        (y * r).sum().backward()
        for key, v in (("q", q), ("qm", qm), ("d", d), ("dm", dm), ("r", r), ("y", y),
                       ("dq", q.grad), ("dd", d.grad)):
            w.add("%s.%s" % (name, key), v.detach().numpy())

    with own_stream(70):
        B, Lq, N, Ld, D = 3, 4, 5, 6, 8
        ones = torch.ones
        case("plain", rand(B, Lq, D), ones(B, Lq), rand(N, Ld, D), ones(N, Ld))
        qm = ones(B + 1, Lq)
        qm[0, 3] = 0
        qm[1, 2:] = 0
        qm[2] = 0  # a query with every vector masked scores 0
        dm = ones(N, Ld)
        dm[0, :5] = 0  # one real vector left
        dm[2, 1] = dm[2, 4] = 0
        dm[4, 5] = 0
        case("masked", rand(B + 1, Lq, D), qm, rand(N, Ld, D), dm)
        # ties: values on a grid of 1/2 (every dot product exact in float32),
        # item 1's vectors 2 and 4 equal, vector 0 of item 3 equal to its 5
        q = torch.randint(-2, 3, (B, Lq, D), generator=gen).double() / 2
        d = torch.randint(-2, 3, (N, Ld, D), generator=gen).double() / 2
        d[1, 4] = d[1, 2]
        d[3, 5] = d[3, 0]
        dm = ones(N, Ld)
        dm[3, 0] = 0  # the masked twin never wins: vector 5 does
        case("ties", q, ones(B, Lq), d, dm)
        # more query than item vectors, so that most item vectors win
        qm = ones(N, 6)
        qm[1, 2:] = 0
        qm[3, 0] = 0
        dm = ones(N, 3)
        dm[0, 1] = 0
        dm[2, 2] = 0
        case("paired_masked", rand(N, 6, D), qm, rand(N, 3, D), dm, paired=True)
    w.close()



MASK64 = (1 << 64) - 1


def freq_mix(x):
    """The splitmix64 finalizer of twotower.h on uint64 numpy arrays."""
    z = (np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def freq_buckets(ids, i, buckets, seed):
    """h_i(ids) = mix(mix(seed + i) ^ ids) mod H (twotower.h)."""
    with np.errstate(over="ignore"):
        s = freq_mix(np.array([(seed + i) & MASK64], dtype=np.uint64))[0]
        h = freq_mix(np.asarray(ids, dtype=np.uint64) ^ s) % np.uint64(buckets)
    return torch.from_numpy(h.astype(np.int64))


def write_freq_estimator():
    """Streaming frequency estimator (Yi et al. 2019, Algorithms 2-3) as
    plain torch ops: per step, the distinct buckets of the batch's ids
    (torch.unique) get B = (1 - alpha) B + alpha (t - A) in float64 stored
    as float32, then A = t; p = 1 / max over hashes of B.
    Cases <case>: .cfg [H, m, alpha, initial_gap, seed], .ids [T, batch]
    (ids drawn from a Zipf law over `items`, stored as floats), .step_hi /
    .step_lo [T] (step = hi * 2^24 + lo), .query [Q] ids (some never seen),
    .p [Q], .gap [m, H], .a_hi / .a_lo [m, H]."""
    w = Writer("freq_estimator.bin")
    g = torch.Generator().manual_seed(20261205)
    for case, H, m, alpha, gap0, seed, items, T, batch, base in (
            ("small", 64, 3, 0.1, 20.0, 12345, 200, 300, 32, 0),
            ("far", 257, 2, 0.01, 100.0, 7, 500, 200, 48, (1 << 35) + 3)):
        alpha = float(np.float32(alpha))
        q = 1.0 / torch.arange(1, items + 1, dtype=torch.float64)
        ids = torch.multinomial(q / q.sum(), T * batch, replacement=True,
                                generator=g).reshape(T, batch)
        steps = base + torch.cumsum(torch.randint(1, 4, (T,), generator=g), 0)
        A = torch.zeros(m, H, dtype=torch.int64)
        B = torch.full((m, H), gap0, dtype=torch.float32)
        for k in range(T):
            t = int(steps[k])
            for i in range(m):
                b = torch.unique(freq_buckets(ids[k].numpy(), i, H, seed))
                B[i, b] = ((1.0 - alpha) * B[i, b].double()
                           + alpha * (t - A[i, b]).double()).float()
                A[i, b] = t
        query = torch.arange(items + 10)
        gmax = torch.stack([B[i, freq_buckets(query.numpy(), i, H, seed)] for i in range(m)])
        p = (1.0 / gmax.max(0).values.double()).float()
        w.add(case + ".cfg", [H, m, alpha, gap0, seed])
        w.add(case + ".ids", ids.numpy())
        w.add(case + ".step_hi", (steps >> 24).numpy())
        w.add(case + ".step_lo", (steps & ((1 << 24) - 1)).numpy())
        w.add(case + ".query", query.numpy())
        w.add(case + ".p", p.numpy())
        w.add(case + ".gap", B.numpy())
        w.add(case + ".a_hi", (A >> 24).numpy())
        w.add(case + ".a_lo", (A & ((1 << 24) - 1)).numpy())
    w.close()


def write_twotower_score():
    """Cases of mmrec_twotower_score (all pairs) and _score_paired:
    <case>.cfg = [cosine, tau, eps], <case>.u [B, d], <case>.v [N, d],
    <case>.r (upstream gradient, the shape of y), <case>.y, <case>.du,
    <case>.dv. Paired cases are named "paired_<case>"."""
    w = Writer("twotower_score.bin")

    def case(name, u, v, cosine, tau, eps=1e-12, paired=False):
        u, v = u.clone().requires_grad_(True), v.clone().requires_grad_(True)
        a, b = u, v
        if cosine:
            a = torch.nn.functional.normalize(a, dim=-1, eps=eps)
            b = torch.nn.functional.normalize(b, dim=-1, eps=eps)
        y = (a * b).sum(-1) / tau if paired else a @ b.T / tau
        r = rand(*y.shape)
        (y * r).sum().backward()
        w.add(name + ".cfg", [float(cosine), tau, eps])
        for key, x in (("u", u), ("v", v), ("r", r), ("y", y), ("du", u.grad),
                       ("dv", v.grad)):
            w.add("%s.%s" % (name, key), x.detach().numpy())

    with own_stream(90):
        case("dot", rand(4, 6), rand(5, 6), 0, 1.0)
        case("dot_tau", rand(3, 5), rand(7, 5), 0, 0.2)
        case("cosine_tau", rand(5, 8), rand(6, 8), 1, 0.05)
        small = rand(3, 4)
        small[1] *= 1e-3  # a norm below eps: divided by eps, as F.normalize
        case("cosine_eps", small, rand(4, 4), 1, 0.5, eps=1e-2)
        case("paired_dot_tau", rand(6, 5), rand(6, 5), 0, 0.3, paired=True)
        case("paired_cosine_tau", rand(6, 5), rand(6, 5), 1, 0.07, paired=True)
    w.close()


# ---- MVKE (Xu et al., KDD 2022; motefly/MVKE core/mvke_ops.py) ----

def mvke_bottom_layer_ref(vk, x, p, eps):
    """core/mvke_ops.py mvke_bottom_layer: Dense query / key / value (with
    bias), softmax over the fields of key . query / sqrt(e), the weighted
    values plus the fields tiled over the kernels, LayerNorm over the last
    axis; [B, F, K, e]."""
    vk_num, emb = vk.shape
    feature_num = x.shape[1]
    query = vk @ p["query_proj.weight"].T + p["query_proj.bias"]
    flat = x.reshape(-1, emb)
    key = flat @ p["key_proj.weight"].T + p["key_proj.bias"]
    value = flat @ p["value_proj.weight"].T + p["value_proj.bias"]
    dot = (key @ query.T / emb ** 0.5).reshape(-1, feature_num, vk_num)
    weights = torch.softmax(dot, 1).reshape(-1, feature_num, vk_num, 1)
    value = value.reshape(-1, feature_num, 1, emb).repeat(1, 1, vk_num, 1)
    out = weights * value
    tiled = x.reshape(-1, feature_num, 1, emb).repeat(1, 1, vk_num, 1)
    return layer_norm_f64(out + tiled, p["layer_norm.weight"], p["layer_norm.bias"], eps)


def mvke_vkg_layer_ref(tag, vk, vke_outputs):
    """core/mvke_ops.py vkg_layer: softmax over the selected kernels of
    tag . vk, the weighted sum of their experts' outputs; [B, e]."""
    vk_num, emb = vk.shape
    weights = torch.softmax(tag @ vk.T, 1).reshape(-1, 1, vk_num)
    return (weights @ vke_outputs).reshape(-1, emb)


def mvke_forward_ref(x, tags, labels, p, tasks, num_hidden, eps):
    """_build_mvke_layers (shared_model = False) with each kernel's field
    layers an MLP (Linear, ReLU, ..., Linear) over the flattened fields,
    then model_graph_type.py: per task the dot product of the gated user
    vector and the tag, sigmoid cross-entropy averaged over the batch, the
    tasks' losses summed."""
    vk = p["virtual_kernels"]
    K, e = vk.shape
    B, F_ = x.shape[0], x.shape[1]
    bottom = mvke_bottom_layer_ref(vk, x, p, eps)
    outs = []
    for k in range(K):
        h = bottom[:, :, k, :].reshape(-1, F_ * e)
        for i in range(num_hidden + 1):
            h = h @ p["experts.%d.%d.weight" % (k, i)].T + p["experts.%d.%d.bias" % (k, i)]
            if i < num_hidden:
                h = torch.relu(h)
        outs.append(h)
    experts = torch.stack(outs, 1)
    us, scores, loss = [], [], 0.0
    for t, idx in enumerate(tasks):
        u = mvke_vkg_layer_ref(tags[t], vk[idx], experts[:, idx])
        dot = (u * tags[t]).sum(1)
        loss = loss + F.binary_cross_entropy_with_logits(dot, labels[t])
        us.append(u)
        scores.append(dot)
    return experts, us, scores, loss


def write_mvke():
    """mmrec_mvke_* against a port of the released MVKE forward
    (mvke_forward_ref). Per case: <case>.cfg = [F, e, K, num_hidden,
    hidden...], <case>.task_n [T] and <case>.task_kernels (the subsets one
    after the other), <case>.x [B, F, e], <case>.tag<t> [B, e],
    <case>.label<t> [B], <case>.experts [B, K, e], <case>.u<t> [B, e],
    <case>.score<t> [B], <case>.loss [1], the gradients of the loss
    <case>.dx, <case>.dtag<t>, and <case>.param.<name> / <case>.grad.<name>
    under the module's parameter names (without its "<name>.")."""
    w = Writer("mvke.bin")
    eps = float(np.float32(1e-12))
    with own_stream(90):
        for case, B, F_, e, K, hidden, tasks in (
                ("released", 6, 3, 8, 5, [16], [[0, 1, 2], [1, 2, 3, 4]]),
                ("subsets", 5, 4, 6, 4, [], [[3, 0], [2], [1, 3, 0, 2]])):
            sizes = [F_ * e] + hidden + [e]
            p = {"virtual_kernels": rand(K, e)}
            for name in ("query_proj", "key_proj", "value_proj"):
                p[name + ".weight"] = rand(e, e, low=-0.5, high=0.5)
                p[name + ".bias"] = rand(e, low=-0.2, high=0.2)
            p["layer_norm.weight"] = rand(e, low=0.5, high=1.5)
            p["layer_norm.bias"] = rand(e, low=-0.3, high=0.3)
            for k in range(K):
                for i in range(len(sizes) - 1):
                    a = sizes[i] ** -0.5
                    p["experts.%d.%d.weight" % (k, i)] = rand(sizes[i + 1], sizes[i], low=-a, high=a)
                    p["experts.%d.%d.bias" % (k, i)] = rand(sizes[i + 1], low=-0.2, high=0.2)
            x = rand(B, F_, e, low=-1.5, high=1.5)
            tags = [rand(B, e) for _ in tasks]
            labels = [(rand(B) > 0).double() for _ in tasks]
            for t in range(len(tasks)):
                labels[t][0], labels[t][1] = 1.0, 0.0
            leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
            xl = x.clone().requires_grad_(True)
            tl = [t.clone().requires_grad_(True) for t in tags]
            experts, us, scores, loss = mvke_forward_ref(xl, tl, labels, leaves, tasks,
                                                         len(hidden), eps)
            loss.backward()
            w.add(case + ".cfg", [F_, e, K, len(hidden)] + hidden)
            w.add(case + ".task_n", [len(t) for t in tasks])
            w.add(case + ".task_kernels", [k for t in tasks for k in t])
            w.add(case + ".x", x.numpy())
            for t in range(len(tasks)):
                w.add("%s.tag%d" % (case, t), tags[t].numpy())
                w.add("%s.label%d" % (case, t), labels[t].numpy())
                w.add("%s.u%d" % (case, t), us[t].detach().numpy())
                w.add("%s.score%d" % (case, t), scores[t].detach().numpy())
                w.add("%s.dtag%d" % (case, t), tl[t].grad.numpy())
            w.add(case + ".experts", experts.detach().numpy())
            w.add(case + ".loss", [loss.item()])
            w.add(case + ".dx", xl.grad.numpy())
            for k, v in leaves.items():
                w.add("%s.param.%s" % (case, k), p[k].numpy())
                w.add("%s.grad.%s" % (case, k), v.grad.numpy())
    w.close()


# ---- IntTower (archersama/IntTower @ a234d891): a port of the code's
# layers/interaction.py LightSE, layers/core.py User_Fe_DNN / Item_Fe_DNN /
# PredictionLayer and preprocessing/utils.py fe_score / contrast_loss, with
# dnn_use_bn=False and dropout 0 (libmmrec has no BatchNorm).


class LightSE(torch.nn.Module):
    """layers/interaction.py LightSE (bias=False as the code; True as the
    README's listing)."""

    def __init__(self, field_size, bias=False):
        super().__init__()
        self.softmax = torch.nn.Softmax(dim=1)
        self.excitation = torch.nn.Sequential(torch.nn.Linear(field_size, field_size, bias=bias))

    def forward(self, inputs):
        Z = torch.mean(inputs, dim=-1, out=None)
        A = self.excitation(Z)
        A = self.softmax(A)
        out = inputs * torch.unsqueeze(A, dim=2)
        return inputs + out


class User_Fe_DNN(torch.nn.Module):
    """layers/core.py User_Fe_DNN, use_bn=False, ReLU, dropout 0: the FE
    output of every layer is taken from that layer's input."""

    def __init__(self, inputs_dim, field_dim, hidden_units, user_head):
        super().__init__()
        hidden_units = [inputs_dim] + list(hidden_units)
        self.dropout = torch.nn.Dropout(0)
        self.linears = torch.nn.ModuleList(
            [torch.nn.Linear(hidden_units[i], hidden_units[i + 1])
             for i in range(len(hidden_units) - 1)])
        self.Fe_linears = torch.nn.ModuleList(
            [torch.nn.Linear(hidden_units[i], field_dim * user_head)
             for i in range(len(hidden_units) - 1)])
        self.activation_layers = torch.nn.ModuleList(
            [torch.nn.ReLU() for i in range(len(hidden_units) - 1)])

    def forward(self, inputs):
        deep_input = inputs
        self.user_fe_rep = []
        for i in range(len(self.linears)):
            fc = self.linears[i](deep_input)
            user_temp = self.Fe_linears[i](deep_input)
            self.user_fe_rep.append(user_temp)
            fc = self.activation_layers[i](fc)
            fc = self.dropout(fc)
            deep_input = fc
        return self.user_fe_rep


class Item_Fe_DNN(torch.nn.Module):
    """layers/core.py Item_Fe_DNN, use_bn=False, ReLU, dropout 0: one FE
    output from the last layer's output."""

    def __init__(self, inputs_dim, field_dim, hidden_units, item_head):
        super().__init__()
        hidden_units = [inputs_dim] + list(hidden_units)
        self.dropout = torch.nn.Dropout(0)
        self.linears = torch.nn.ModuleList(
            [torch.nn.Linear(hidden_units[i], hidden_units[i + 1])
             for i in range(len(hidden_units) - 1)])
        self.Fe_linears = torch.nn.ModuleList(
            [torch.nn.Linear(hidden_units[-1], field_dim * item_head)])
        self.activation_layers = torch.nn.ModuleList(
            [torch.nn.ReLU() for i in range(len(hidden_units) - 1)])

    def forward(self, inputs):
        self.item_fe_rep = []
        deep_input = inputs
        for i in range(len(self.linears)):
            fc = self.linears[i](deep_input)
            fc = self.activation_layers[i](fc)
            fc = self.dropout(fc)
            deep_input = fc
        for i in range(len(self.Fe_linears)):
            item_temp = self.Fe_linears[i](deep_input)
            self.item_fe_rep.append(item_temp)
        return self.item_fe_rep


def fe_score(user_rep, item_rep, user_fea_col, item_fea_col, user_embedding_dim,
             item_embedding_dim):
    """preprocessing/utils.py fe_score (the code passes one field_dim per
    layer: [field_dim] * L)."""
    score = []
    for i in range(len(user_embedding_dim)):
        user_temp = torch.reshape(user_rep[i], (-1, user_fea_col, user_embedding_dim[i]))
        item_temp = torch.reshape(item_rep[-1], (-1, item_fea_col, item_embedding_dim[i]))
        score.append((user_temp @ item_temp.permute(0, 2, 1)).max(2).values.sum(1))
    score = torch.stack(score).transpose(1, 0)
    return torch.sum(score, 1)


def contrast_loss(y, user_embedding, item_embedding):
    """preprocessing/utils.py contrast_loss: the positive column is the 0/1
    label. The code's in-place `scores -= scores.max()` is written out of
    place: the same values, and a backward that torch can run (the code
    never runs one: it leaves the term out of its loss)."""
    user_embedding = torch.nn.functional.normalize(user_embedding, dim=-1)
    item_embedding = torch.nn.functional.normalize(item_embedding, dim=-1)
    tau = 0.07
    scores = torch.matmul(user_embedding, item_embedding.t()) / tau
    scores = scores - scores.max()
    exp_scores = scores.exp()
    loss = torch.log(exp_scores.sum(dim=1)) - scores[range(scores.shape[0]), y]
    loss = loss.mean()
    return loss


def cir_infonce(y, user_embedding, item_embedding, tau, weight):
    """CIR as the paper intends it: InfoNCE over the clicked rows, each
    row's own item the positive, L2-normalized sides, temperature tau."""
    u = F.normalize(user_embedding, dim=-1)
    v = F.normalize(item_embedding, dim=-1)
    s = u @ v.t() / tau
    l = torch.logsumexp(s, 1) - s.diagonal()
    return weight * (l * y).sum() / y.sum()


class IntTowerRef(torch.nn.Module):
    """model/IntTower.py forward from the field embeddings on: Light-SE per
    side, flatten, dense features appended, the FE towers, fe_score and the
    PredictionLayer bias (the logit, before the sigmoid)."""

    def __init__(self, fu, fi, e, du, di, hidden, hu, hi, f, se_bias):
        super().__init__()
        self.user_fe_dnn = User_Fe_DNN(fu * e + du, f, hidden, hu)
        self.item_fe_dnn = Item_Fe_DNN(fi * e + di, f, hidden, hi)
        self.User_sim_non_local = LightSE(fu, se_bias)
        self.Item_sim_non_local = LightSE(fi, se_bias)
        self.out_bias = torch.nn.Parameter(torch.zeros(1))
        self.hu, self.hi, self.f, self.L = hu, hi, f, len(hidden)

    def towers(self, ue, ud, ie, idn):
        x = torch.flatten(self.User_sim_non_local(ue), start_dim=1)
        if ud is not None:
            x = torch.cat([x, ud], axis=-1)
        user_rep = self.user_fe_dnn(x)
        x = torch.flatten(self.Item_sim_non_local(ie), start_dim=1)
        if idn is not None:
            x = torch.cat([x, idn], axis=-1)
        item_rep = self.item_fe_dnn(x)
        return user_rep, item_rep

    def score(self, user_rep, item_rep):
        dims = [self.f] * self.L
        output = fe_score(user_rep, item_rep, self.hu, self.hi, dims, dims)
        output = output + self.out_bias  # PredictionLayer: X += bias, then sigmoid
        return output


def inttower_case(w, name, B, fu, fi, e, du, di, hidden, hu, hi, f, se_bias):
    """<case>.cfg = [F_u, F_i, e, dense_u, dense_i, H_u, H_i, f, se_bias, L,
    hidden...]; inputs .ue [B, F_u, e], .ud [B, du], .ie [B, F_i, e], .id
    [B, di] (absent when 0); outputs .user_fe [B, L H_u, f] (the FE
    outputs u_1 .. u_L as heads), .item_fe [B, H_i, f], .paired [B] (the
    code's logit), .all [B, B] (every user against every item: fe_score on
    the repeated pairs), .rp [B], .ra [B, B]; gradients of
    sum(rp * paired) + sum(ra * all): .due, .dud, .die, .did and
    .grad.<name> for every parameter .param.<name> (libmmrec's names; the
    user tower's last Linear, which no output reads, is left out)."""
    m = IntTowerRef(fu, fi, e, du, di, hidden, hu, hi, f, se_bias)
    with torch.no_grad():
        for n, p in m.named_parameters():  # positive biases: few ReLUs dead
            p.copy_(rand(*p.shape, low=0.0 if n.endswith("bias") else -0.6, high=0.6))
    ue = rand(B, fu, e).requires_grad_(True)
    ie = rand(B, fi, e).requires_grad_(True)
    ud = rand(B, du).requires_grad_(True) if du else None
    idn = rand(B, di).requires_grad_(True) if di else None
    user_rep, item_rep = m.towers(ue, ud, ie, idn)
    paired = m.score(user_rep, item_rep)
    ur = [u.repeat_interleave(B, 0) for u in user_rep]
    ir = [v.repeat(B, 1) for v in item_rep]
    allp = m.score(ur, ir).reshape(B, B)
    rp, ra = rand(B), rand(B, B)
    ((paired * rp).sum() + (allp * ra).sum()).backward()
    L = len(hidden)
    w.add(name + ".cfg", [fu, fi, e, du, di, hu, hi, f, int(se_bias), L] + list(hidden))
    w.add(name + ".ue", ue.detach().numpy())
    w.add(name + ".ie", ie.detach().numpy())
    w.add(name + ".due", ue.grad.numpy())
    w.add(name + ".die", ie.grad.numpy())
    if du:
        w.add(name + ".ud", ud.detach().numpy())
        w.add(name + ".dud", ud.grad.numpy())
    if di:
        w.add(name + ".id", idn.detach().numpy())
        w.add(name + ".did", idn.grad.numpy())
    user_fe = torch.stack([u.reshape(B, hu, f) for u in user_rep], 1).reshape(B, L * hu, f)
    w.add(name + ".user_fe", user_fe.detach().numpy())
    w.add(name + ".item_fe", item_rep[-1].reshape(B, hi, f).detach().numpy())
    w.add(name + ".paired", paired.detach().numpy())
    w.add(name + ".all", allp.detach().numpy())
    w.add(name + ".rp", rp.numpy())
    w.add(name + ".ra", ra.numpy())
    for n, p in m.named_parameters():
        lib = "out.bias" if n == "out_bias" else n
        if n.startswith("user_fe_dnn.linears.%d." % (L - 1)):
            assert p.grad is None  # h_L of the user tower feeds nothing
            continue
        w.add(name + ".param." + lib, p.detach().numpy())
        w.add(name + ".grad." + lib, p.grad.numpy())


def write_inttower():
    """IntTower's towers and score (inttower_case) and CIR: <case>.u, .v
    [B, d], .y [B] labels, .cfg [tau, weight]; .paper (cir_infonce) with
    .dpu, .dpv, and .code (contrast_loss, weight 1) with .dcu, .dcv."""
    w = Writer("inttower.bin")
    with own_stream(90):
        inttower_case(w, "base", 5, 3, 2, 4, 2, 1, (6, 5, 4), 3, 2, 4, False)
        inttower_case(w, "sebias", 4, 2, 3, 5, 0, 0, (7, 3), 2, 3, 3, True)
        inttower_case(w, "one", 3, 2, 2, 3, 0, 2, (4,), 1, 2, 2, False)
        for name, B, d, y, weight in (("cir", 6, 8, [1, 0, 1, 1, 0, 1], 0.5),
                                      ("cir_few", 4, 5, [0, 1, 1, 1], 1.0)):
            u = rand(B, d).requires_grad_(True)
            v = rand(B, d).requires_grad_(True)
            y = torch.tensor(y, dtype=torch.float64)
            tau = float(np.float32(0.07))
            w.add(name + ".cfg", [tau, weight])
            w.add(name + ".u", u.detach().numpy())
            w.add(name + ".v", v.detach().numpy())
            w.add(name + ".y", y.numpy())
            loss = cir_infonce(y, u, v, tau, weight)
            du, dv = torch.autograd.grad(loss, (u, v))
            w.add(name + ".paper", loss.detach().numpy())
            w.add(name + ".dpu", du.numpy())
            w.add(name + ".dpv", dv.numpy())
            loss = contrast_loss(y.long(), u, v)
            du, dv = torch.autograd.grad(loss, (u, v))
            w.add(name + ".code", loss.detach().numpy())
            w.add(name + ".dcu", du.numpy())
            w.add(name + ".dcv", dv.numpy())
    w.close()


def write_batch_softmax_logits():
    """Cases of mmrec_loss_batch_softmax_logits: <case>.cfg = [tau,
    weight_mean], <case>.x [B, N] logits, optional .bias, .pos, .ids, .mask
    ([B, N], 1 = kept), .w, then .y and the gradient .dx of the loss."""
    w = Writer("batch_softmax_logits.bin")
    gen_np = np.random.default_rng(11)

    def case(name, x, tau, weight_mean=0, **opt):
        x = x.clone().requires_grad_(True)
        B = x.shape[0]
        pos_t = torch.arange(B) if opt.get("pos") is None else torch.tensor(opt["pos"])
        w_t = torch.ones(B) if opt.get("w") is None else torch.tensor(opt["w"],
                                                                      dtype=torch.float64)
        rows = batch_softmax_rows(x, tau, pos_t, opt.get("bias"), opt.get("ids"),
                                  opt.get("mask"))
        divisor = w_t.sum() if weight_mean else B
        y = ((w_t * rows).sum() / divisor).reshape(1)
        y.backward()
        w.add(name + ".cfg", [tau, weight_mean])
        w.add(name + ".x", x.detach().numpy())
        for key in ("bias", "pos", "ids", "mask", "w"):
            if opt.get(key) is not None:
                w.add("%s.%s" % (name, key), np.asarray(opt[key], dtype=np.float32))
        w.add(name + ".y", y.detach().numpy())
        w.add(name + ".dx", x.grad.numpy())

    def log_p(n):
        p = gen_np.uniform(0.05, 1.0, n)
        return list(-np.log(p / p.sum()).astype(np.float32))

    with own_stream(91):
        case("plain", rand(5, 5, low=-3, high=3), 1.0)
        case("tau_bias", rand(4, 6, low=-0.2, high=0.2), 0.1, bias=log_p(6))
        case("extra_columns", rand(4, 7, low=-2, high=2), 0.5, bias=log_p(7), pos=[2, 0, 5, 2])
        mask = (gen_np.uniform(size=(6, 9)) > 0.15).astype(np.float32)
        case("ids_mask_weights", rand(6, 9, low=-1, high=1), 0.5, weight_mean=1,
             bias=log_p(9), pos=[0, 4, 2, 7, 8, 4], ids=[10, 11, 12, 10, 13, 14, 11, 15, 16],
             mask=mask, w=[1.0, 2.0, 0.5, 0.0, 1.0, 3.0])
        case("weights_sum_mean", rand(3, 3, low=-1, high=1), 0.7, w=[0.5, 0.0, 2.0],
             ids=[1, 1, 2])
    w.close()


def write_distill():
    """Cases of distill.h. Logits (mmrec_distill_logits), "l_<case>":
    .cfg = [kind (0 BCE, 1 MSE), T, detach_target], .s and .t (same shape),
    .y, .ds and, when not detached, .dt. KL (mmrec_distill_kl), "k_<case>":
    .cfg = [T_s, T_t, hinton_scale, detach_target], .s and .t [B, N],
    optional .mask ([B, N], 1 = kept) and .w [B], .y, .ds and, when not
    detached, .dt. Teacher gradients come from autograd through the
    teacher's side of the loss (no detach), as detach_target 0 computes."""
    w = Writer("distill.bin")

    def logits_case(name, s, t, kind, T, detach):
        s = s.clone().requires_grad_(True)
        t = t.clone().requires_grad_(not detach)
        if kind == 0:
            y = F.binary_cross_entropy_with_logits(s, torch.sigmoid(t / T)).reshape(1)
        else:
            y = F.mse_loss(s, t).reshape(1)
        y.backward()
        w.add(name + ".cfg", [kind, T, detach])
        w.add(name + ".s", s.detach().numpy())
        w.add(name + ".t", t.detach().numpy())
        w.add(name + ".y", y.detach().numpy())
        w.add(name + ".ds", s.grad.numpy())
        if not detach:
            w.add(name + ".dt", t.grad.numpy())

    def kl_case(name, s, t, Ts, Tt, hinton, detach, mask=None, wts=None):
        s = s.clone().requires_grad_(True)
        t = t.clone().requires_grad_(not detach)
        B = s.shape[0]
        ls, lt = s / Ts, t / Tt
        if mask is not None:
            m = torch.tensor(mask) == 0
            ls = ls.masked_fill(m, float("-inf"))
            lt = lt.masked_fill(m, float("-inf"))
        lq = F.log_softmax(ls, dim=1)
        lp = F.log_softmax(lt, dim=1)
        if mask is not None:  # removed pairs: 0 log 0 = 0, as KLDivLoss's 0 * -inf must not be
            lq = lq.masked_fill(m, 0.0)
            lp = lp.masked_fill(m, 0.0)
        rows = (lp.exp() * (lp - lq)).sum(dim=1)
        if mask is None and wts is None:  # the same as KLDivLoss, as ColBERTv2 calls it
            ref = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)(lq, lp)
            assert torch.allclose(ref, rows.sum() / B)
        wt = torch.ones(B) if wts is None else torch.tensor(wts, dtype=torch.float64)
        y = ((wt * rows).sum() / B * (Ts * Tt if hinton else 1.0)).reshape(1)
        y.backward()
        w.add(name + ".cfg", [Ts, Tt, hinton, detach])
        w.add(name + ".s", s.detach().numpy())
        w.add(name + ".t", t.detach().numpy())
        if mask is not None:
            w.add(name + ".mask", np.asarray(mask, dtype=np.float32))
        if wts is not None:
            w.add(name + ".w", np.asarray(wts, dtype=np.float32))
        w.add(name + ".y", y.detach().numpy())
        w.add(name + ".ds", s.grad.numpy())
        if not detach:
            w.add(name + ".dt", t.grad.numpy())

    gen_np = np.random.default_rng(23)
    with own_stream(97):
        logits_case("l_bce", rand(4, 3, low=-3, high=3), rand(4, 3, low=-3, high=3), 0, 1.0, 1)
        logits_case("l_bce_t2_both", rand(10, low=-4, high=4), rand(10, low=-4, high=4), 0,
                    2.0, 0)
        logits_case("l_bce_t05_both", rand(2, 5, low=-2, high=2), rand(2, 5, low=-2, high=2), 0,
                    0.5, 0)
        logits_case("l_mse", rand(3, 4, low=-2, high=2), rand(3, 4, low=-2, high=2), 1, 1.0, 1)
        logits_case("l_mse_both", rand(7, low=-2, high=2), rand(7, low=-2, high=2), 1, 1.0, 0)
        kl_case("k_colbert", rand(4, 6, low=-3, high=3), rand(4, 6, low=-5, high=5), 1.0, 1.0, 0,
                1)
        kl_case("k_temps_both", rand(3, 5, low=-2, high=2), rand(3, 5, low=-2, high=2), 0.5, 2.0,
                0, 0)
        kl_case("k_hinton_both", rand(5, 4, low=-3, high=3), rand(5, 4, low=-3, high=3), 3.0,
                3.0, 1, 0)
        # row 2 keeps nothing (adds 0), row 3 one candidate (KL 0, gradient 0)
        mask = (gen_np.uniform(size=(6, 8)) > 0.15).astype(np.float32)
        mask[2, :] = 0
        mask[3, :] = 0
        mask[3, 4] = 1
        kl_case("k_mask_weights_both", rand(6, 8, low=-2, high=2), rand(6, 8, low=-2, high=2),
                0.7, 1.5, 0, 0, mask=mask, wts=[1.0, 0.5, 2.0, 1.0, 3.0, 0.25])
        kl_case("k_mask_detached", rand(6, 8, low=-2, high=2), rand(6, 8, low=-2, high=2),
                1.0, 0.5, 1, 1, mask=mask, wts=[2.0, 1.0, 1.0, 0.5, 1.0, 1.5])
    gam_cases(w)
    w.close()


def gam_cases(w):
    """ENDX's geometry alignment (mmrec_distill_gam), "g_<case>": .cfg =
    [T, similarity (0 dot, 1 cosine), detach_target, w_qa, w_aa, w_aq,
    w_qq], .qs .as [B, d_s], .qt .at [B, d_t], .y, .dqs .das and, when not
    detached, .dqt .dat."""

    def gam(name, qs, as_, qt, at, T, cosine, detach, wk=(1.0, 1.0, 1.0, 1.0)):
        leaves = [x.clone().requires_grad_(True) for x in (qs, as_)]
        leaves += [x.clone().requires_grad_(not detach) for x in (qt, at)]
        e = [F.normalize(x, dim=1, eps=1e-12) if cosine else x for x in leaves]
        pairs = [(0, 1), (1, 1), (1, 0), (0, 0)]  # q-a, a-a, a-q, q-q
        B = qs.shape[0]
        y = 0.0
        for k, (x, yy) in enumerate(pairs):
            lq = F.log_softmax(e[x] @ e[yy].T / T, dim=1)
            lp = F.log_softmax(e[2 + x] @ e[2 + yy].T / T, dim=1)
            kl = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)(lq, lp)
            y = y + wk[k] * kl
        y = y.reshape(1)
        y.backward()
        w.add(name + ".cfg", [T, cosine, detach] + list(wk))
        for key, x in zip(("qs", "as", "qt", "at"), leaves):
            w.add("%s.%s" % (name, key), x.detach().numpy())
        w.add(name + ".y", y.detach().numpy())
        for key, x in zip(("dqs", "das", "dqt", "dat"), leaves):
            if x.requires_grad:
                w.add("%s.%s" % (name, key), x.grad.numpy())

    with own_stream(98):
        gam("g_dot", rand(5, 4), rand(5, 4), rand(5, 6), rand(5, 6), 1.0, 0, 1)
        gam("g_dot_both", rand(4, 3), rand(4, 3), rand(4, 5), rand(4, 5), 0.5, 0, 0,
            (1.0, 0.5, 2.0, 0.25))
        gam("g_cos_both", rand(6, 4), rand(6, 4), rand(6, 3), rand(6, 3), 0.2, 1, 0)
        gam("g_cos_qa_only", rand(5, 4), rand(5, 4), rand(5, 8), rand(5, 8), 0.1, 1, 1,
            (1.0, 0.0, 0.0, 0.0))


def attn_probs_case(w, name, kind, cfg, module, x, key_mask, call):
    """One case of attn_probs.bin: call(module, x) -> (y, p); the loss is
    sum(r * y) + sum(rp * p) (use_y = cfg[4]; 0: sum(rp * p) alone)."""
    module = module.double()
    perturb(module)
    w.add(name + ".kind", [kind])
    w.add(name + ".cfg", cfg)
    x = x.clone().requires_grad_(True)
    w.add(name + ".x", x.detach().numpy())
    if key_mask is not None:
        w.add(name + ".key_mask", key_mask.numpy())
    y, p = call(module, x)
    r = rand(*y.shape) if cfg[4] else torch.zeros_like(y)
    rp = rand(*p.shape, low=-2.0, high=2.0)
    ((y * r).sum() + (p * rp).sum()).backward()
    w.add(name + ".r", r.numpy())
    w.add(name + ".rp", rp.numpy())
    w.add(name + ".y", y.detach().numpy())
    w.add(name + ".p", p.detach().numpy())
    w.add(name + ".dx", x.grad.numpy())
    for pname, q in module.named_parameters():
        w.add("%s.param.%s" % (name, pname), q.detach().numpy())
        w.add("%s.grad.%s" % (name, pname), q.grad.numpy())


def write_attn_probs():
    """mmrec_mha_forward_probs and mmrec_transformer_forward_probs against
    torch.nn.MultiheadAttention(need_weights=True, average_attn_weights=True
    and False): key padding masks, a causal mask and both; the loss on the
    probabilities alone and on the probabilities and the output together.
    <case>.kind [1] (0 mha, 1 transformer), <case>.cfg [dim, heads, causal,
    average, use_y, ffn_dim, norm_first], .x, optional .key_mask (1 = token),
    .r, .rp (the weights of y and p in the loss), .y, .p, .dx, .param.<name>,
    .grad.<name> (torch's parameter names)."""
    w = Writer("attn_probs.bin")
    B, T, D, H = 2, 5, 12, 3
    key_mask = torch.ones(B, T, dtype=torch.float64)
    key_mask[0, 3:] = 0
    key_mask[1, 1] = 0
    pad = key_mask == 0
    causal_mask = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), diagonal=1)
    with own_stream(311):
        for mname, masked, causal in (("pad", 1, 0), ("causal", 0, 1), ("pad_causal", 1, 1)):
            for avg in (0, 1):
                for use_y in (1, 0):
                    def call(m, x, masked=masked, causal=causal, avg=avg):
                        return m(x, x, x, key_padding_mask=pad if masked else None,
                                 attn_mask=causal_mask if causal else None, need_weights=True,
                                 average_attn_weights=bool(avg))
                    attn_probs_case(w, "mha_%s_avg%d_y%d" % (mname, avg, use_y), 0,
                                    [D, H, causal, avg, use_y, 0, 0],
                                    torch.nn.MultiheadAttention(D, H, batch_first=True),
                                    rand(B, T, D), key_mask if masked else None, call)
        for norm_first in (1, 0):
            for avg in (0, 1):
                causal = 1 - norm_first

                def call(m, x, norm_first=norm_first, avg=avg, causal=causal):
                    def sa(h):
                        return m.self_attn(h, h, h, key_padding_mask=pad,
                                           attn_mask=causal_mask if causal else None,
                                           need_weights=True, average_attn_weights=bool(avg))

                    def ff(h):
                        return m.linear2(F.gelu(m.linear1(h)))
                    if norm_first:
                        a, p = sa(m.norm1(x))
                        h = x + a
                        return h + ff(m.norm2(h)), p
                    a, p = sa(x)
                    h = m.norm1(x + a)
                    return m.norm2(h + ff(h)), p
                layer = torch.nn.TransformerEncoderLayer(D, H, dim_feedforward=20, dropout=0.0,
                                                         activation="gelu", batch_first=True,
                                                         norm_first=bool(norm_first))
                attn_probs_case(w, "trm_pre%d_avg%d" % (norm_first, avg), 1,
                                [D, H, causal, avg, 1, 20, norm_first], layer, rand(B, T, D),
                                key_mask, call)
    w.close()


def write_distill_attn():
    """Cases of mmrec_distill_attn: <case>.cfg = [kind (0 L2, 1 KL), eps,
    detach_target], <case>.s and <case>.t (attention maps [B, H, Tq, Tk]:
    softmax rows, some keys masked to 0 and one all-zero row), <case>.y,
    <case>.ds, <case>.dt (zeros when detached)."""
    w = Writer("distill_attn.bin")

    def attn_map(B, H, Tq, Tk, masked):
        logits = rand(B, H, Tq, Tk, low=-2, high=2)
        keep = torch.ones(B, H, Tq, Tk, dtype=torch.bool)
        for (b, h, i, j) in masked:
            keep[b, h, i, j] = False
        p = torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)
        return torch.nan_to_num(p, nan=0.0)

    def case(name, kind, detach, eps=1e-8):
        B, H, Tq, Tk = 2, 2, 3, 4
        # the student misses a key the teacher attends to: the eps floor
        sm = [(0, 0, 0, 1), (1, 1, 2, 0), (0, 1, 1, 3)]
        tm = [(0, 0, 0, 2), (1, 0, 1, 3)] + [(1, 1, 0, j) for j in range(Tk)]
        st = attn_map(B, H, Tq, Tk, sm + [(1, 1, 0, j) for j in range(Tk)])
        tt = attn_map(B, H, Tq, Tk, tm)
        s, t = st.clone().requires_grad_(True), tt.clone().requires_grad_(True)
        tgt = t.detach() if detach else t
        if kind == 0:
            y = ((s - tgt) ** 2).mean()
        else:
            rows = s.numel() // Tk
            kl = tgt * (torch.log(torch.clamp(tgt, min=eps)) - torch.log(torch.clamp(s, min=eps)))
            y = kl.sum() / rows
        y.backward()
        w.add(name + ".cfg", [kind, eps, detach])
        w.add(name + ".s", st.numpy())
        w.add(name + ".t", tt.numpy())
        w.add(name + ".y", y.detach().reshape(1).numpy())
        w.add(name + ".ds", s.grad.numpy())
        dt = t.grad if t.grad is not None else torch.zeros_like(t)
        w.add(name + ".dt", dt.numpy())

    with own_stream(92):
        case("l2_detached", 0, 1)
        case("l2_both", 0, 0)
        case("kl_detached", 1, 1)
        case("kl_both", 1, 0)
    w.close()


WRITERS = dict(ops=write_ops, losses=write_losses, modules=write_modules, optim=write_optim,
               em3=write_em3, graph=write_graph, metrics=write_metrics,
               alignrec=write_alignrec, knn=write_knn,
               metrics_auc=write_metrics_auc, content_eval=write_content_eval,
               numerics=write_numerics, batch_softmax=write_batch_softmax,
               iisan=write_iisan, sequence_softmax=write_sequence_softmax,
               sequence_encoder=write_sequence_encoder,
               cache_layers=write_cache_layers, freq_estimator=write_freq_estimator,
               maxsim=write_maxsim, twotower_score=write_twotower_score,
               mvke=write_mvke, inttower=write_inttower,
               batch_softmax_logits=write_batch_softmax_logits,
               distill=write_distill, attn_probs=write_attn_probs,
               distill_attn=write_distill_attn)

if __name__ == "__main__":
    # make_golden.py [name ...]: only the named files (default: all of them)
    import sys
    torch.set_default_dtype(torch.float64)
    for name in sys.argv[1:] or list(WRITERS):
        WRITERS[name]()
