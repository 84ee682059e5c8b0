"""The LM title generator on a tiny random Gemma 3 (the real architecture; no weights needed)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from genads.creative import lm
from genads.creative import lm_titles as lt
from genads.creative.constraint import TitleConstraint

WORDS = ["red", "blue", "cotton", "wool", "shirt", "coat", "slim", "warm", "soft", "light"]


def _examples(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        sps = tuple(str(w) for w in rng.choice(WORDS, size=4, replace=False))
        out.append(lt.TitleExample(sps, f"{sps[0]} {sps[1]} for you", history=("warm wool coat",)))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    data = _examples(64)
    texts = [lt.prompt(e.selling_points, e.history) + " " + e.target for e in data]
    backbone = lm.tiny_backbone(tmp_path_factory.mktemp("tiny"), texts, seed=0)
    model, tok = lt.load_model(backbone.path)
    return backbone, model, tok, data


def test_lora_training_lowers_the_loss_and_round_trips(tiny, tmp_path):
    backbone, _, _, data = tiny
    model, tok = lt.load_model(backbone.path)  # train_lora wraps the model in place: a fresh copy
    cfg = lt.LoraConfig(epochs=6, batch_size=16, lr=3e-2, rank=4, alpha=8, dropout=0.0)
    peft_model, info = lt.train_lora(model, tok, data, cfg, progress=False)
    assert info["loss_last"] < info["loss_first"]
    folder = lt.save_adapter(peft_model, tmp_path / "adapter", backbone.name, info)
    assert (folder / "adapter_model.safetensors").exists()
    assert lt.adapter_backbone(folder) == "tiny-gemma3"
    assert json.loads((folder / lt.ADAPTER_META).read_text())["examples"] == len(data)
    gen = lt.LMTitleGenerator.from_dirs(backbone.path, folder, lt.DecodeConfig(candidates=3, max_new_tokens=8))
    assert isinstance(gen.title(["red", "cotton", "shirt"]), str)


def test_decoding_obeys_the_constraint_and_is_seeded(tiny):
    _, model, tok, _ = tiny
    gen = lt.LMTitleGenerator(model, tok, lt.DecodeConfig(candidates=4, max_new_tokens=10, temperature=1.5))
    sps = ["red cotton", "slim shirt"]
    a = gen.generate(sps, ["blue wool coat"])
    b = gen.generate(sps, ["blue wool coat"])
    assert a.title == b.title and a.candidates == b.candidates
    c = TitleConstraint(sps)
    assert all(c.check(t) for t in a.candidates if t)
    assert a.unsupported == 0


def test_covered_counts_distinct_supported_content_words():
    assert lt.covered("Stanley heavy-duty staples for roofing felt", ["Stanley", "heavy-duty", "roofing felt"]) == 4
    assert lt.covered("red red shirt", ["red shirt"]) == 2  # distinct words, function words never count
    assert lt.covered("the and for", ["red"]) == 0
    assert lt.covered("这款连衣裙采用印花设计", ["连衣裙", "印花"]) == 2


def test_coverage_ranking_prefers_the_candidate_with_more_selling_points(tiny):
    _, model, tok, _ = tiny
    sps = ["red cotton", "slim shirt", "warm wool"]
    cfg = lt.DecodeConfig(candidates=6, max_new_tokens=10, temperature=1.5)
    by_lp = lt.LMTitleGenerator(model, tok, cfg).generate(sps)
    by_cover = lt.LMTitleGenerator(model, tok, replace(cfg, rank="coverage")).generate(sps)
    assert by_lp.candidates == by_cover.candidates  # the same samples; only the choice differs
    if not by_cover.fallback:
        finished = [t for t in by_cover.candidates if t]
        assert lt.covered(by_cover.title, sps) >= lt.covered(by_lp.title, sps)
        assert by_cover.title in finished
    with pytest.raises(ValueError, match="rank"):
        lt.DecodeConfig(rank="length")


def test_allowed_tokens_cover_the_sources(tiny):
    _, _, tok, _ = tiny
    ids = lt.allowed_token_ids(tok, ["cotton shirt"])
    text = "".join(tok.convert_ids_to_tokens(ids))
    assert "c" in text and tok.eos_token_id in ids
    assert len(ids) < len(tok.get_vocab())


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="lr"):
        lt.LoraConfig(lr=2.0)
    with pytest.raises(ValueError, match="temperature"):
        lt.DecodeConfig(temperature=0)
    with pytest.raises(lm.MissingBackboneError, match=r"config\.json"):
        lm.load_backbone("/nonexistent/folder")


def test_restricted_head_equals_the_full_lm_head(tiny):
    """Decoding scores only allowed tokens from the body's hidden state: the same numbers as the full head."""
    _, model, tok, _ = tiny
    gen = lt.LMTitleGenerator(model, tok)
    ids = tok(lt.prompt(["red cotton"]), return_tensors="pt")["input_ids"]
    allowed = torch.tensor(lt.allowed_token_ids(tok, ["red cotton"]))
    with torch.no_grad():
        full = model(input_ids=ids).logits[0, -1, allowed]
        mine = gen._logits(gen.body(input_ids=ids).last_hidden_state[0, -1], gen.head[allowed])
    assert torch.allclose(full, mine, atol=1e-5)


@pytest.mark.skipif(not lm.available("gemma3-270m"), reason="Gemma 3 270M weights not installed (make demo installs them)")
def test_real_gemma_writes_a_constrained_title(tmp_path_factory):
    """The real backbone (base, no adapter): a fluent-enough title that says only supported content words."""
    from pathlib import Path

    backbone = lm.load_backbone("gemma3-270m", cache_dir=Path("runs/creative_lm"), progress=False)
    gen = lt.LMTitleGenerator.from_dirs(backbone.path, None, lt.DecodeConfig(candidates=2, max_new_tokens=12))
    sps = ["cordless drill", "20V lithium battery", "stainless steel chuck"]
    res = gen.generate(sps)
    assert res.title and res.unsupported == 0
    assert TitleConstraint(sps).check(res.title)


def test_validation_loss_stops_training_and_keeps_the_best_epoch(tiny):
    """Memorise 8 examples at a high rate: held-out loss turns up, training stops, the best epoch is restored."""
    backbone, _, _, data = tiny
    model, tok = lt.load_model(backbone.path)
    cfg = lt.LoraConfig(epochs=12, batch_size=8, lr=1e-1, rank=8, alpha=32, dropout=0.0, patience=1)
    peft_model, info = lt.train_lora(model, tok, data[:8], cfg, progress=False, valid=data[40:56])
    losses = info["valid_losses"]
    assert info["epochs_run"] == len(losses) < cfg.epochs  # stopped early
    assert losses[-1] >= min(losses) and info["best_epoch"] == losses.index(min(losses)) + 1
    assert abs(lt.validation_loss(peft_model, tok, data[40:56], cfg) - min(losses)) < 1e-4  # best weights back
    with pytest.raises(ValueError, match="validation"):
        lt.validation_loss(peft_model, tok, [], cfg)


def test_few_shot_prompts_carry_the_shots_and_keep_the_rules(tiny):
    _, model, tok, data = tiny
    shots = data[:3]
    gen = lt.LMTitleGenerator(model, tok, lt.DecodeConfig(candidates=2, max_new_tokens=8), shots=shots)
    assert gen.shots_text.count("Ad title:") == 3 and shots[0].target in gen.shots_text
    sps = ["red cotton", "slim shirt"]
    res = gen.generate(sps)
    assert res.title == gen.generate(sps).title and TitleConstraint(sps).check(res.title)
    plain = lt.LMTitleGenerator(model, tok, lt.DecodeConfig(candidates=2, max_new_tokens=8))
    assert plain.shots_text == "" and plain.generate(sps).logprob != res.logprob  # the shots change the model's view


def test_bf16_training_matches_fp32_loss_and_learns(tiny):
    """bfloat16 autocast: the same per-token loss as fp32 to bf16 precision, fp32 LoRA weights, the loss falls."""
    backbone, _, _, data = tiny
    model, tok = lt.load_model(backbone.path)
    fp32 = lt.validation_loss(model, tok, data[:16], lt.LoraConfig())
    bf16 = lt.validation_loss(model, tok, data[:16], lt.LoraConfig(bf16=True))
    assert bf16 != fp32 and abs(bf16 - fp32) < 0.02 * fp32
    cfg = lt.LoraConfig(epochs=6, batch_size=16, lr=3e-2, rank=4, alpha=8, dropout=0.0, bf16=True)
    peft_model, info = lt.train_lora(model, tok, data, cfg, progress=False)
    assert info["loss_last"] < info["loss_first"]
    assert all(p.dtype == torch.float32 for p in peft_model.parameters() if p.requires_grad)
