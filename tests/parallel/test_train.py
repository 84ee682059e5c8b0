import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from genads.baselines import Popularity
from genads.data.dataset import load_dataset
from genads.data.split import leave_one_out
from genads.eval.metrics import ranking_metrics
from genads.parallel import ParallelConfig, ParallelModel, ParallelTrainConfig, fit
from genads.parallel.recommender import sized_config
from genads.parallel.train import exact_topk

TINY = ParallelTrainConfig(batch_size=16, lr=5e-3, warmup_steps=2, epochs=3, eval_every=1, patience=5, n_negatives=8,
                           code_heads=2)


def build(codes: np.ndarray, seed: int = 0, **overrides) -> ParallelModel:
    torch.manual_seed(seed)
    base = ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=10, n_items=1, dropout=0.1)
    return ParallelModel(replace(sized_config(base, codes, len(codes) - 1), **overrides))


def test_learns_the_cycle_and_beats_popularity(cycle_split, cycle_codes):
    model = build(cycle_codes, d_model=32, dropout=0.0)
    cfg = ParallelTrainConfig(batch_size=16, lr=1e-2, warmup_steps=3, epochs=40, eval_every=10, patience=3,
                              n_negatives=16)
    log = fit(model, cycle_codes, cycle_split, cfg, seed=0, progress=False)
    assert log[-1]["loss"] < log[0]["loss"]
    ranked = exact_topk(model, torch.from_numpy(cycle_codes), cycle_split.test.history, 10)
    ours = ranking_metrics(ranked, cycle_split.test.target, ks=(10,))["recall@10"]
    pop = Popularity()
    pop.fit(cycle_split)
    base = ranking_metrics(pop.recommend(cycle_split.test.history, 10), cycle_split.test.target, ks=(10,))["recall@10"]
    assert ours > 0.6 and ours > base + 0.3


def test_codes_only_model_learns_too(cycle_split, cycle_codes):
    model = build(cycle_codes, d_model=32, dropout=0.0, n_items=0)
    assert model.item is None
    cfg = ParallelTrainConfig(batch_size=16, lr=1e-2, warmup_steps=3, epochs=40, eval_every=10, patience=3,
                              n_negatives=16)
    fit(model, cycle_codes, cycle_split, cfg, seed=0, progress=False)
    ranked = exact_topk(model, torch.from_numpy(cycle_codes), cycle_split.test.history, 10)
    assert ranking_metrics(ranked, cycle_split.test.target, ks=(10,))["recall@10"] > 0.5


def test_resume_is_exact(cycle_split, cycle_codes, tmp_path):
    cfg = replace(TINY, epochs=4)
    straight = build(cycle_codes)
    fit(straight, cycle_codes, cycle_split, cfg, seed=1, run_dir=tmp_path / "a", until_step=10, progress=False)
    half = build(cycle_codes)
    fit(half, cycle_codes, cycle_split, cfg, seed=1, run_dir=tmp_path / "b", until_step=5, progress=False)
    resumed = build(cycle_codes, seed=99)  # weights must come from the checkpoint
    fit(resumed, cycle_codes, cycle_split, cfg, seed=1, run_dir=tmp_path / "b", resume=True, until_step=10,
        progress=False)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    rows = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
             for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("a", "b")]
    assert rows[0] == rows[1] and len(rows[0]) == 2 and "valid_ndcg@10" in rows[0][0]


def _ddp_worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        split = leave_one_out(load_dataset(f"{folder}/ds"))
        codes = np.load(f"{folder}/codes.npy")
        model = build(codes, dropout=0.0, id_dropout=0.0)
        fit(model, codes, split, TINY, seed=2, until_step=6, progress=False)
        if rank == 0:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{folder}/ddp.safetensors")
    finally:
        dist.destroy_process_group()


def test_two_ddp_processes_match_one(cycle_dataset, cycle_codes, tmp_path):
    np.save(tmp_path / "codes.npy", cycle_codes)
    mp.spawn(_ddp_worker, args=(2, str(cycle_dataset.path.parent)), nprocs=2, join=True)
    single = build(cycle_codes, dropout=0.0, id_dropout=0.0)
    fit(single, cycle_codes, leave_one_out(cycle_dataset), TINY, seed=2, until_step=6, progress=False)
    ddp = load_file(str(cycle_dataset.path.parent / "ddp.safetensors"))
    moved = 0.0
    for k, v in single.state_dict().items():
        theirs = ddp[k]
        if k.endswith("in_proj_bias"):  # the key bias has a zero gradient (softmax is shift-invariant): Adam
            d = len(v) // 3             # turns its float noise into +-lr steps, so only q and v biases are compared
            v, theirs = torch.cat([v[:d], v[2 * d:]]), torch.cat([theirs[:d], theirs[2 * d:]])
        torch.testing.assert_close(theirs, v, atol=2e-5, rtol=1e-4)
        moved = max(moved, float((single.state_dict()[k] - build(cycle_codes, dropout=0.0, id_dropout=0.0)
                                  .state_dict()[k]).abs().max()))
    assert moved > 1e-3


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="batch_size=0"):
        ParallelTrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="both 0"):
        ParallelTrainConfig(code_weight=0, item_weight=0)
    with pytest.raises(ValueError, match="temperature=0"):
        ParallelConfig(temperature=0)


def test_recommender_ranks_like_exact_scoring_and_serves_a_new_ad(cycle_split, cycle_codes, cycle_codebook,
                                                                     cycle_vectors):
    from genads.parallel import ParallelRecommender

    base = ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=10, n_items=1)
    rec = ParallelRecommender(cycle_codes, base, replace(TINY, epochs=2), codebook=cycle_codebook)
    rec.fit(cycle_split, seed=0, progress=False)
    hist = cycle_split.test.history[:8]
    slate = rec.slate(hist, 10)
    np.testing.assert_array_equal(rec.recommend(hist, 10), slate.ads)
    np.testing.assert_allclose(rec.logprob_of(hist, slate.ads), slate.logprob, rtol=1e-5)  # the reward pipeline's
    top = int(rec.recommend(hist[:1], 1)[0, 0])
    new_key = len(cycle_codes) + 5  # never trained: no ID embedding, codes from its vector alone
    codes = rec.add_ad(new_key, vector=cycle_vectors[top - 1])
    np.testing.assert_array_equal(codes, cycle_codes[top])
    full = rec.slate(hist[:1], len(rec.live))
    score = dict(zip(full.ads[0].tolist(), full.logprob[0].tolist(), strict=True))
    assert score[new_key] == pytest.approx(score[top], abs=1e-5)  # ties with the ad it copies: both at the top
    assert score[new_key] == pytest.approx(max(score.values()), abs=1e-5)  # (other ads may share its codes)
    assert rec.recommend(np.array([[*hist[0][1:], new_key]]), 5).shape == (1, 5)  # a history may hold it too


@pytest.mark.parametrize("code_input", [False, True])
def test_an_ad_added_after_training_borrows_the_id_row_of_its_code_nearest_item(cycle_split, cycle_codes, code_input):
    """An ID model has no ID row for an ad added after training: the ad reads its code-nearest trained item's row,
    in a history (an ID-input model no longer reads it as padding) and in its own ID term; every path that scores
    it (slate, recommend, logprob_of) agrees, and LiveAds keeps the stand-in across remove and re-add."""
    from genads.parallel import ParallelRecommender

    base = ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=10, n_items=1, id_weight=2.0,
                          code_input=code_input)
    rec = ParallelRecommender(cycle_codes, base, replace(TINY, epochs=2))
    rec.fit(cycle_split, seed=0, progress=False)
    hist = cycle_split.test.history[:6]
    item = int(hist[0][-1])
    codes = cycle_codes[item].copy()
    codes[0] = (codes[0] + 1) % (cycle_codes.max() + 1)  # one code off: its nearest trained item is ``item``
    agree = (cycle_codes[1:] == codes).sum(1)
    assert rec.stand_in(codes) == int(np.argmax(agree)) + 1
    new_key = len(cycle_codes) + 7
    rec.add_ad(new_key, codes=codes)
    proxy = rec.stand_in(codes)
    assert rec.live.id_row_of(new_key) == proxy
    # in a history: the added ad reads like its stand-in wherever the input is the ID alone
    swapped = hist.copy()
    swapped[0, -1] = new_key
    logp_new, ids_new = rec.query(swapped[:1])
    with_proxy = hist[:1].copy()
    with_proxy[0, -1] = proxy
    logp_proxy, ids_proxy = rec.query(with_proxy)
    if not code_input:
        torch.testing.assert_close(ids_new, ids_proxy)
        torch.testing.assert_close(logp_new, logp_proxy)
    assert not torch.equal(ids_new, torch.zeros_like(ids_new))
    # in its own score: the stand-in's ID term, the same in every path
    full = rec.slate(hist, len(rec.live))
    for b in range(len(hist)):
        score = dict(zip(full.ads[b].tolist(), full.logprob[b].tolist(), strict=True))
        logp, id_scores = rec.query(hist[b:b + 1])
        code_part = sum(float(logp[0, k, int(c)]) for k, c in enumerate(codes))
        assert score[new_key] == pytest.approx(code_part + float(id_scores[0, proxy]), abs=1e-4)
        assert rec.logprob_of(hist[b:b + 1], np.array([[new_key]]))[0, 0] == pytest.approx(score[new_key], abs=1e-4)
    ranked = rec.recommend(hist, len(rec.live))
    np.testing.assert_array_equal(np.sort(ranked, 1), np.sort(full.ads, 1))
    for b in range(len(hist)):  # the same order up to ties of equal scores
        s = dict(zip(full.ads[b].tolist(), full.logprob[b].tolist(), strict=True))
        np.testing.assert_allclose([s[a] for a in ranked[b]], full.logprob[b], atol=1e-4)
    rec.live.remove(new_key)
    rec.live.add(new_key, codes)
    assert rec.live.id_row_of(new_key) == proxy
    assert int(rec.live.id_rows()[list(rec.live.keys).index(new_key)]) == proxy



def _short_history_dataset(folder, n_single: int, n_long: int, seed: int = 0):
    """Many users with one event (1-item training windows) beside a few longer ones, as in real logs; string ids."""
    from genads.data.ingest import import_dataset
    from genads.data.loaders import TabularSource

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    lines, t = ["user,item,ts,action"], 0
    for u in range(n_single):
        lines.append(f"u-{u},ad-{int(rng.integers(1, 21))},{t},click")
        t += 1
    for u in range(n_single, n_single + n_long):
        for i in range(6):
            lines.append(f"u-{u},ad-{1 + (u + i) % 20},{t},click")
            t += 1
    (folder / "events.csv").write_text("\n".join(lines) + "\n")
    (folder / "items.csv").write_text("\n".join(["ad_id,title"] + [f"ad-{i},Item {i}" for i in range(1, 21)]) + "\n")
    source = TabularSource(folder / "events.csv", catalogue=folder / "items.csv",
                           column_map={"user_id": "user", "ad_id": "item", "timestamp": "ts"})
    import_dataset(source, folder / "ds", progress=False)
    return load_dataset(folder / "ds")


def _random_codes(n_items: int) -> np.ndarray:
    return np.vstack([np.zeros((1, 4), dtype=np.int64), np.random.default_rng(0).integers(0, 4, size=(n_items, 4))])


def test_one_event_users_do_not_crash_parallel_training(tmp_path):
    """A batch of only 1-item windows has no next-item target: it crashed with an empty reshape (issue 27)."""
    from genads.parallel.train import next_item_windows

    split = leave_one_out(_short_history_dataset(tmp_path / "raw", n_single=200, n_long=20))
    assert sum(len(s) == 1 for s in split.train) >= 200  # the case that crashed
    windows = next_item_windows(split, 10)
    assert ((windows > 0).sum(1) >= 2).all()
    codes = _random_codes(split.n_items)
    log = fit(build(codes), codes, split, TINY, seed=0, run_dir=tmp_path / "run", progress=False)
    assert log and np.isfinite(log[-1]["loss"])


def test_no_user_with_two_events_is_a_clear_error(tmp_path):
    split = leave_one_out(_short_history_dataset(tmp_path / "raw", n_single=50, n_long=0))
    codes = _random_codes(split.n_items)
    with pytest.raises(ValueError, match="at least two training events"):
        fit(build(codes), codes, split, TINY, seed=0, progress=False)


def _item_loss(obj, split):
    """(items, targets, positions M, loss) of ``obj`` on five test histories' last six items (generator seed 3)."""
    items = torch.from_numpy(split.test.history[:5, -6:])
    targets = torch.roll(items, -1, dims=1)
    targets[:, -1] = torch.from_numpy(split.test.target[:5])
    targets[items == 0] = 0
    M = int((targets > 0).sum())
    loss, _ = obj(items, targets, torch.Generator().manual_seed(3), torch.tensor(float(M)))
    return items, targets, M, loss


def test_per_position_item_loss_equals_the_naive_gather_with_its_own_negatives(cycle_split, cycle_codes):
    """The per-position item softmax (logits gathered from the code logits) equals the exact score of the positive
    against each position's own negatives, computed naively from the items' code vectors; and the negatives of two
    positions are drawn independently (the same draw the eSASRec recipe uses)."""
    from genads.baselines.sasrec import draw_negatives
    from genads.parallel.train import Objective

    model = build(cycle_codes, dropout=0.0, id_dropout=0.0)
    cfg = replace(TINY, negatives="per-position", n_negatives=6, code_weight=0.0)
    codes_t = torch.from_numpy(cycle_codes)
    items, targets, M, loss = _item_loss(Objective(model, codes_t, cfg), cycle_split)
    neg = draw_negatives(M, 6, len(cycle_codes) - 1, torch.Generator().manual_seed(3))  # the same draw
    q = model.code_queries(model(items, codes_t[items])[targets > 0]).flatten(1)  # (M, m*d)
    vecs = model.item_vectors(codes_t)  # (N+1, m*d)
    pos = targets[targets > 0]
    scale = model.config.temperature / (model.config.n_codes * cfg.item_temperature)
    logits = torch.cat([(q * vecs[pos]).sum(1, keepdim=True), torch.einsum("md,mnd->mn", q, vecs[neg])], 1) * scale
    naive = torch.nn.functional.cross_entropy(logits, torch.zeros(M, dtype=torch.long))
    torch.testing.assert_close(loss, naive, rtol=1e-5, atol=1e-6)
    assert not torch.equal(neg[0], neg[1])  # two positions, two draws


def test_history_exclusion_never_returns_a_history_item_and_equals_masked_scores(cycle_split, cycle_codes):
    model = build(cycle_codes)
    codes_t = torch.from_numpy(cycle_codes)
    hist = cycle_split.test.history[:20]
    ranked = exact_topk(model, codes_t, hist, 10, batch_size=7, exclude_history=True)
    assert not any(set(r.tolist()) & set(h[h > 0].tolist()) for r, h in zip(ranked, hist, strict=True))
    model.eval()
    with torch.no_grad():
        seq = torch.from_numpy(hist[:, -model.config.max_items:])
        scores = model.code_queries(model(seq, codes_t[seq])[:, -1]).flatten(1) @ model.item_vectors(codes_t).T
    scores[:, 0] = -np.inf
    for row, h in zip(scores, hist, strict=True):
        row[torch.from_numpy(h[h > 0])] = -np.inf
    np.testing.assert_array_equal(ranked, torch.topk(scores, 10, dim=1).indices.numpy())


def test_the_esasrec_preset_trains_stops_on_history_excluded_recall_and_keeps_a_cpu_budget(cycle_split, cycle_codes):
    from genads.parallel import PRESETS

    arch, train = PRESETS["esasrec"]
    assert (train.batching, train.negatives, train.stop_metric, train.exclude_history) == (
        "random", "per-position", "recall@10", True)
    assert arch.init == "xavier" and train.grad_clip == 0 and train.min_lr_ratio == 1.0
    model = build(cycle_codes, d_model=32, dropout=0.0, init="xavier")
    cfg = replace(train, batch_size=16, n_negatives=16, lr=1e-2, epochs=40, cpu_budget_s=1e-9)
    log = fit(model, cycle_codes, cycle_split, cfg, seed=0, progress=False)
    assert len(log) == 1 and log[0]["stopped_by_cpu_budget"] and "valid_recall@10" in log[0]
    model = build(cycle_codes, d_model=32, dropout=0.0, init="xavier")
    log = fit(model, cycle_codes, cycle_split, replace(cfg, cpu_budget_s=0.0, epochs=30, patience=5), seed=0,
              progress=False)
    ranked = exact_topk(model, torch.from_numpy(cycle_codes), cycle_split.test.history, 10, exclude_history=True)
    assert ranking_metrics(ranked, cycle_split.test.target, ks=(10,))["recall@10"] > 0.5
    with pytest.raises(ValueError, match="negatives="):
        ParallelTrainConfig(negatives="mixed")
    assert ParallelTrainConfig(negatives="all").negatives == "all"


@pytest.mark.parametrize("negatives", ["per-position", "shared", "all"])
def test_id_score_item_loss_equals_the_naive_hybrid_score(cycle_split, cycle_codes, negatives):
    """With ``id_weight`` the item logit is scale · (Σ_k logit_k + id_weight · h·e_i): checked against a naive
    computation from the item keys, for every negative sampler (the same draws; 'all': the full softmax, every item
    but the padding row a class)."""
    from genads.baselines.sasrec import draw_negatives
    from genads.parallel.train import Objective

    model = build(cycle_codes, dropout=0.0, id_dropout=0.0, id_weight=3.0)
    assert model.scores_ids
    with torch.no_grad():
        model.item.weight.mul_(5.0)  # make the ID term matter
    cfg = replace(TINY, negatives=negatives, n_negatives=6, code_weight=0.0)
    codes_t = torch.from_numpy(cycle_codes)
    items, targets, M, loss = _item_loss(Objective(model, codes_t, cfg), cycle_split)
    gen = torch.Generator().manual_seed(3)
    if negatives == "per-position":
        neg = draw_negatives(M, 6, len(cycle_codes) - 1, gen)
    elif negatives == "shared":
        neg = torch.randint(1, len(cycle_codes), (6,), generator=gen).expand(M, 6)
    else:
        neg = torch.arange(1, len(cycle_codes)).expand(M, len(cycle_codes) - 1)
    h = model(items, codes_t[items])[targets > 0]
    q = model.item_queries(h)  # (M, m*d + D)
    keys = model.item_keys(codes_t)  # (N+1, m*d + D)
    pos = targets[targets > 0]
    scale = model.config.temperature / (model.config.n_codes * cfg.item_temperature)
    naive_q = torch.cat([model.code_queries(h).flatten(1), 3.0 * h], 1)
    torch.testing.assert_close(q, naive_q)
    logits = torch.cat([(q * keys[pos]).sum(1, keepdim=True), torch.einsum("md,mnd->mn", q, keys[neg])], 1) * scale
    if negatives != "per-position":  # a shared draw never scores the positive as its own negative
        logits[:, 1:] = logits[:, 1:].masked_fill(neg == pos.unsqueeze(1), float("-inf"))
    naive = torch.nn.functional.cross_entropy(logits, torch.zeros(M, dtype=torch.long))
    torch.testing.assert_close(loss, naive, rtol=1e-5, atol=1e-6)
    if negatives == "all":  # SASRec's cross-entropy over the catalogue
        full = torch.nn.functional.cross_entropy((q @ keys[1:].T) * scale, pos - 1)
        torch.testing.assert_close(loss, full, rtol=1e-5, atol=1e-6)



@pytest.mark.parametrize("negatives", ["shared", "all"])
def test_item_bf16_is_the_fp32_loss_to_bf16_precision_with_fp32_gradients(cycle_split, cycle_codes, negatives):
    """``item_bf16`` runs the (M, n) product in bfloat16: the loss and the gradients stay fp32 and match the fp32
    objective to bf16 precision (not exactly: the product did run in bf16)."""
    from genads.parallel.train import Objective

    model = build(cycle_codes, dropout=0.0, id_dropout=0.0, id_weight=3.0)
    codes_t = torch.from_numpy(cycle_codes)
    out = {}
    for bf16 in (False, True):
        model.zero_grad()
        cfg = replace(TINY, negatives=negatives, n_negatives=6, code_weight=0.0, item_bf16=bf16)
        loss = _item_loss(Objective(model, codes_t, cfg), cycle_split)[3]
        loss.backward()
        assert loss.dtype == torch.float32
        out[bf16] = float(loss.detach()), model.head.weight.grad.clone()
    assert out[True][0] != out[False][0]
    assert out[True][0] == pytest.approx(out[False][0], rel=1e-2)
    assert out[True][1].dtype == torch.float32
    g32, g16 = out[False][1].flatten(), out[True][1].flatten()
    assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.999  # the same direction
    assert (g16.norm() / g32.norm()).item() == pytest.approx(1.0, abs=0.01)

def test_id_score_model_learns_and_recommend_ranks_like_exact_scoring(cycle_split, cycle_codes):
    from genads.parallel import ParallelRecommender

    cfg = ParallelTrainConfig(batch_size=16, lr=1e-2, warmup_steps=3, epochs=40, eval_every=10, patience=3,
                              n_negatives=16)
    rec = ParallelRecommender(cycle_codes, ParallelConfig(d_model=32, d_code=4, n_layer=1, max_items=10, n_items=1,
                                                          dropout=0.0, id_weight=10.0), cfg)
    rec.fit(cycle_split, seed=0, progress=False)
    assert rec.model.scores_ids
    ranked = exact_topk(rec.model, torch.from_numpy(cycle_codes), cycle_split.test.history, 10)
    assert ranking_metrics(ranked, cycle_split.test.target, ks=(10,))["recall@10"] > 0.6
    np.testing.assert_array_equal(rec.recommend(cycle_split.test.history, 10), ranked)
    with pytest.raises(ValueError, match="n_items > 0"):
        ParallelModel(ParallelConfig(id_weight=1.0))
    with pytest.raises(ValueError, match="id_weight"):
        ParallelConfig(id_weight=-1.0)


def test_id_score_slate_and_logprob_of_agree_with_recommend(cycle_split, cycle_codes):
    """Serving's exact score of a model with an ID term (``Σ_k log p_k + id_weight · h·e``) ranks like offline
    ``recommend``, and ``logprob_of`` gives the slate's own scores; pre-selection refuses such a model clearly."""
    from genads.parallel import ParallelRecommender
    from genads.parallel.preselect import IVFPreselect

    rec = ParallelRecommender(cycle_codes, ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=10, n_items=1,
                                                          dropout=0.0, id_weight=10.0), TINY)
    rec.fit(cycle_split, seed=0, progress=False)
    with torch.no_grad():
        rec.model.item.weight.mul_(4.0)  # the ID term decides part of the ranking
    hist = cycle_split.test.history[:16]
    slate = rec.slate(hist, 10)
    np.testing.assert_array_equal(slate.ads, rec.recommend(hist, 10))
    np.testing.assert_allclose(rec.logprob_of(hist, slate.ads), slate.logprob, rtol=1e-5, atol=1e-5)
    plain_logp = rec.logprobs(hist)
    codes_only = rec.live.topk(plain_logp, 10)
    assert not np.array_equal(codes_only.ads, slate.ads)  # the ID term changes the ranking here
    with pytest.raises(ValueError, match="ID term"):
        IVFPreselect(rec.model, rec.live)


@pytest.mark.parametrize("negatives", ["per-position", "shared"])
def test_id_out_dropout_drops_the_scored_id_rows_in_training_only(cycle_split, cycle_codes, negatives):
    """``id_out_dropout`` changes the item loss while the model trains (the scored ID rows are dropped) and not at
    all in eval mode; it is a training-config field with a range check."""
    from genads.parallel.train import Objective

    model = build(cycle_codes, dropout=0.0, id_dropout=0.0, id_weight=3.0)
    with torch.no_grad():
        model.item.weight.mul_(5.0)
    codes_t = torch.from_numpy(cycle_codes)
    base = replace(TINY, negatives=negatives, n_negatives=6, code_weight=0.0)
    losses = {}
    for mode in ("train", "eval"):
        getattr(model, mode)()
        for p in (0.0, 0.5):
            torch.manual_seed(0)
            losses[mode, p] = _item_loss(Objective(model, codes_t, replace(base, id_out_dropout=p)), cycle_split)[3]
    torch.testing.assert_close(losses["eval", 0.5], losses["eval", 0.0])
    torch.testing.assert_close(losses["train", 0.0], losses["eval", 0.0])
    assert not torch.allclose(losses["train", 0.5], losses["train", 0.0])
    with pytest.raises(ValueError, match="id_out_dropout"):
        ParallelTrainConfig(id_out_dropout=1.0)


def _items(row: np.ndarray) -> list[int]:
    n = int((row > 0).sum())
    assert (row[:len(row) - n] == 0).all() and (row[len(row) - n:] > 0).all(), "left-padded, right-aligned"
    return row[len(row) - n:].tolist()


def test_crop_keeps_a_right_aligned_contiguous_run_and_shuffle_a_permutation():
    """A crop keeps a contiguous run of at least ``crop_min`` of the items (and two), right-aligned; a reorder
    permutes one span of ``shuffle_span`` of them and leaves the rest in place; no augmentation is the identity,
    rows of one item are never touched, and the input is not changed."""
    from genads.parallel.train import augment

    rng = np.random.default_rng(0)
    rows = np.zeros((400, 12), dtype=np.int64)
    for r in range(len(rows)):
        n = int(rng.integers(1, 13))
        rows[r, 12 - n:] = rng.permutation(np.arange(1, 100))[:n]  # distinct items: positions are identifiable
    windows = torch.from_numpy(rows.copy())
    assert torch.equal(augment(windows, TINY, np.random.default_rng(1)), windows)

    cropped = augment(windows, replace(TINY, crop_prob=1.0, crop_min=0.5), np.random.default_rng(1)).numpy()
    shorter = 0
    for before, after in zip(rows, cropped, strict=True):
        old, new = _items(before), _items(after)
        if len(old) < 2:
            assert new == old
            continue
        assert len(new) >= max(2, int(np.ceil(0.5 * len(old))))
        start = old.index(new[0])
        assert old[start:start + len(new)] == new
        shorter += len(new) < len(old)
    assert shorter > 100

    shuffled = augment(windows, replace(TINY, shuffle_prob=1.0, shuffle_span=0.25), np.random.default_rng(1)).numpy()
    moved = 0
    for before, after in zip(rows, shuffled, strict=True):
        old, new = _items(before), _items(after)
        assert sorted(new) == sorted(old) and len(new) == len(old)
        diff = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        if diff:
            span = max(2, int(np.ceil(0.25 * len(old))))
            assert diff[-1] - diff[0] < span
            moved += 1
    assert moved > 100
    assert torch.equal(windows, torch.from_numpy(rows))
    for field in ("crop_prob", "shuffle_prob"):
        with pytest.raises(ValueError, match=field):
            ParallelTrainConfig(**{field: 1.5})
    with pytest.raises(ValueError, match="crop_min"):
        ParallelTrainConfig(crop_min=0.0)


def test_augmented_training_learns_and_is_reproducible(cycle_split, cycle_codes):
    cfg = ParallelTrainConfig(batch_size=16, lr=1e-2, warmup_steps=3, epochs=20, eval_every=10, patience=3,
                              n_negatives=16, crop_prob=0.5, shuffle_prob=0.3)
    logs, scores = [], []
    for _ in range(2):
        model = build(cycle_codes, d_model=32, dropout=0.0)
        logs.append([r["loss"] for r in fit(model, cycle_codes, cycle_split, cfg, seed=3, progress=False)])
        ranked = exact_topk(model, torch.from_numpy(cycle_codes), cycle_split.test.history, 10)
        scores.append(ranking_metrics(ranked, cycle_split.test.target, ks=(10,))["recall@10"])
    assert logs[0] == logs[1] and scores[0] == scores[1]
    assert scores[0] > 0.5


def test_the_hybrid_aug_preset_is_hybrid_od_with_the_settings_its_runs_used():
    """'hybrid-aug' is what the Beauty runs of docs/generator.md (fifth round) trained through --set overrides of
    'hybrid-od': the same fields, and the code part of an item logit within ±m/(m·5) = ±0.2."""
    from genads.parallel import PRESETS

    od_arch, od_train = PRESETS["hybrid-od"]
    arch, train = PRESETS["hybrid-aug"]
    assert arch == replace(od_arch, id_weight=2285.714285714286)
    assert train == replace(od_train, item_temperature=5.0, crop_prob=0.3, shuffle_prob=0.3)
    assert arch.id_weight == pytest.approx(arch.n_codes * train.item_temperature / arch.temperature)
    assert not arch.code_input and train.exclude_history and train.stop_metric == "recall@10"
    # 'hybrid-full' is what the seventh round's runs trained with --set parallel.negatives=all
    full_arch, full_train = PRESETS["hybrid-full"]
    assert full_arch == arch and full_train == replace(train, negatives="all")
