"""A small title transformer, trained from scratch on CPU, with selling-point-constrained decoding.

A decoder-only prefix LM over words. The prefix is the instruction of Uni-AdGen's text templates
without the prose: ``<s> selling points (| between them) <sep> description <sep> history titles
(projected onto the selling-point words, | between them) <title>``; the model then writes the title
and ``</s>``. Training targets are reference titles projected onto the selling-point words
(:func:`genads.creative.ngram.project`): the best a constrained title can say, in the reference's
order. Loss is cross-entropy on the title positions only.

Decoding is greedy under three constraints applied to the logits: only selling-point words (the
title's factuality is 1.0 by construction), no word twice (so no selling point is repeated),
and at most ``max_title_words`` words (``</s>`` is forced at the limit and barred before one word).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genads.creative.ngram import project
from genads.creative.text import selling_point_vocab, tokenize

SPECIALS = ("<pad>", "<unk>", "<s>", "<sep>", "<title>", "</s>", "|")
PAD, UNK, BOS, SEP, TITLE, EOS, BAR = range(len(SPECIALS))


@dataclass(frozen=True)
class TitleModelConfig:
    vocab_size: int
    n_layer: int = 2
    d_model: int = 128
    n_head: int = 4
    dropout: float = 0.1
    max_len: int = 192
    """Positions; longer prefixes are cut from the history end."""
    max_title_words: int = 12
    max_desc_words: int = 24
    max_history_words: int = 80

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if self.vocab_size <= len(SPECIALS):
            raise ValueError(f"vocab_size={self.vocab_size} must exceed the {len(SPECIALS)} special tokens")
        if self.max_len < self.max_title_words + 8:
            raise ValueError(f"max_len={self.max_len} must leave room for max_title_words={self.max_title_words}")


@dataclass(frozen=True)
class TitleExample:
    selling_points: tuple[str, ...]
    description: str
    history_titles: tuple[str, ...]
    target: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    seed: int = 0
    shuffle_selling_points: bool = True
    """Augmentation: present the selling points in a random order each time, so the title's order
    has to come from the words (and the history), not from their position in the input."""
    max_seconds: float | None = None
    """Stop after the epoch in which this process has used this many CPU seconds on training
    (``time.process_time``, so other load on the machine does not count); None: every epoch.
    Only for time-boxed runs such as the demo: it makes the number of epochs machine-dependent."""

    def __post_init__(self) -> None:
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds={self.max_seconds} must be > 0 or None")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs={self.epochs}, batch_size={self.batch_size} must be >= 1 and lr={self.lr} > 0")


class Vocab:
    def __init__(self, words: list[str]) -> None:
        self.itos = [*SPECIALS, *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, examples: list[TitleExample], min_count: int = 2) -> Vocab:
        """Every selling-point word, plus description/history words seen ``min_count`` times."""
        sp_words, other = set(), Counter()
        for ex in examples:
            sp_words |= selling_point_vocab(list(ex.selling_points))
            other.update(tokenize(ex.description))
            for t in ex.history_titles:
                other.update(tokenize(t))
        words = sorted(sp_words | {w for w, c in other.items() if c >= min_count} - set(SPECIALS))
        return cls(words)

    def ids(self, words: list[str]) -> list[int]:
        return [self.stoi.get(w, UNK) for w in words]

    def __len__(self) -> int:
        return len(self.itos)


def encode_prefix(ex: TitleExample, vocab: Vocab, cfg: TitleModelConfig) -> list[int]:
    """Token ids up to and including ``<title>``."""
    sp_vocab = selling_point_vocab(list(ex.selling_points))
    sps: list[int] = []
    for sp in ex.selling_points:
        sps += [*vocab.ids(tokenize(sp)), BAR]
    hist: list[int] = []
    for t in ex.history_titles:
        words = project(tokenize(t), sp_vocab)
        if words:
            hist += [*vocab.ids(words), BAR]
    room = cfg.max_len - cfg.max_title_words - 6 - len(sps) - min(cfg.max_desc_words, len(tokenize(ex.description)))
    hist = hist[:max(0, min(room, cfg.max_history_words))]
    desc = vocab.ids(tokenize(ex.description)[:cfg.max_desc_words])
    return [BOS, *sps, SEP, *desc, SEP, *hist, TITLE][-(cfg.max_len - cfg.max_title_words - 1):]


def target_words(ex: TitleExample, max_words: int) -> list[str]:
    return project(tokenize(ex.target or ""), selling_point_vocab(list(ex.selling_points)))[:max_words]


class Block(nn.Module):
    def __init__(self, cfg: TitleModelConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = nn.MultiheadAttention(cfg.d_model, cfg.n_head, dropout=cfg.dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TitleTransformer(nn.Module):
    """Pre-LN causal transformer with tied input/output embeddings."""

    def __init__(self, cfg: TitleModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        for emb in (self.tok, self.pos):  # small init: logits come from the tied embedding
            nn.init.normal_(emb.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) next-token logits."""
        t = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))  # (B, T, D)
        mask = torch.triu(torch.full((t, t), float("-inf"), device=tokens.device), diagonal=1)  # (T, T)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x) @ self.tok.weight.T  # (B, T, V)


def _shuffled(ex: TitleExample, rng: np.random.Generator) -> TitleExample:
    order = rng.permutation(len(ex.selling_points))
    return TitleExample(tuple(ex.selling_points[i] for i in order), ex.description, ex.history_titles, ex.target)


def _batch(examples: list[TitleExample], vocab: Vocab, cfg: TitleModelConfig,
           rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    seqs, starts = [], []
    for ex in examples:
        ex = _shuffled(ex, rng) if rng is not None else ex
        prefix = encode_prefix(ex, vocab, cfg)
        seqs.append([*prefix, *vocab.ids(target_words(ex, cfg.max_title_words)), EOS])
        starts.append(len(prefix))
    width = max(map(len, seqs))
    tokens = torch.full((len(seqs), width), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, st) in enumerate(zip(seqs, starts, strict=True)):
        tokens[i, :len(s)] = torch.tensor(s)
        labels[i, st - 1:len(s) - 1] = torch.tensor(s[st:])  # position j predicts token j + 1
    return tokens, labels


def fit(examples: list[TitleExample], model_config: TitleModelConfig | None = None,
        train: TrainConfig | None = None, vocab: Vocab | None = None) -> tuple[TitleTransformer, Vocab, list[float]]:
    """Train from scratch; returns (model in eval mode, vocab, mean loss per epoch)."""
    train = train or TrainConfig()
    vocab = vocab or Vocab.build(examples)
    cfg = model_config or TitleModelConfig(vocab_size=len(vocab))
    if cfg.vocab_size != len(vocab):
        raise ValueError(f"model_config.vocab_size={cfg.vocab_size} != len(vocab)={len(vocab)}")
    torch.manual_seed(train.seed)
    model = TitleTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    steps = train.epochs * -(-len(examples) // train.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train.lr, total_steps=steps, pct_start=0.1)
    gen = np.random.default_rng(train.seed)
    losses = []
    start = time.process_time()
    model.train()
    for _ in range(train.epochs):
        order, total = gen.permutation(len(examples)), 0.0
        for b in range(0, len(order), train.batch_size):
            tokens, labels = _batch([examples[i] for i in order[b:b + train.batch_size]], vocab, cfg,
                                    gen if train.shuffle_selling_points else None)
            loss = F.cross_entropy(model(tokens).flatten(0, 1), labels.flatten(), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(tokens)
        losses.append(total / len(examples))
        if train.max_seconds is not None and time.process_time() - start > train.max_seconds:
            break
    return model.eval(), vocab, losses


class TransformerTitleGenerator:
    """Same call as the n-gram baseline: (selling points, description, history titles) -> words."""

    def __init__(self, model: TitleTransformer, vocab: Vocab, max_words: int | None = None, eos_bias: float = 0.0) -> None:
        """``eos_bias`` is added to the end-of-title logit: < 0 gives longer titles (greedy decoding
        tends to stop early, since every further word has to beat the end token)."""
        self.model, self.vocab = model, vocab
        self.max_words = max_words or model.config.max_title_words
        self.eos_bias = eos_bias

    @torch.no_grad()
    def __call__(self, selling_points: list[str], description: str = "", history_titles: list[str] = ()) -> list[str]:
        ex = TitleExample(tuple(selling_points), description, tuple(history_titles))
        tokens = encode_prefix(ex, self.vocab, self.model.config)
        allowed = sorted({self.vocab.stoi[w] for w in selling_point_vocab(list(selling_points)) if w in self.vocab.stoi})
        out: list[int] = []
        while len(out) < self.max_words:
            options = [i for i in allowed if i not in out] + ([EOS] if out else [])
            if not options:
                break
            logits = self.model(torch.tensor([tokens + out]))[0, -1].clone()  # (V,)
            logits[EOS] += self.eos_bias
            nxt = options[int(torch.argmax(logits[options]))]
            if nxt == EOS:
                break
            out.append(nxt)
        return [self.vocab.itos[i] for i in out]


def save(path: str | Path, model: TitleTransformer, vocab: Vocab) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (model config + vocabulary) into folder ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    tmp = path / "config.json.tmp"
    tmp.write_text(json.dumps({"config": asdict(model.config), "vocab": vocab.itos[len(SPECIALS):]}, ensure_ascii=False))
    tmp.replace(path / "config.json")
    return path


def load(path: str | Path) -> TransformerTitleGenerator:
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    model = TitleTransformer(TitleModelConfig(**meta["config"]))
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return TransformerTitleGenerator(model.eval(), Vocab(meta["vocab"]))
