"""LoRA fine-tuning of a small causal LM on (selling points [, clicked titles]) -> ad title pairs.

Prompt (one template for English and Chinese)::

    Selling points: p1; p2; p3
    [Titles this user clicked:
    - t1
    - t2]
    Ad title: <target><eos>

A prompt longer than ``max_prompt_tokens`` loses its oldest history titles first, never its
selling points (:func:`fit_prompt`). Training (:func:`train_lora`): LoRA (peft) on the attention
projections, loss on the title tokens only; batches are left-padded so every title ends at the last
position, and the LM head runs only on the last ``title`` positions (the 262k-word head is most of
a step's cost otherwise). With validation examples the mean title loss is measured after every
epoch; training stops after ``patience`` epochs without improvement and the best epoch's adapter
weights are restored (``max epochs`` = ``epochs``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from genads.io import replace_dir

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
    patience: int = 2
    """With validation examples: stop after this many epochs without a lower validation loss."""
    seed: int = 0
    bf16: bool = False
    """Matrix products in bfloat16 (CPU autocast; the weights and the LoRA update stay fp32): ≈ 1.5x faster
    where the CPU has AVX512-BF16, slower where it emulates it."""

    def __post_init__(self) -> None:
        for name in ("rank", "alpha", "epochs", "batch_size", "max_prompt_tokens", "max_title_tokens", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr={self.lr} must be in (0, 1)")


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


def _title_loss(model, pairs: list[tuple[list[int], list[int]]], pad: int,
                bf16: bool = False) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy over the title tokens, their count) for one batch; the loss itself in fp32."""
    ids, mask, pos, labels = _batch(pairs, pad)
    tl = labels.shape[1]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=tl + 1)
    logits = out.logits[:, :-1].float()  # (B, T, V): position k predicts token k + 1
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    return loss, int((labels != -100).sum())


def _pad_id(tok) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


@torch.no_grad()
def validation_loss(model, tok, data: list[TitleExample], cfg: LoraConfig) -> float:
    """Mean cross-entropy per title token of ``data`` (the model's train/eval mode is restored)."""
    if not data:
        raise ValueError("no validation examples")
    was_training = model.training
    model.eval()
    pairs = [_encode_pair(tok, ex, cfg) for ex in data]
    total, count = 0.0, 0
    for b in range(0, len(pairs), cfg.batch_size):
        loss, n = _title_loss(model, pairs[b:b + cfg.batch_size], _pad_id(tok), cfg.bf16)
        total, count = total + float(loss), count + n
    model.train(was_training)
    return total / count


def train_lora(model, tok, data: list[TitleExample], cfg: LoraConfig, progress: bool = True,
               valid: list[TitleExample] = ()) -> tuple[object, dict]:
    """Wrap ``model`` with a fresh LoRA adapter and fit it on ``data``; returns (peft model, info).

    With ``valid`` examples: validation loss after every epoch, stop after ``cfg.patience`` epochs
    without improvement, and restore the best epoch's adapter weights (``info["valid_losses"]``).
    """
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
    losses, valid_losses, best, best_state, stale = [], [], math.inf, None, 0
    start = time.perf_counter()
    peft_model.train()
    bar = tqdm(total=steps, desc="LoRA", unit="batch", disable=not progress)
    for _ in range(cfg.epochs):
        for batch in _length_buckets(pairs, cfg.batch_size, rng):
            loss, n = _title_loss(peft_model, [pairs[i] for i in batch], _pad_id(tok), cfg.bf16)
            loss = loss / max(n, 1)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
        if valid:
            valid_losses.append(validation_loss(peft_model, tok, list(valid), cfg))
            if valid_losses[-1] < best:
                best, stale = valid_losses[-1], 0
                best_state = {k: v.detach().clone() for k, v in peft_model.named_parameters() if v.requires_grad}
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    bar.close()
    if best_state is not None:
        for k, v in peft_model.named_parameters():
            if k in best_state:
                v.data.copy_(best_state[k])
    peft_model.eval()
    k = max(1, len(losses) // 10)
    info = {"examples": len(data), "epochs": cfg.epochs, "batches": len(losses),
            "seconds": round(time.perf_counter() - start, 1), "loss_first": float(np.mean(losses[:k])),
            "loss_last": float(np.mean(losses[-k:])), "lora": asdict(cfg)}
    if valid:
        info.update({"valid_examples": len(valid), "valid_losses": valid_losses, "epochs_run": len(valid_losses),
                     "best_epoch": int(np.argmin(valid_losses)) + 1})
    return peft_model, info


def save_adapter(peft_model, folder: Path | str, backbone: str, info: dict) -> Path:
    """adapter_model.safetensors + adapter_config.json + title_lm.json, written to a temp folder and renamed."""
    import shutil
    import tempfile

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        peft_model.save_pretrained(tmp, safe_serialization=True)
        (tmp / ADAPTER_META).write_text(json.dumps({"backbone": backbone, **info}, indent=2, default=str) + "\n")
        replace_dir(tmp, folder)  # the old adapter is swapped out whole, and put back if the swap fails
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def adapter_backbone(folder: Path | str) -> str:
    meta = Path(folder) / ADAPTER_META
    if not meta.exists():
        raise FileNotFoundError(f"{meta} missing: {folder} is not an adapter written by `genads creative train`")
    return json.loads(meta.read_text())["backbone"]


