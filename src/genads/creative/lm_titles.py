"""Ad titles from a pretrained small LM: constrained sample-and-rerank decoding (training: ``lm_train``).

Decoding (:class:`LMTitleGenerator`): the prompt (``lm_train.fit_prompt``) is encoded once, its KV
cache copied for ``candidates`` samples; each step samples only among the tokens that can occur in
an allowed title (pieces of the sources' text, the language's function words, punctuation, end of
text) and keeps a draw only when the title stays a valid prefix under
:class:`~genads.creative.constraint.TitleConstraint` and the rules of
:class:`~genads.creative.title_rules.TitleRules` (one script, a length budget, no repeated n-gram,
a finished end; resampling when a draw breaks them). Finished candidates are reranked: complete
first, then fewest unsupported content words, no repetition, mean token log-probability.
The hot path of the service never calls this: titles are generated offline and stored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genads.creative.constraint import (
    FUNCTION_EN,
    FUNCTION_ZH,
    TitleConstraint,
    content_support,
    is_function_word,
)
from genads.creative.lm_train import (  # noqa: F401 - the training half, importable from here as before
    ADAPTER_META,
    LoraConfig,
    TitleExample,
    adapter_backbone,
    fit_prompt,
    load_model,
    prompt,
    save_adapter,
    train_lora,
    validation_loss,
)
from genads.creative.metrics import repetition_rate
from genads.creative.text import is_chinese, selling_point_vocab, tokenize
from genads.creative.title_rules import LengthBudget, TitleRules


@dataclass(frozen=True)
class DecodeConfig:
    candidates: int = 4
    temperature: float = 0.7
    max_new_tokens: int = 32
    resample_tries: int = 8
    seed: int = 0
    budget: LengthBudget = field(default_factory=LengthBudget)
    """Length budget and n-gram blocking (``title_rules``)."""
    max_prompt_tokens: int = 128
    """Prompts longer than this lose their oldest history titles first (:func:`fit_prompt`)."""
    rank: str = "logprob"
    """How the finished candidates are ordered after the rules (complete, fewest unsupported words, no repetition):
    "logprob" (highest mean token log-probability) or "coverage" (most distinct selling-point content words,
    then log-probability): the adapter stops early when the words it wants are not in the selling points."""

    def __post_init__(self) -> None:
        if min(self.candidates, self.max_new_tokens, self.resample_tries, self.max_prompt_tokens) < 1:
            raise ValueError("candidates, max_new_tokens, resample_tries and max_prompt_tokens must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        if self.rank not in RANKS:
            raise ValueError(f"rank={self.rank!r} must be one of {RANKS}")


RANKS = ("logprob", "coverage")


_CJK_TEXT = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_PUNCT_PIECES = (" ", ",", ".", "!", "-", "&", "/", "(", ")", "'", ":", "，", "。", "！", "、", "~", "～", "|", "+")


def allowed_token_ids(tok, sources: list[str], cache: dict | None = None, lang: str | None = None) -> list[int]:
    """Vocabulary entries that can occur in an allowed title: substrings of the sources (original,
    lower, Title, UPPER case), function words, punctuation. Found by dictionary look-up, not a scan.
    With ``lang`` ("en" or "zh") only that language's function words, and for "en" no CJK at all."""
    vocab = cache if cache is not None else tok.get_vocab()
    space = "▁" if any(k in vocab for k in ("▁the", "▁a")) or any(k.startswith("▁") for k in vocab) else "Ġ"
    function = {"en": FUNCTION_EN, "zh": FUNCTION_ZH}.get(lang, FUNCTION_EN | FUNCTION_ZH)
    texts = set()
    for s in [*sources, *function]:
        for variant in {s, s.lower(), s.title(), s.upper(), s.capitalize()}:
            texts.add(variant)
    found: set[int] = set()
    for text in texts:
        n = len(text)
        for i in range(n):
            for j in range(i + 1, min(n, i + 16) + 1):
                piece = text[i:j]
                for cand in (piece, space + piece, piece.replace(" ", space)):
                    tid = vocab.get(cand)
                    if tid is not None:
                        found.add(tid)
    for p in _PUNCT_PIECES:
        for cand in (p, space + p, space):
            if cand in vocab:
                found.add(vocab[cand])
    if lang == "en":
        found = {t for t in found if not _CJK_TEXT.search(tok.convert_ids_to_tokens(t) or "")}
    found.add(tok.eos_token_id)
    return sorted(found)


@dataclass
class TitleResult:
    title: str
    unsupported: int
    content_words: int
    repetition: float
    logprob: float
    candidates: list[str] = field(default_factory=list)
    complete: bool = True
    """The title obeys every decoding rule (``title_rules``: long enough, one script, a finished end)."""
    fallback: bool = False
    """No sampled candidate was complete: the title is the first selling points joined."""


def covered(title: str, sources: list[str]) -> int:
    """Distinct content words of ``title`` that the sources hold (:func:`content_support`'s words)."""
    vocab = {w.lower() for w in selling_point_vocab(sources)}
    joined = " ".join(sources).lower()
    words = {w.lower() for w in tokenize(title) if not is_function_word(w)}
    return sum(1 for w in words if w in vocab or (is_chinese(w) and w in joined))


class LMTitleGenerator:
    """Titles from a (LoRA-adapted) causal LM under the constraint; implements the TitleGenerator protocol."""

    def __init__(self, model, tok, decode: DecodeConfig | None = None, history_title_words: int = 8,
                 shots: list[TitleExample] | tuple[TitleExample, ...] = ()) -> None:
        """``shots``: worked examples put before every prompt (the few-shot, no-training baseline)."""
        self.model, self.tok = model, tok
        self.decode = decode or DecodeConfig()
        self.history_title_words = history_title_words
        self.shots_text = "".join(f"{prompt(e.selling_points, e.history, history_title_words)} {e.target.strip()}\n\n"
                                  for e in shots)
        self._vocab = tok.get_vocab()
        self._pieces: dict[int, str] = {}
        self.body = model.base_model  # the decoder without its LM head: final-normed hidden states
        self.head = model.get_output_embeddings().weight.detach()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)

    @classmethod
    def from_dirs(cls, backbone: Path | str, adapter: Path | str | None, decode: DecodeConfig | None = None):
        model, tok = load_model(backbone, adapter)
        return cls(model, tok, decode)

    def _piece(self, tid: int) -> str:
        """The token's text; a word-initial token keeps its space (some decoders strip it from a lone token)."""
        if tid not in self._pieces:
            text, raw = self.tok.decode([tid]), self.tok.convert_ids_to_tokens(tid) or ""
            self._pieces[tid] = " " + text if raw.startswith(("▁", "Ġ")) and not text.startswith(" ") else text
        return self._pieces[tid]

    def _ok(self, text: str, c: int, allowed: torch.Tensor, eos: int, constraint: TitleConstraint,
            rules: TitleRules) -> bool:
        """May candidate text ``text`` take token ``c`` (an index into ``allowed``)?"""
        if c == eos:
            return rules.may_stop(text) and constraint.check(text)
        piece = self._piece(int(allowed[c]))
        return constraint.check(text + piece, partial=True) and rules.may_extend(text, piece)

    def _best_valid(self, logp: torch.Tensor, text: str, allowed: torch.Tensor, eos: int, constraint: TitleConstraint,
                    rules: TitleRules, top: int = 64) -> int:
        """When sampling found nothing valid: the most probable valid token among the ``top`` (else the end)."""
        for c in torch.argsort(logp, descending=True)[:top].tolist():
            if self._ok(text, c, allowed, eos, constraint, rules):
                return c
        return eos

    def _sample(self, logp: torch.Tensor, text: str, allowed: torch.Tensor, eos: int, constraint: TitleConstraint,
                rules: TitleRules, gen: torch.Generator) -> int:
        """One token for one candidate: sample, resample a draw the rules refuse, then fall back to the best valid."""
        probs = logp.exp().clone()
        for _ in range(self.decode.resample_tries):
            c = int(torch.multinomial(probs, 1, generator=gen))
            if self._ok(text, c, allowed, eos, constraint, rules):
                return c
            probs[c] = 0.0
            if probs.sum() <= 0:
                break
        return self._best_valid(logp, text, allowed, eos, constraint, rules)

    def _logits(self, hidden: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        logits = hidden @ head.T
        return torch.tanh(logits / self.softcap) * self.softcap if self.softcap else logits

    @torch.no_grad()
    def _candidates(self, ids: torch.Tensor, allowed: torch.Tensor, constraint: TitleConstraint, rules: TitleRules,
                    seed: int) -> tuple[list[str], list[list[float]]]:
        """``candidates`` constrained samples sharing the prompt's KV cache: (texts, token log-probs)."""
        cfg = self.decode
        eos = int((allowed == self.tok.eos_token_id).nonzero()[0, 0])
        gen = torch.Generator().manual_seed(seed)
        k = cfg.candidates
        head = self.head[allowed]  # (A, D): only tokens an allowed title can use (the full head is 262k rows)
        out = self.body(input_ids=ids, use_cache=True)
        cache = out.past_key_values
        cache.batch_repeat_interleave(k)
        logits = self._logits(out.last_hidden_state[:, -1], head).expand(k, -1)  # (K, A)
        texts, done, logps = [""] * k, [False] * k, [[] for _ in range(k)]
        pos = ids.shape[1]
        for _step in range(cfg.max_new_tokens):
            logp = torch.log_softmax(logits / cfg.temperature, -1)  # (K, A)
            nxt = torch.full((k,), eos, dtype=torch.long)
            for r in range(k):
                if done[r]:
                    continue
                choice = self._sample(logp[r], texts[r], allowed, eos, constraint, rules, gen)
                nxt[r] = choice
                logps[r].append(float(logp[r, choice]))
                if choice != eos:
                    texts[r] += self._piece(int(allowed[choice]))
                done[r] = choice == eos or rules.sentence_ended(texts[r])
            if all(done):
                break
            step = self.body(input_ids=allowed[nxt][:, None], past_key_values=cache, use_cache=True,
                             position_ids=torch.full((k, 1), pos))
            cache, logits = step.past_key_values, self._logits(step.last_hidden_state[:, -1], head)
            pos += 1
        return texts, logps

    @torch.no_grad()
    def generate(self, selling_points: list[str], history_titles: list[str] = (), sources: list[str] = (),
                 brand: str = "") -> TitleResult:
        """The best of ``candidates`` constrained samples for one product (seeded by the prompt).

        A candidate cut off by ``max_new_tokens`` is trimmed back to its longest finished prefix.
        Ranking: complete first, then fewest unsupported content words, no repetition, (``rank="coverage"``)
        most selling-point content words, highest mean token log-probability. When no candidate is complete the first selling points that keep to
        the language's script, joined, are the title (``fallback``)."""
        cfg = self.decode
        srcs = [*selling_points, *sources]
        constraint, rules = TitleConstraint(srcs), TitleRules(srcs, cfg.budget, brand)
        text, ids = fit_prompt(self.tok, selling_points, list(history_titles), cfg.max_prompt_tokens,
                               self.history_title_words)
        if self.shots_text:  # the product's part was fitted; the shots come whole before it
            ids = self.tok(self.shots_text + text, add_special_tokens=True)["input_ids"]
        allowed = torch.tensor(allowed_token_ids(self.tok, srcs, self._vocab, rules.lang))
        seed = (cfg.seed * 1_000_003 + sum(map(ord, text)) * 7919) % (2**31)
        texts, logps = self._candidates(torch.tensor([ids]), allowed, constraint, rules, seed)
        scored = []
        for r, raw in enumerate(texts):
            title = re.sub(r"\s+", " ", raw).strip()
            if not rules.may_stop(title) or not constraint.check(title):
                title = rules.trim(title, constraint.check)
            complete = rules.may_stop(title) and constraint.check(title)
            bad, n = content_support(title, srcs)
            rep = repetition_rate([w for w in tokenize(title) if w not in FUNCTION_EN and w not in FUNCTION_ZH])
            lp = float(np.mean(logps[r])) if logps[r] else -math.inf
            cover = -covered(title, srcs) if cfg.rank == "coverage" else 0
            scored.append((not complete, bad, rep > 0, cover, -lp, title, n, rep, lp))
        best = min(scored)
        if best[0]:
            title = rules.fallback(selling_points)
            bad, n = content_support(title, srcs)
            return TitleResult(title, bad, n, 0.0, best[8], [s[5] for s in scored], rules.may_stop(title), True)
        return TitleResult(best[5], best[1], best[6], best[7], best[8], [s[5] for s in scored], True, False)

    def title(self, selling_points: list[str], description: str = "", history_titles: list[str] = (),
              sources: list[str] = ()) -> str:
        return self.generate(list(selling_points), list(history_titles), list(sources)).title

    def __call__(self, selling_points: list[str], description: str = "", history_titles: list[str] = ()) -> list[str]:
        return tokenize(self.title(selling_points, description, history_titles))
