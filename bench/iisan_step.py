"""PyTorch counterpart of bench/iisan_step.c: one IISAN training step with
cached CLS states, as the reference computes it (github.com/GAIR-Lab/IISAN,
Code_Cached: ModelMM with IISANAdaptedMModel, modality "intra_inter",
fusion "gated"; model/model.py, model/modules.py, model/encoders.py, run.py
for the Adam groups, scripts/run_IISAN.py for the learning rates).

Workload: 64 users x (10 inputs + target), left padding, lengths drawn like
Amazon Scientific's training sequences, ids from a 20,000-item catalogue
with popularity from counts (the same batches as the C side: the generator
below is splitmix64, written the same way in both); for every item the CLS
states of the 7 kept layers (0, 2, .., 12 of 13) of a text and an image
backbone, 768 wide; d = 64; 2 Transformer blocks, 2 heads, dropout 0.1; the
debiased in-batch cross-entropy; Adam with the reference's groups.

The reference's maths, at PyTorch's best: the states are float32 tensors in
memory holding the kept layers only, gathered by one index per modality
(timed inside the step, reported as ref_gather_ms); the in-batch mask of
the loss is built with tensor ops (the reference builds it in a Python loop
over the users); each head's two layers run through the product of their
weights, F.linear(h, W2 @ W1, W2 @ b1 + b2), the same function and
gradients with 3 d H (H + n) multiply-adds instead of 3 n H (H + d), as the
C side does. With argv[2] "asis" the step runs the reference's code as
written instead (two Linear calls per head, the mask's Python loop).
torch.set_num_threads from MMREC_BENCH_THREADS; the caller runs this with
OPENBLAS_NUM_THREADS=1 and with OpenBLAS's default threads.
Prints one line: ref_ms=<median> runs=<n> peak_rss_mib=<MiB> ..."""

import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import bench_util

threads = bench_util.threads()
torch.manual_seed(0)
USERS, T, H, D, ADAPTER = 64, 10, 768, 64, 64
KEPT = list(range(0, 13, 2))
K = len(KEPT)
N_ITEMS = 20000
N_BATCHES = 8
ASIS = len(sys.argv) > 2 and sys.argv[2] == "asis"

# ---- the batches (bench/iisan_step.c builds the same) ----
MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def item_counts():
    """Interaction counts of items 1..N_ITEMS: a long tail, count(i) =
    1 + floor(400 / i^0.75)."""
    return [1 + int(400.0 / math.pow(i, 0.75)) for i in range(1, N_ITEMS + 1)]


# Amazon Scientific's users by history length (5 .. 12, and 13 for the
# longer ones, which the reference cuts to their last 13 items); a training
# sequence is a history without its last two items (validation, test).
HIST_LEN = [5, 6, 7, 8, 9, 10, 11, 12, 13]
HIST_USERS = [4892, 2652, 1465, 895, 609, 356, 300, 208, 699]


def make_batches():
    """N_BATCHES batches of ids [USERS, T + 1] (0 = padding, on the left)."""
    counts = item_counts()
    cum, total = [], 0
    for c in counts:
        total += c
        cum.append(total)
    users_total = sum(HIST_USERS)
    rng = SplitMix64(12345)
    batches = []
    for _ in range(N_BATCHES):
        ids = []
        for _ in range(USERS):
            u = rng.next() % users_total
            h = 0
            while u >= HIST_USERS[h]:
                u -= HIST_USERS[h]
                h += 1
            n = HIST_LEN[h] - 2
            row = [0] * (T + 1 - n)
            for _ in range(n):
                v = rng.next() % total
                lo, hi = 0, N_ITEMS  # first cum > v
                while lo < hi:
                    mid = (lo + hi) // 2
                    if cum[mid] <= v:
                        lo = mid + 1
                    else:
                        hi = mid
                row.append(lo + 1)
            ids.append(row)
        batches.append(torch.tensor(ids, dtype=torch.long))
    pop = torch.tensor([1.0] + [c / total for c in counts])  # pop_prob_list, [0] = 1
    return batches, pop


# ---- the reference's modules (Code_Cached/model/modules.py, encoders.py) ----


class AdapterBlock(nn.Module):
    def __init__(self, input_size, down_size):
        super().__init__()
        self.fc_down = nn.Linear(input_size, down_size)
        nn.init.normal_(self.fc_down.weight, std=1e-2)
        nn.init.zeros_(self.fc_down.bias)
        self.activate = nn.ReLU()
        self.fc_up = nn.Linear(down_size, input_size)
        nn.init.normal_(self.fc_up.weight, std=1e-2)
        nn.init.zeros_(self.fc_up.bias)
        self.dropout = nn.Dropout(0.1)  # created, never applied

    def forward(self, input_embs):
        x = self.fc_down(input_embs)
        x = self.activate(x)
        return self.fc_up(x) + input_embs


class IISANAdaptedMModel(nn.Module):
    """The reference's item encoder (model.py), "intra_inter", "gated"; the
    states hold the kept layers, so layer KEPT[k] is position k."""

    def __init__(self):
        super().__init__()
        self.cv_pre_fc = nn.Linear(H, D)  # ViT's classifier, replaced
        nn.init.xavier_normal_(self.cv_pre_fc.weight)
        nn.init.zeros_(self.cv_pre_fc.bias)
        self.bert_pre_fc = nn.Linear(H, D)  # the text encoder's fc
        self.cv_adapter_list = nn.ModuleList([AdapterBlock(H, ADAPTER) for _ in KEPT])
        self.bert_adapter_list = nn.ModuleList([AdapterBlock(H, ADAPTER) for _ in KEPT])
        self.mm_adapter_list = nn.ModuleList([AdapterBlock(H, ADAPTER) for _ in KEPT])
        self.fc_bert = nn.Linear(H, H)
        self.fc_cv = nn.Linear(H, H)
        self.fc_mm = nn.Linear(H, H)
        self.fc_mm_down = nn.Linear(H, D)
        self.side_gate_params_text = nn.ParameterList(
            [nn.Parameter(torch.ones(1) * 0) for _ in KEPT])
        self.side_gate_params_cv = nn.ParameterList(
            [nn.Parameter(torch.ones(1) * 0) for _ in KEPT])
        self.side_gate_params_mm = nn.ParameterList(
            [nn.Parameter(torch.ones(1) * 0) for _ in KEPT])

    def forward(self, sample_items_images, sample_items_text):
        hidden_states_cv = [sample_items_images[:, i, :].view(-1, H) for i in range(K)]
        hidden_states_text = [sample_items_text[:, i, :].view(-1, H) for i in range(K)]
        last_cv = torch.zeros(hidden_states_cv[0].size())
        last_text = torch.zeros(hidden_states_text[0].size())
        last_mm = torch.zeros(hidden_states_text[0].size())
        for index in range(K):
            gate = torch.sigmoid(self.side_gate_params_cv[index] / 0.1)
            fusion_state_cv = gate * hidden_states_cv[index] + (1 - gate) * last_cv
            gate = torch.sigmoid(self.side_gate_params_text[index] / 0.1)
            fusion_state_text = gate * hidden_states_text[index] + (1 - gate) * last_text
            last_text = self.bert_adapter_list[index](fusion_state_text)
            last_cv = self.cv_adapter_list[index](fusion_state_cv)
            gate = torch.sigmoid(self.side_gate_params_mm[index] / 0.1)
            last_mm = last_mm + gate * hidden_states_cv[index] + (1 - gate) * hidden_states_text[index]
            last_mm = self.mm_adapter_list[index](last_mm)
        if ASIS:
            last_text = self.fc_bert(last_text)
            last_cv = self.fc_cv(last_cv)
            last_mm = self.fc_mm(last_mm)
            return self.cv_pre_fc(last_cv), [self.bert_pre_fc(last_text),
                                             self.fc_mm_down(last_mm)]
        return head(self.fc_cv, self.cv_pre_fc, last_cv), [
            head(self.fc_bert, self.bert_pre_fc, last_text),
            head(self.fc_mm, self.fc_mm_down, last_mm)]


def head(fc1, fc2, x):
    """fc2(fc1(x)) through the product of the weights."""
    return F.linear(x, fc2.weight @ fc1.weight, fc2.weight @ fc1.bias + fc2.bias)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_model, d_inner, dropout):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_inner)
        self.w_2 = nn.Linear(d_inner, d_model)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.activate = nn.ReLU()

    def forward(self, x):
        residual = x
        x = self.dropout(self.w_2(self.activate(self.w_1(x))))
        return self.layer_norm(residual + x)


class SelfAttention(nn.Module):
    def __init__(self, temperature, dropout):
        super().__init__()
        self.temperature = temperature
        self.dropout = nn.Dropout(dropout)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, query, key, value, mask):
        attn = torch.matmul(query, key.transpose(-2, -1)) / self.temperature
        attn = attn + mask
        p_attn = self.dropout(self.softmax(attn))
        return torch.matmul(p_attn, value), p_attn


class MultiHeadedAttention(nn.Module):
    def __init__(self, n_heads, d_model, dropout):
        super().__init__()
        self.d_model = d_model
        self.d_k = d_model // n_heads
        self.n_heads = n_heads
        self.d_v = self.d_k
        self.w_Q = nn.Linear(d_model, n_heads * self.d_k, bias=False)
        self.w_K = nn.Linear(d_model, n_heads * self.d_k, bias=False)
        self.w_V = nn.Linear(d_model, n_heads * self.d_v, bias=False)
        self.fc = nn.Linear(n_heads * self.d_v, d_model, bias=False)
        self.self_attention = SelfAttention(temperature=self.d_k ** 0.5, dropout=dropout)
        self.dropout = nn.Dropout(p=dropout)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, query, key, value, mask):
        sz_b, len_q, len_k, len_v = query.size(0), query.size(1), key.size(1), value.size(1)
        residual = query
        q = self.w_Q(query).view(sz_b, len_q, self.n_heads, self.d_k).transpose(1, 2)
        k = self.w_K(key).view(sz_b, len_k, self.n_heads, self.d_k).transpose(1, 2)
        v = self.w_V(value).view(sz_b, len_v, self.n_heads, self.d_v).transpose(1, 2)
        x, _ = self.self_attention(q, k, v, mask=mask)
        x = x.transpose(1, 2).contiguous().view(sz_b, len_q, self.d_model)
        x = self.dropout(self.fc(x))
        return self.layer_norm(residual + x)


class TransformerBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_inner, dropout):
        super().__init__()
        self.multi_head_attention = MultiHeadedAttention(n_heads, d_model, dropout)
        self.feed_forward = PositionwiseFeedForward(d_model, d_inner, dropout)

    def forward(self, block_input, mask):
        return self.feed_forward(self.multi_head_attention(block_input, block_input,
                                                           block_input, mask))


class TransformerEncoder(nn.Module):
    def __init__(self, n_position, d_model, n_heads, dropout, n_layers):
        super().__init__()
        self.position_embedding = nn.Embedding(n_position, d_model)
        self.dropout = nn.Dropout(p=dropout)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(d_model, n_heads, d_model * 4, dropout) for _ in range(n_layers)])

    def forward(self, input_embs, log_mask, att_mask):
        position_ids = torch.arange(log_mask.size(1), dtype=torch.long)
        position_ids = position_ids.unsqueeze(0).expand_as(log_mask)
        output = self.layer_norm(input_embs + self.position_embedding(position_ids))
        output = self.dropout(output)
        for transformer in self.transformer_blocks:
            output = transformer.forward(output, att_mask)
        return output


class User_Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer_encoder = TransformerEncoder(T, D, 2, 0.1, 2)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            nn.init.xavier_normal_(module.weight.data)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight.data)
            if module.bias is not None:
                nn.init.constant_(module.bias.data, 0)

    def forward(self, input_embs, log_mask):
        att_mask = (log_mask != 0).unsqueeze(1).unsqueeze(2)
        att_mask = torch.tril(att_mask.expand((-1, -1, log_mask.size(-1), -1)))
        att_mask = torch.where(att_mask, 0., -1e9)
        return self.transformer_encoder(input_embs, log_mask, att_mask)


class ModelMM(nn.Module):
    def __init__(self, pop_prob_list):
        super().__init__()
        self.pop_prob_list = pop_prob_list
        self.user_encoder = User_Encoder()
        self.mm_encoder = IISANAdaptedMModel()
        self.com_dense = nn.Linear(D * 3, D)

    def forward(self, sample_items_id, images, text, log_mask):
        debias_logits = torch.log(self.pop_prob_list[sample_items_id.view(-1)])
        score_embs_cv, (score_embs_text, score_embs_mm) = self.mm_encoder(images, text)
        score_embs = self.com_dense(torch.cat([score_embs_cv, score_embs_text, score_embs_mm], 1))
        input_embs = score_embs.view(-1, T + 1, D)
        prec_vec = self.user_encoder(input_embs[:, :-1, :], log_mask).view(-1, D)
        bs = log_mask.size(0)
        logits = torch.matmul(prec_vec, score_embs.t()) - debias_logits
        logits[:, torch.cat((log_mask, torch.ones(bs, 1)), 1).view(-1) == 0] = -1e4
        logits = logits.view(bs, T, -1)
        ids = sample_items_id.view(bs, -1)
        if ASIS:  # the reference's loop (model.py)
            for i in range(bs):
                reject_list = ids[i]
                u_ids = sample_items_id.repeat(T).expand((len(reject_list), -1))
                reject_mat = reject_list.expand((u_ids.size(1), len(reject_list))).t()
                mask_mat = (u_ids == reject_mat).any(axis=0).reshape(logits[i].shape)
                for j in range(T):
                    mask_mat[j][i * (T + 1) + j + 1] = False
                logits[i][mask_mat] = -1e4
        else:  # the same mask with tensor ops
            own = (ids.unsqueeze(2) == sample_items_id.view(1, 1, -1)).any(1)  # [bs, N]
            mask = own.unsqueeze(1).expand(bs, T, -1).clone()
            mask.scatter_(2, POSITIVES[:bs].unsqueeze(2), False)
            logits = logits.masked_fill(mask, -1e4)
        indices = torch.where(log_mask.view(-1) != 0)
        return F.cross_entropy(logits.view(bs * T, -1)[indices], CE_LABEL[indices])


# ce_label of the reference, and the positives' columns per user
CE_LABEL = torch.tensor([i * T + i + j for i in range(USERS) for j in range(1, T + 1)])
POSITIVES = CE_LABEL.view(USERS, T)


def param_groups(model):
    """The reference's Adam groups (run.py), by its name rules: text head
    fc_bert 5e-5; image head fc_cv and the image gates 1e-4; the adapters
    1e-4; everything else (sequence encoder, cv_pre_fc, bert_pre_fc, fc_mm,
    fc_mm_down, the other gates, com_dense) 2e-4."""
    text, image, recsys, ad_cv, ad_text = [], [], [], [], []
    for name, p in model.named_parameters():
        if "cv" in name:
            if ("fc" in name and "fc_" not in name) or "classifier" in name:
                recsys.append(p)
            elif "adapter" not in name:
                image.append(p)
            else:
                ad_cv.append(p)
        elif "bert" in name:
            if "fc" in name and "fc_" not in name:
                recsys.append(p)
            elif "adapter" not in name:
                text.append(p)
            else:
                ad_text.append(p)
        elif "mm_adapter" in name:
            ad_cv.append(p)
        else:
            recsys.append(p)
    return [{"params": text, "lr": 5e-5}, {"params": image, "lr": 1e-4},
            {"params": recsys, "lr": 2e-4}, {"params": ad_cv, "lr": 1e-4},
            {"params": ad_text, "lr": 1e-4}]


batches, pop = make_batches()
model = ModelMM(pop)
model.train()
opt = torch.optim.Adam(param_groups(model))
# The cache: row 0 (padding) zeros, as the reference's zero states.
text_table = torch.randn(N_ITEMS + 1, K, H)
image_table = torch.randn(N_ITEMS + 1, K, H)
text_table[0] = 0
image_table[0] = 0
masks = [(b[:, :-1] != 0).float() for b in batches]
state = {"i": 0, "gather": []}


def step():
    i = state["i"] % N_BATCHES
    state["i"] += 1
    ids = batches[i].view(-1)
    t0 = time.perf_counter()
    text = text_table.index_select(0, ids)
    image = image_table.index_select(0, ids)
    state["gather"].append((time.perf_counter() - t0) * 1e3)
    opt.zero_grad(set_to_none=True)
    loss = model(ids, image, text, masks[i])
    loss.backward()
    opt.step()


def gather_ms():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    return f"ref_gather_ms={statistics.median(state['gather'][-runs:]):.3f}"


bench_util.time_step(step, 5, 30, threads, gather_ms)
