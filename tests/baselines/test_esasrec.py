"""The eSASRec recipe: the original SASRec block against a hand-written reference, per-position negatives,
the sparse sampled-logits path against the naive gather, and the protocol helpers."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from genads.baselines.sasrec import PRESETS, SampledLogits, SASRecConfig, draw_negatives, epoch_batches
from genads.baselines.sasrec_original import OriginalSASRecNet, padding_keep

CFG = replace(PRESETS["esasrec"], max_len=8, d_model=12, n_heads=2, n_layers=2, dropout=0.0)


def reference_forward(net: OriginalSASRecNet, seq: torch.Tensor) -> torch.Tensor:
    """RecTools 0.13.0's SASRec, written out: every row padded to max_len, nn.MultiheadAttention with only the
    causal mask (padding keys attended to), LN on queries only, d -> d ReLU FFN, padding zeroed before each block
    and before the final LN (eps 1e-8). Returns (B, max_len, D)."""
    L = net.cfg.max_len
    seq = F.pad(seq, (L - seq.shape[1], 0))  # (B, L): padded to max_len, as RecTools does
    x = net.item.weight[seq] + net.pos(torch.arange(L))  # no sqrt(d) scaling
    mask = (seq > 0).unsqueeze(-1)
    causal = ~torch.ones(L, L, dtype=torch.bool).tril()
    for block in net.blocks:
        x = x * mask
        q = block.q_norm(x)
        # what nn.MultiheadAttention(batch_first=True) runs, on the block's own parameters (gradients reach them)
        att = F.multi_head_attention_forward(
            q.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), net.cfg.d_model, net.cfg.n_heads,
            block.in_proj_weight, block.in_proj_bias, None, None, False, 0.0, block.out_proj.weight,
            block.out_proj.bias, training=False, need_weights=False, attn_mask=causal)[0]
        x = q + att.transpose(0, 1)
        y = block.ff_norm(x)
        x = block.ff2(torch.relu(block.ff1(y))) + y
    return net.norm(x * mask)


@pytest.fixture
def net() -> OriginalSASRecNet:
    torch.manual_seed(0)
    net = OriginalSASRecNet(20, CFG).eval()
    with torch.no_grad():  # non-zero biases, so the padding keys (key = bias) matter
        for block in net.blocks:
            block.in_proj_bias.normal_()
            block.out_proj.bias.normal_()
    return net


def test_original_block_matches_the_reference_padded_to_max_len(net):
    seq = torch.tensor([[0, 0, 3, 4, 5], [7, 1, 9, 2, 6], [0, 0, 0, 0, 11]])
    with torch.no_grad():
        ours = net(seq)[:, -1]
        ref = reference_forward(net, seq)[:, -1]
    assert torch.allclose(ours, ref, atol=1e-5)


def test_packed_blocks_train_like_the_reference(net):
    """The blocks run on the real positions only; in training (dropout 0) the loss's gradients equal those of the
    reference padded to max_len, so packing changes nothing that SGD sees."""
    seq = torch.tensor([[0, 0, 3, 4, 5], [7, 1, 9, 2, 6], [0, 0, 0, 0, 11]])
    weight = torch.randn(3, 5, CFG.d_model)
    net.train()
    ((net.encode(seq, net.table()) * weight).sum()).backward()
    ours = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    ((reference_forward(net, seq)[:, -5:] * weight * (seq > 0).unsqueeze(-1)).sum()).backward()
    for name, p in net.named_parameters():
        assert torch.allclose(ours[name], p.grad, atol=1e-5), name


def test_padding_keys_are_attended_to_unless_masked(net):
    short = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        # the padding a batch adds changes nothing (a row counts its own max_len - length padding keys) ...
        assert torch.allclose(net(short), net(torch.tensor([[0, 0, 3, 4, 5]]))[:, -3:], atol=1e-6)
        # ... but those padding keys are attended to: masking them changes the state
        masked = OriginalSASRecNet(20, replace(CFG, attend_padding=False)).eval()
        masked.load_state_dict(net.state_dict())
        assert not torch.allclose(masked(short)[:, -1], net(short)[:, -1], atol=1e-4)


def test_folded_padding_weight_is_dropped_as_its_keys_would_be_one_by_one():
    """n identical padding keys of weight w / n each, dropped one by one (p) and rescaled, sum to w times a
    multiplier of mean 1 and variance p / ((1 - p) n); one draw on the folded weight would have variance
    p / (1 - p), n times more."""
    torch.manual_seed(0)
    p, n = 0.2, torch.tensor([1, 5, 45, 0])
    draws = padding_keep(n.expand(200_000, 4), p)  # (200000, 4)
    naive = torch.stack([F.dropout(torch.ones(200_000, max(int(k), 1)), p, True).mean(1) for k in n[:3]], 1)
    assert torch.allclose(draws[:, :3].mean(0), torch.ones(3), atol=0.01)
    assert torch.allclose(draws[:, :3].var(0), naive.var(0), rtol=0.05)
    assert torch.allclose(draws[:, :3].var(0), p / ((1 - p) * n[:3].float()), rtol=0.05)
    assert torch.equal(draws[:, 3], torch.zeros(200_000))  # no padding keys: nothing to keep


def test_xavier_normal_init_of_every_matrix_and_no_embedding_scaling():
    torch.manual_seed(0)
    big = OriginalSASRecNet(3000, replace(CFG, d_model=64))
    std = big.item.weight.std().item()
    assert abs(std - (2 / (3001 + 64)) ** 0.5) / std < 0.05  # xavier_normal_: std = sqrt(2 / (fan_in + fan_out))
    w = big.blocks[0].in_proj_weight  # one (3d, d) matrix, as nn.MultiheadAttention initialises it
    assert abs(w.std().item() - (2 / (4 * 64)) ** 0.5) < 0.01
    assert big.blocks[0].ff1.weight.shape == (64, 64)  # d -> d, no 4x expansion


def test_item_table_dropout_reaches_the_output_in_training(net):
    net.train()
    net.cfg = replace(CFG, dropout=0.5)
    torch.manual_seed(1)
    table = net.table()
    assert (table == 0).float().mean() > 0.3  # the tied table itself is dropped out ...
    net.eval()
    assert torch.equal(net.table(), net.item.weight)  # ... only while training


def test_negatives_are_drawn_independently_for_every_position():
    gen = torch.Generator().manual_seed(0)
    neg = draw_negatives(20000, 4, 5, gen)  # 20,000 (sequence, position) rows of 4 negatives over 5 items
    assert neg.shape == (20000, 4) and neg.min() >= 1 and neg.max() <= 5
    # adjacent positions (as of one sequence) share nothing beyond chance: P(equal) = 1/5 in every column
    same = (neg[1:] == neg[:-1]).float().mean(0)
    assert torch.allclose(same, torch.full((4,), 0.2), atol=0.015)
    # and the pairs (row m, row m + 1) cover the 25 cells uniformly
    cells = torch.bincount((neg[:-1, 0] - 1) * 5 + neg[1:, 0] - 1, minlength=25).float()
    chi2 = ((cells - cells.mean()) ** 2 / cells.mean()).sum().item()
    assert chi2 < 60  # chi-square, 24 degrees of freedom: 60 is far beyond p = 1e-4


def test_random_batches_cover_every_user_once_and_mix_lengths():
    lengths = torch.arange(1, 1001) % 50 + 1  # 1,000 users of lengths 1..50
    gen = torch.Generator().manual_seed(0)
    for batching in ("random", "length"):
        batches = epoch_batches(lengths, replace(PRESETS["esasrec"], batching=batching, uniform_positions=False), gen)
        assert torch.equal(torch.cat(batches).sort().values, torch.arange(1000))  # every user exactly once
        assert max(len(b) for b in batches) == 128
        spread = torch.stack([lengths[b].float().std() for b in batches if len(b) > 1]).mean()
        # random batches mix all lengths (std ~14.4 for uniform 1..50); length buckets hold similar ones
        assert spread > 12 if batching == "random" else spread < 3
    with pytest.raises(ValueError, match="uniform_positions"):
        SASRecConfig(batching="random", uniform_positions=True)
    with pytest.raises(ValueError, match="batching"):
        SASRecConfig(batching="sorted")


def test_sampled_logits_equal_the_naive_gather_in_value_and_gradient():
    torch.manual_seed(0)
    h = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    table = torch.randn(9, 16, dtype=torch.float64, requires_grad=True)
    neg = torch.randint(1, 9, (37, 20))  # 20 draws over 8 items: many rows repeat a negative
    weight = torch.randn(37, 20, dtype=torch.float64)
    fast = SampledLogits.apply(h, table, neg)
    (fast * weight).sum().backward()
    grads = h.grad.clone(), table.grad.clone()
    h.grad = table.grad = None
    naive = torch.einsum("md,mnd->mn", h, table[neg])
    (naive * weight).sum().backward()
    assert torch.allclose(fast, naive)
    assert torch.allclose(grads[0], h.grad) and torch.allclose(grads[1], table.grad)


def test_esasrec_presets_follow_the_recipe():
    cfg, small = PRESETS["esasrec"], PRESETS["esasrec-64"]
    assert (cfg.d_model, small.d_model) == (256, 64)
    assert (cfg.n_layers, cfg.n_heads, cfg.max_len, cfg.dropout, cfg.batch_size) == (1, 1, 50, 0.2, 128)
    assert (cfg.loss, cfg.n_negatives, cfg.negatives, cfg.reject_positive) == ("ss", 256, "uniform", False)
    assert (cfg.epochs, cfg.patience, cfg.eval_every, cfg.stop_metric) == (200, 50, 1, "recall@10")
    assert cfg.exclude_history and cfg.block == "original" and cfg.lr == 1e-3 and cfg.weight_decay == 0.0
    assert cfg.batching == "random" and not cfg.uniform_positions  # RecTools' DataLoader: users shuffled




def test_genads_baselines_runs_the_esasrec_preset_end_to_end_under_both_protocols(cycle_dataset, tmp_path, capsys):
    import json

    from genads.cli import main

    code = main(["baselines", str(cycle_dataset.path), "--models", "popularity,sasrec", "--preset", "esasrec-64",
                 "--epochs", "2", "--drop-unseen-targets", "--out", str(tmp_path / "run")])
    assert code == 0
    out = capsys.readouterr().out
    assert "[excl]" in out and "[all ]" in out and "dropped 0 test users" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    sasrec = metrics["sasrec"]
    assert {"valid", "test", "history_ruled_out"} <= set(sasrec)
    assert 0.0 <= sasrec["history_ruled_out"]["test"]["ndcg@10"] <= sasrec["history_ruled_out"]["test"]["recall@10"]
    assert all("valid_recall@10" in row for row in sasrec["log"])  # stops on R@10, validated every epoch


def test_the_esasrec_recipe_learns_a_sequential_pattern_and_stops_on_request(cycle_dataset):
    from genads.baselines import Popularity, SASRec
    from genads.data.split import leave_one_out
    from genads.eval.harness import evaluate

    split = leave_one_out(cycle_dataset)
    cfg = replace(PRESETS["esasrec"], max_len=10, d_model=32, n_negatives=8, batch_size=16, lr=5e-3, epochs=40,
                  patience=40)
    model = SASRec(cfg)
    log = model.fit(split, seed=0, progress=False)
    pop = Popularity()
    pop.fit(split)
    r10 = evaluate(model, split.test, ks=(10,), exclude_history=True)["recall@10"]
    assert r10 > 0.9  # next = current + 1: random batches, per-position negatives and the original block learn it
    assert r10 > evaluate(pop, split.test, ks=(10,), exclude_history=True)["recall@10"] + 0.3
    assert len(log) == 40 and not any(r.get("stopped_on_request") for r in log)
    asked = []
    log = SASRec(cfg).fit(split, seed=0, progress=False, should_stop=lambda: len(asked.append(1) or asked) >= 3)
    assert len(log) == 3 and log[-1]["stopped_on_request"]  # asked after each validation, ends at the third
