"""Ad titles from a pretrained small LM: LoRA fine-tuning and constrained sample-and-rerank decoding.

Prompt (one template for English and Chinese)::

    Selling points: p1; p2; p3
    [Titles this user clicked:
    - t1
    - t2]
    Ad title: <target><eos>

Training (:func:`train_lora`): LoRA (peft) on the attention projections, loss on the title tokens
only; batches are left-padded so every title ends at the last position, and the LM head runs
only on the last ``title`` positions (the 262k-word head is most of a step's cost otherwise).

Decoding (:class:`LMTitleGenerator`): the prompt is encoded once, its KV cache copied for
``candidates`` samples; each step samples only among the tokens that can occur in an allowed title
(pieces of the sources' text, function words, punctuation, end of text) and samples among those
that keep the title a valid prefix under :class:`~genads.creative.constraint.TitleConstraint`
(resampling when a draw breaks it). Finished candidates are reranked: fewest unsupported content
words first, then no repetition, then mean token log-probability.
The hot path of the service never calls this: titles are generated offline and stored.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from genads.creative.constraint import FUNCTION_EN, FUNCTION_ZH, TitleConstraint, content_support
from genads.creative.metrics import repetition_rate
from genads.creative.text import tokenize
from genads.creative.title_rules import LengthBudget, TitleRules

ADAPTER_META = "title_lm.json"


@dataclass(frozen=True)
class TitleExample:
    selling_points: tuple[str, ...]
    target: str
    history: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    """Extra allowed sources beyond the selling points (brand, category)."""


@dataclass(frozen=True)
class LoraConfig:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    epochs: int = 2
    batch_size: int = 8
    lr: float = 5e-4
    max_prompt_tokens: int = 128
    max_title_tokens: int = 40
    history_title_words: int = 8
    """History titles are cut to this many words in the prompt."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rank", "alpha", "epochs", "batch_size", "max_prompt_tokens", "max_title_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr={self.lr} must be in (0, 1)")


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

    def __post_init__(self) -> None:
        if min(self.candidates, self.max_new_tokens, self.resample_tries, self.max_prompt_tokens) < 1:
            raise ValueError("candidates, max_new_tokens, resample_tries and max_prompt_tokens must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")


def _cut_words(text: str, n: int) -> str:
    parts = text.split()
    if len(parts) > 1:
        return " ".join(parts[:n])
    return text[: 2 * n]  # Chinese: about n words' worth of characters


def prompt(selling_points: list[str] | tuple[str, ...], history: list[str] | tuple[str, ...] = (),
           history_title_words: int = 8) -> str:
    text = "Selling points: " + "; ".join(s.strip() for s in selling_points) + "\n"
    if history:
        text += "Titles this user clicked:\n" + "".join(f"- {_cut_words(h, history_title_words)}\n" for h in history)
    return text + "Ad title:"


def fit_prompt(tok, selling_points: list[str] | tuple[str, ...], history: list[str] | tuple[str, ...],
               max_tokens: int, history_title_words: int = 8) -> tuple[str, list[int]]:
    """The prompt and its token ids within ``max_tokens``: the oldest history titles go first, then
    (only with no history left) the last selling points; the first selling point is never dropped,
    only cut to its first words when it alone is too long. ``history`` is oldest first."""
    points, hist = list(selling_points), list(history)

    def encode(sps: list[str], h: list[str]) -> tuple[str, list[int]]:
        text = prompt(sps, h, history_title_words)
        return text, tok(text, add_special_tokens=True)["input_ids"]

    text, ids = encode(points, hist)
    while len(ids) > max_tokens and hist:
        hist = hist[1:]
        text, ids = encode(points, hist)
    while len(ids) > max_tokens and len(points) > 1:
        points = points[:-1]
        text, ids = encode(points, hist)
    while len(ids) > max_tokens and len(points[0].split()) > 1:
        points = [" ".join(points[0].split()[:-1])]
        text, ids = encode(points, hist)
    return text, ids[-max_tokens:]


def load_model(path: Path | str, adapter: Path | str | None = None, merge: bool = True):
    """(model, tokenizer) from a transformers folder, with a LoRA adapter folder applied when given."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model, tok


def _encode_pair(tok, ex: TitleExample, cfg: LoraConfig) -> tuple[list[int], list[int]]:
    _, p = fit_prompt(tok, ex.selling_points, ex.history, cfg.max_prompt_tokens, cfg.history_title_words)
    t = tok(" " + ex.target.strip(), add_special_tokens=False)["input_ids"][: cfg.max_title_tokens - 1]
    return p, [*t, tok.eos_token_id]


def _batch(pairs: list[tuple[list[int], list[int]]], pad: int) -> tuple[torch.Tensor, ...]:
    """Left-padded ids, mask, positions, and the (B, T) targets aligned to the last T positions."""
    lens = [len(p) + len(t) for p, t in pairs]
    n, tl = max(lens), max(len(t) for _, t in pairs)
    ids = torch.full((len(pairs), n), pad, dtype=torch.long)
    mask = torch.zeros((len(pairs), n), dtype=torch.long)
    labels = torch.full((len(pairs), tl), -100, dtype=torch.long)
    for i, (p, t) in enumerate(pairs):
        seq = p + t
        ids[i, n - len(seq):] = torch.tensor(seq)
        mask[i, n - len(seq):] = 1
        labels[i, tl - len(t):] = torch.tensor(t)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, pos, labels


def _length_buckets(pairs: list, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length (sorted within windows of 8 batches): less padding, same data."""
    order = rng.permutation(len(pairs))
    window = 8 * batch_size
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        batches += [np.asarray(chunk[b:b + batch_size]) for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_lora(model, tok, data: list[TitleExample], cfg: LoraConfig, progress: bool = True) -> tuple[object, dict]:
    """Wrap ``model`` with a fresh LoRA adapter and fit it on ``data``; returns (peft model, info)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    if not data:
        raise ValueError("no training examples")
    torch.manual_seed(cfg.seed)
    peft_model = get_peft_model(model, PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                      target_modules=list(cfg.targets), task_type="CAUSAL_LM"))
    pairs = [_encode_pair(tok, ex, cfg) for ex in data]
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = np.random.default_rng(cfg.seed)
    steps = cfg.epochs * math.ceil(len(pairs) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * max(0.0, 1 - s / steps))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    losses, start = [], time.perf_counter()
    peft_model.train()
    bar = tqdm(total=steps, desc="LoRA", unit="batch", disable=not progress)
    for _ in range(cfg.epochs):
        for batch in _length_buckets(pairs, cfg.batch_size, rng):
            ids, mask, pos, labels = _batch([pairs[i] for i in batch], pad)
            tl = labels.shape[1]
            out = peft_model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=tl + 1)
            logits = out.logits[:, :-1]  # position k predicts token k + 1
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                     ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    bar.close()
    peft_model.eval()
    k = max(1, len(losses) // 10)
    info = {"examples": len(data), "epochs": cfg.epochs, "batches": len(losses),
            "seconds": round(time.perf_counter() - start, 1), "loss_first": float(np.mean(losses[:k])),
            "loss_last": float(np.mean(losses[-k:])), "lora": asdict(cfg)}
    return peft_model, info


def save_adapter(peft_model, folder: Path | str, backbone: str, info: dict) -> Path:
    """adapter_model.safetensors + adapter_config.json + title_lm.json, written to a temp folder and renamed."""
    import os
    import shutil
    import tempfile

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        peft_model.save_pretrained(tmp, safe_serialization=True)
        (tmp / ADAPTER_META).write_text(json.dumps({"backbone": backbone, **info}, indent=2, default=str) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def adapter_backbone(folder: Path | str) -> str:
    meta = Path(folder) / ADAPTER_META
    if not meta.exists():
        raise FileNotFoundError(f"{meta} missing: {folder} is not an adapter written by `genads creative train`")
    return json.loads(meta.read_text())["backbone"]


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


class LMTitleGenerator:
    """Titles from a (LoRA-adapted) causal LM under the constraint; implements the TitleGenerator protocol."""

    def __init__(self, model, tok, decode: DecodeConfig | None = None, history_title_words: int = 8) -> None:
        self.model, self.tok = model, tok
        self.decode = decode or DecodeConfig()
        self.history_title_words = history_title_words
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
    def generate(self, selling_points: list[str], history_titles: list[str] = (), sources: list[str] = ()) -> TitleResult:
        """The best of ``candidates`` constrained samples for one product (seeded by the prompt).

        A candidate cut off by ``max_new_tokens`` is trimmed back to its longest finished prefix.
        Ranking: complete first, then fewest unsupported content words, no repetition, highest mean
        token log-probability. When no candidate is complete the first selling points, joined, are
        the title (``fallback``)."""
        cfg = self.decode
        srcs = [*selling_points, *sources]
        constraint, rules = TitleConstraint(srcs), TitleRules(srcs, cfg.budget)
        text, ids = fit_prompt(self.tok, selling_points, list(history_titles), cfg.max_prompt_tokens,
                               self.history_title_words)
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
            scored.append((not complete, bad, rep > 0, -lp, title, n, rep, lp))
        best = min(scored)
        if best[0]:
            joiner = "，" if rules.lang == "zh" else ", "
            title = joiner.join(selling_points[:3])
            bad, n = content_support(title, srcs)
            return TitleResult(title, bad, n, 0.0, best[7], [s[4] for s in scored], rules.may_stop(title), True)
        return TitleResult(best[4], best[1], best[5], best[6], best[7], [s[4] for s in scored], True, False)

    def title(self, selling_points: list[str], description: str = "", history_titles: list[str] = (),
              sources: list[str] = ()) -> str:
        return self.generate(list(selling_points), list(history_titles), list(sources)).title

    def __call__(self, selling_points: list[str], description: str = "", history_titles: list[str] = ()) -> list[str]:
        return tokenize(self.title(selling_points, description, history_titles))
