"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence.

Three training losses: ``bce`` is the paper's (one sampled negative per position, binary
cross-entropy), which is what the published Beauty figures used; ``ce`` is full softmax
cross-entropy over the catalogue; ``ss`` is sampled softmax (the positive against ``n_negatives``
items drawn per position, uniformly or by popularity with the logQ correction), the loss of the
strongest published SASRec on Amazon Beauty (SASRec+SS in the eSASRec benchmark). Two networks:
``block="pre-ln"`` (torch's pre-LN encoder layer) and ``block="original"`` (the SASRec block as the eSASRec
benchmark runs it, ``sasrec_original.py``); the ``esasrec`` presets are that benchmark's recipe. Evaluation is
always full ranking over every item.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from genads.baselines.sasrec_original import OriginalSASRecNet
from genads.data.split import SequenceSplit, left_pad
from genads.eval.harness import evaluate
from genads.eval.metrics import topk_from_scores
from genads.slate.checkpoint import Progress
from genads.training import EarlyStopping


@dataclass(frozen=True)
class SASRecConfig:
    """Model and training settings (defaults: the paper's Beauty setting)."""

    max_len: int = 50
    """Positions attended to; longer histories keep their last max_len items."""
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 1
    dropout: float = 0.5
    loss: Literal["bce", "ce", "ss"] = "bce"
    """'bce': one sampled negative per position (paper); 'ce': full softmax over all items;
    'ss': sampled softmax against ``n_negatives`` items per position."""
    n_negatives: int = 256
    """Negatives per position for loss='ss'."""
    negatives: Literal["uniform", "popularity"] = "uniform"
    """How 'ss' draws negatives: uniformly, or by training frequency (then logQ-corrected)."""
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 200
    eval_every: int = 5
    """Validate every this many epochs (early stopping on validation ``stop_metric``)."""
    patience: int = 5
    """Stop after this many validations without improvement; the best weights are restored."""
    stop_metric: Literal["ndcg@10", "recall@10"] = "ndcg@10"
    """Validation metric that early stopping follows (under the protocol ``exclude_history`` names)."""
    exclude_history: bool = False
    """Early stopping follows the protocol with the history ruled out (the harness's ``exclude_history``);
    ``recommend`` itself ranks every item, and evaluation reports both protocols."""
    block: Literal["pre-ln", "original"] = "pre-ln"
    """'pre-ln': torch's pre-LN encoder layer (GELU, sqrt(d)-scaled embeddings); 'original': the SASRec block as
    the eSASRec benchmark runs it (LN on queries only, d -> d ReLU feed-forward, no scaling, Xavier-normal init,
    dropout on the tied item table; see sasrec_original.py)."""
    attend_padding: bool = True
    """block='original' only: real positions attend to the padding keys of a sequence padded to max_len, as in
    RecTools (False: padding keys are masked)."""
    reject_positive: bool = True
    """loss='ss': mask a sampled negative that equals the positive (False: keep it, as RecTools does)."""
    batching: Literal["length", "random"] = "length"
    """'length': shuffled batches of users of similar history length (little compute goes into padding);
    'random': users shuffled every epoch and cut into batches, each padded to its longest row (RecTools'
    DataLoader), the loss the mean over the batch's valid positions."""
    uniform_positions: bool = False
    """batching='length' only: weigh every training position the same, as random batches do on average: a batch's
    loss is its positions' sum over the mean number of positions per batch, not their mean (with a per-batch mean,
    the positions of short-history batches would weigh up to ~25x more)."""
    time_budget_s: float = 0.0
    """Stop at the first validation after this many seconds of training (0 = no limit); best weights kept."""
    cpu_budget_s: float = 0.0
    """Stop at the first validation after this many CPU seconds of this process's training (0 = no limit): unlike
    ``time_budget_s``, a paused (SIGSTOP) or starved run does not spend it."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.loss not in ("bce", "ce", "ss"):
            raise ValueError(f"loss={self.loss!r} must be 'bce', 'ce' or 'ss'")
        if self.block not in ("pre-ln", "original"):
            raise ValueError(f"block={self.block!r} must be 'pre-ln' or 'original'")
        if self.stop_metric not in ("ndcg@10", "recall@10"):
            raise ValueError(f"stop_metric={self.stop_metric!r} must be 'ndcg@10' or 'recall@10'")
        if self.batching not in ("length", "random"):
            raise ValueError(f"batching={self.batching!r} must be 'length' or 'random'")
        if self.uniform_positions and self.batching != "length":
            raise ValueError("uniform_positions weighs length-bucketed batches; random batches need no weights")
        if self.negatives not in ("uniform", "popularity"):
            raise ValueError(f"negatives={self.negatives!r} must be 'uniform' or 'popularity'")
        for name in ("max_len", "d_model", "n_layers", "batch_size", "epochs", "eval_every", "patience",
                     "n_negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")


PRESETS: dict[str, SASRecConfig] = {
    "tiny": SASRecConfig(max_len=10, d_model=16, n_layers=1, epochs=2, eval_every=1, batch_size=32),
    "paper": SASRecConfig(),
    "ce": SASRecConfig(loss="ce", dropout=0.5, epochs=200, patience=5),
    # SASRec+SS as in the eSASRec benchmark (Beauty): tiny, sampled softmax with 256 negatives.
    "ss": SASRecConfig(loss="ss", n_layers=1, n_heads=1, dropout=0.2, n_negatives=256, epochs=200, eval_every=1,
                       patience=10),
}
# The eSASRec benchmark's SASRec+SS (blondered/transformer_benchmark, configs/paper/loo/s3_vanilla.yaml, RecTools
# 0.13.0): the original block, 256 uniform negatives per position (positives not rejected, no logQ), Adam 1e-3
# with betas (0.9, 0.98), batch 128, up to 200 epochs with patience 50 on validation R@10 with the history
# ruled out. The executed config has 256 dimensions; its README table says 64 ("esasrec-64"). Batches as RecTools'
# DataLoader makes them (users shuffled, loss the mean over a batch's valid positions). Length-bucketed batches with
# every position weighted as in a random batch learned a little more slowly over epochs 1-4 and the same from
# epoch 5 (benchmarks/results/beauty_baselines_esasrec_diag_random.json).
PRESETS["esasrec"] = SASRecConfig(max_len=50, d_model=256, n_layers=1, n_heads=1, dropout=0.2, loss="ss",
                                  n_negatives=256, negatives="uniform", reject_positive=False, lr=1e-3,
                                  batch_size=128, epochs=200, eval_every=1, patience=50, stop_metric="recall@10",
                                  exclude_history=True, block="original", batching="random")
PRESETS["esasrec-64"] = replace(PRESETS["esasrec"], d_model=64)


def attention_mask(seq: Tensor, n_heads: int) -> Tensor:
    """(B*H, L, L) bool, True = blocked: causal, and real positions never attend to padding.

    A padding position attends only to itself (so no row is fully blocked and no NaN appears);
    its output is zeroed afterwards. Without the padding block, a user's scores would depend on
    how much padding the batch adds, i.e. on which other users share the batch.
    """
    L = seq.shape[1]
    causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=seq.device), diagonal=1)  # (L, L)
    pad_key = (seq == 0).unsqueeze(1)  # (B, 1, L)
    eye = torch.eye(L, dtype=torch.bool, device=seq.device)
    blocked = (causal | pad_key) & ~eye  # (B, L, L)
    return blocked.repeat_interleave(n_heads, dim=0)  # (B*H, L, L)


class SASRecNet(nn.Module):
    """Item + position embeddings -> pre-LN causal transformer -> hidden state per position."""

    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item = nn.Embedding(n_items + 1, cfg.d_model, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, dim_feedforward=cfg.d_model, dropout=cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        nn.init.normal_(self.item.weight, std=cfg.d_model**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: Tensor) -> Tensor:
        """seq (B, L) left-padded item indices -> hidden states (B, L, D)."""
        L = seq.shape[1]
        positions = torch.arange(self.cfg.max_len - L, self.cfg.max_len, device=seq.device)  # right-aligned
        x = self.item(seq) * math.sqrt(self.cfg.d_model) + self.pos(positions)  # (B, L, D)
        x = self.drop(x) * (seq > 0).unsqueeze(-1)
        x = self.blocks(x, mask=attention_mask(seq, self.cfg.n_heads))
        return self.norm(x) * (seq > 0).unsqueeze(-1)

    def scores(self, seq: Tensor) -> Tensor:
        """Scores of every item for the next position: (B, N+1)."""
        return self.forward(seq)[:, -1] @ self.item.weight.T

    def table(self) -> Tensor:
        """The item table (N+1, D), tied to the output."""
        return self.item.weight

    def encode(self, seq: Tensor, table: Tensor) -> Tensor:
        """seq (B, L) -> hidden states (B, L, D); this network reads its own table."""
        return self.forward(seq)


NETS: dict[str, type[nn.Module]] = {"pre-ln": SASRecNet, "original": OriginalSASRecNet}


def training_pairs(split: SequenceSplit, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), both (n_users, max_len) left-padded: target[t] is the item after input[t]."""
    seqs = [s[-(max_len + 1):] for s in split.train if len(s) >= 2]
    return left_pad([s[:-1] for s in seqs], max_len), left_pad([s[1:] for s in seqs], max_len)


def length_batches(lengths: Tensor, batch_size: int, gen: torch.Generator) -> list[Tensor]:
    """Shuffled batches of rows with similar lengths (so little time goes into padding)."""
    noisy = lengths.float() + torch.rand(len(lengths), generator=gen)  # shuffle within equal lengths
    batches = list(torch.argsort(noisy).split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def epoch_batches(lengths: Tensor, cfg: SASRecConfig, gen: torch.Generator) -> list[Tensor]:
    """One epoch's batches of row indices, every row once: length-bucketed, or (``cfg.batching == "random"``) a
    fresh shuffle cut into consecutive batches, as RecTools' DataLoader(shuffle=True) makes them."""
    if cfg.batching == "random":
        return list(torch.randperm(len(lengths), generator=gen).split(cfg.batch_size))
    return length_batches(lengths, cfg.batch_size, gen)


def trim(x: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
    """Drop leading all-padding columns of left-padded (B, L) tensors."""
    width = int((x > 0).sum(1).max().clamp(min=1))
    return tuple(t[:, -width:] for t in (x, *others))


def item_log_q(targets: Tensor, n_items: int) -> Tensor:
    """log of each item's sampling probability (N+1,), by its count among the training targets (+1 smoothing)."""
    counts = torch.bincount(targets.flatten(), minlength=n_items + 1).double()[: n_items + 1] + 1.0
    counts[0] = 0.0
    return (counts / counts.sum()).log().float()


def draw_negatives(m: int, n: int, n_items: int, gen: torch.Generator, log_q: Tensor | None = None) -> Tensor:
    """(m, n) negatives, every entry drawn independently: each of the m (sequence, position) rows gets its own n,
    uniformly over items 1..n_items or with probability exp(log_q) (padding never drawn)."""
    if log_q is None:
        return torch.randint(1, n_items + 1, (m, n), generator=gen)
    return torch.multinomial(log_q.exp(), m * n, replacement=True, generator=gen).view(m, n)


class SampledLogits(torch.autograd.Function):
    """``logits[m, j] = h[m] . table[neg[m, j]]`` without materialising the (M, n, D) gathered negatives.

    The forward scores each row against the whole table in row chunks and gathers the sampled columns (a dense
    matmul is far faster on a CPU than gathering M x n rows of D floats; ``torch.sparse.sampled_addmm`` is faster
    still but fails on rows that repeat a column many times); the backward multiplies by the sparse (M, N+1) matrix
    of the logits' gradients, in which a negative drawn twice in a row simply adds up. Equal, value and gradient,
    to ``torch.einsum("md,mnd->mn", h, table[neg])`` (tests/baselines/test_esasrec.py).
    """

    @staticmethod
    def forward(ctx, h: Tensor, table: Tensor, neg: Tensor) -> Tensor:
        ctx.save_for_backward(h, table, neg)
        rows = max(1, (1 << 24) // table.shape[0])  # chunks of at most 16M scores
        return torch.cat([(h[i:i + rows] @ table.T).gather(1, neg[i:i + rows]) for i in range(0, len(h), rows)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        h, table, neg = ctx.saved_tensors
        g = _csr(neg, grad.flatten().contiguous(), table.shape[0])  # (M, N+1)
        g_t = g.to_sparse_coo().t().coalesce().to_sparse_csr()  # (N+1, M)
        return g @ table, g_t @ h, None


def _csr(neg: Tensor, values: Tensor, n_cols: int) -> Tensor:
    """(M, n_cols) sparse CSR with ``values`` at row m, columns ``neg[m]`` (repeats allowed, in that order)."""
    M, n = neg.shape
    crow = torch.arange(0, M * n + 1, n, device=neg.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": used here only for these products
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, neg.flatten(), values, (M, n_cols))


def sampled_softmax(h: Tensor, pos: Tensor, table: Tensor, n_negatives: int, gen: torch.Generator,
                    log_q: Tensor | None = None, reject_positive: bool = True) -> Tensor:
    """Sampled softmax: each row of ``h`` (M, D) against its positive and ``n_negatives`` own negatives.

    ``table`` (N+1, D) are the item vectors (row 0 padding, never drawn). Negatives are uniform over the
    items, or drawn with probability exp(log_q) and then logQ-corrected (logit - log q, Yi et al. 2019) so
    the loss estimates the full softmax. A negative that equals the positive is masked out when
    ``reject_positive`` (RecTools keeps it). Every row draws its own negatives, so the cost is that of the M valid
    positions only, never of the padding.
    """
    neg = draw_negatives(len(pos), n_negatives, table.shape[0] - 1, gen, log_q)  # (M, n)
    pos_logit = (h * table[pos]).sum(-1, keepdim=True)  # (M, 1)
    neg_logit = SampledLogits.apply(h, table, neg)  # (M, n)
    if log_q is not None:
        pos_logit = pos_logit - log_q[pos].unsqueeze(1)
        neg_logit = neg_logit - log_q[neg]
    if reject_positive:
        neg_logit = neg_logit.masked_fill(neg == pos.unsqueeze(1), float("-inf"))
    logits = torch.cat([pos_logit, neg_logit], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))


class SASRec:
    """SASRec in the genads harness (fit on split.train, early stopping on split.valid)."""

    name = "sasrec"

    def __init__(self, config: SASRecConfig | None = None) -> None:
        self.config = config or SASRecConfig()
        self.net: nn.Module | None = None
        self._log_q: Tensor | None = None

    def _loss(self, net: nn.Module, x: Tensor, y: Tensor, gen: torch.Generator, n_items: int) -> Tensor:
        table = net.table()  # (N+1, D): one draw of its dropout per batch, for inputs and outputs alike
        h = net.encode(x, table)  # (B, L, D)
        mask = y > 0
        h, pos = h[mask], y[mask]  # (M, D), (M,): the valid positions only
        if self.config.loss == "ce":
            return F.cross_entropy(h @ table[1:].T, pos - 1)
        if self.config.loss == "ss":
            return sampled_softmax(h, pos, table, self.config.n_negatives, gen, self._log_q,
                                   self.config.reject_positive)
        neg = torch.randint(1, n_items + 1, pos.shape, generator=gen)
        pos_logit = (h * table[pos]).sum(-1)
        neg_logit = (h * table[neg]).sum(-1)
        return F.binary_cross_entropy_with_logits(torch.cat([pos_logit, neg_logit]),
                                                  torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)]))

    def fit(self, split: SequenceSplit, *, seed: int = 0, progress: bool = True,
            on_epoch: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[dict]:
        """Train on ``split.train``; validate every ``eval_every`` epochs on ``split.valid`` (Recall and NDCG@10
        under the ``exclude_history`` protocol), stop after ``patience`` validations without a better
        ``stop_metric``, restore the best weights. ``on_epoch`` gets each epoch's log row as it is made (a
        benchmark can save a run's curve before it ends); ``should_stop``, asked after each validation, ends the
        run there when it says so (the row records ``stopped_on_request``). Returns the rows."""
        cfg = self.config
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.net = net = NETS[cfg.block](split.n_items, cfg)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
        inputs, targets = (torch.from_numpy(a) for a in training_pairs(split, cfg.max_len))
        lengths = (inputs > 0).sum(1)
        per_batch = float((targets > 0).sum()) / math.ceil(len(targets) / cfg.batch_size)  # mean positions per batch
        self._log_q = item_log_q(targets, split.n_items) if cfg.negatives == "popularity" else None
        log: list[dict] = []
        record, stopper = Progress(), EarlyStopping(cfg.patience)
        started, cpu_started = time.perf_counter(), time.process_time()
        bar = tqdm(range(1, cfg.epochs + 1), desc=f"sasrec[{cfg.loss}]", disable=not progress)
        for epoch in bar:
            net.train()
            start, total, batches = time.perf_counter(), 0.0, 0
            for idx in epoch_batches(lengths, cfg, gen):
                loss = self._loss(net, *trim(inputs[idx], targets[idx]), gen, split.n_items)  # mean over positions
                weight = float((targets[idx] > 0).sum()) / per_batch if cfg.uniform_positions else 1.0
                opt.zero_grad()
                (loss * weight).backward()
                opt.step()
                total, batches = total + loss.item(), batches + 1
            row = {"epoch": epoch, "loss": total / max(batches, 1), "seconds": time.perf_counter() - start}
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                valid = evaluate(self, split.valid, ks=(10,), exclude_history=cfg.exclude_history)
                row |= {"valid_ndcg@10": valid["ndcg@10"], "valid_recall@10": valid["recall@10"]}
                if stopper.update(record, row[f"valid_{cfg.stop_metric}"], net):
                    row["best"] = True
                bar.set_postfix(loss=f"{row['loss']:.4f}", r10=f"{valid['recall@10']:.4f}",
                                ndcg10=f"{valid['ndcg@10']:.4f}")
            if "valid_ndcg@10" in row and (
                    (cfg.time_budget_s and time.perf_counter() - started > cfg.time_budget_s)
                    or (cfg.cpu_budget_s and time.process_time() - cpu_started > cfg.cpu_budget_s)):
                row["stopped_by_time_budget"] = True
            if "valid_ndcg@10" in row and should_stop is not None and should_stop():
                row["stopped_on_request"] = True
            log.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if record.stale >= cfg.patience or row.get("stopped_by_time_budget") or row.get("stopped_on_request"):
                break
        stopper.restore(net)
        return log

    @torch.no_grad()
    def recommend(self, history: np.ndarray, k: int) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("SASRec.recommend called before fit")
        self.net.eval()
        seq = torch.from_numpy(left_pad(list(history), self.config.max_len))
        (seq,) = trim(seq)
        return topk_from_scores(self.net.scores(seq), k).numpy()

    def describe(self) -> dict:
        return {"model": self.name, **asdict(self.config)}
