"""The non-neural title baseline: select and order selling points under an n-gram style model.

A title may use only selling-point words, so what a generator decides is *which* selling points
to say and *in which order*. Both decisions are scored on "projected" titles: a title reduced to
the words it shares with the current product's selling points, in order (``project``).

* Background models, fitted on a corpus of (selling points, reference copy): a bigram LM over the
  projected references (general order) and, per word, how often it is said when offered.
* The user's model adapts them to the projected history titles (MAP adaptation, as for language
  models): a bigram LM whose prior is the background LM with strength ``kappa``, and inclusion
  probability (kappa * background rate + hits) / (kappa + hits). History titles are about other
  products, so a word they do not say is no evidence against saying it: they only add positive
  evidence. Without a corpus the background is uniform (order) and 1/2 (inclusion).

Selection keeps the selling points whose mean inclusion probability reaches ``threshold``
(at least ``min_units``, within ``max_words``); beam search then orders them by the user's LM,
each step renormalised over the units still available. A word already said is dropped from
later units, so no selling point repeats.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass

from genads.creative.text import selling_point_vocab, tokenize

BOS, EOS = "<s>", "</s>"


def project(words: list[str], vocab: set[str], dedupe: bool = True) -> list[str]:
    """Keep the words of ``words`` that are in ``vocab``, in order (first occurrence only if ``dedupe``)."""
    out: list[str] = []
    for w in words:
        if w in vocab and not (dedupe and w in out):
            out.append(w)
    return out


class BigramLM:
    """Bigram LM with Dirichlet smoothing: p(w | v) = (c(v w) + alpha * prior(w | v)) / (c(v) + alpha).

    ``prior`` is another BigramLM (adaptation of a background model) or, when None, the add-one
    unigram of these sequences.
    """

    def __init__(self, sequences: list[list[str]], alpha: float = 2.0, prior: BigramLM | None = None) -> None:
        self.alpha, self.prior = alpha, prior
        self.uni: Counter = Counter()
        self.bi: Counter = Counter()
        self.ctx: Counter = Counter()
        for seq in sequences:
            toks = [BOS, *seq, EOS]
            self.uni.update(toks[1:])
            self.ctx.update(toks[:-1])
            self.bi.update(itertools.pairwise(toks))
        self.total = sum(self.uni.values())

    def prob(self, prev: str, word: str) -> float:
        if self.prior is not None:
            p0 = self.prior.prob(prev, word)
        else:
            p0 = (self.uni[word] + 1) / (self.total + len(self.uni) + 1)
        return (self.bi[prev, word] + self.alpha * p0) / (self.ctx[prev] + self.alpha)

    def __len__(self) -> int:
        return sum(self.ctx.values())


@dataclass(frozen=True)
class BaselineConfig:
    max_words: int = 12
    """Length limit of a title in words."""
    beam: int = 8
    kappa: float = 4.0
    """Strength of the background models as priors for the user's (pseudo-counts)."""
    min_units: int = 1
    """At least this many selling points in a title."""
    threshold: float = 0.5
    """A selling point is said when its inclusion probability reaches this."""

    def __post_init__(self) -> None:
        for name in ("max_words", "beam", "min_units"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.kappa <= 0:
            raise ValueError(f"kappa={self.kappa} must be > 0")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold={self.threshold} must be in (0, 1]")


def selling_point_units(selling_points: list[str]) -> list[list[str]]:
    """Word lists of the selling points; a word said by an earlier unit is dropped from later ones."""
    seen: set[str] = set()
    units = []
    for sp in selling_points:
        words = [w for w in dict.fromkeys(tokenize(sp)) if w not in seen]
        seen.update(words)
        if words:
            units.append(words)
    return units


class NgramTitleGenerator:
    """Selects (unigram inclusion model) and orders (bigram model) selling points; see the module docstring."""

    def __init__(self, config: BaselineConfig | None = None, background: BigramLM | None = None,
                 inclusion: dict[str, tuple[int, int]] | None = None) -> None:
        self.config = config or BaselineConfig()
        self.background = background
        self.inclusion = inclusion or {}
        """word -> (times said in the reference, times offered as a selling-point word)."""

    @classmethod
    def fit(cls, selling_points: list[list[str]], references: list[str],
            config: BaselineConfig | None = None) -> NgramTitleGenerator:
        """Fit the background models on (selling points, reference copy) pairs."""
        seqs, said, offered = [], Counter(), Counter()
        for sps, ref in zip(selling_points, references, strict=True):
            vocab = selling_point_vocab(list(sps))
            seq = project(tokenize(ref), vocab)
            seqs.append(seq)
            offered.update(vocab)
            said.update(seq)
        inclusion = {w: (said[w], offered[w]) for w in offered}
        return cls(config, BigramLM([s for s in seqs if s]), inclusion)

    def include_prob(self, word: str, projected_history: list[list[str]]) -> float:
        """P(word is said): background rate (add-one) as a prior, updated by the user's titles."""
        s, o = self.inclusion.get(word, (0, 0))
        prior = (s + 1) / (o + 2)
        hits = sum(word in h for h in projected_history)
        misses = sum(coverage for h, coverage in zip(projected_history, self._coverage, strict=True) if word not in h)
        return (hits + self.config.kappa * prior) / (hits + misses + self.config.kappa)

    def select(self, units: list[list[str]], projected_history: list[list[str]]) -> list[int]:
        """Indices of the units to say, in their given order, within the length limit."""
        cfg = self.config
        probs = [sum(self.include_prob(w, projected_history) for w in u) / len(u) for u in units]
        order = sorted(range(len(units)), key=lambda i: -probs[i])
        chosen, n_words = [], 0
        for rank, i in enumerate(order):
            if probs[i] < cfg.threshold and rank >= cfg.min_units:
                break
            if n_words + len(units[i]) <= cfg.max_words:
                chosen.append(i)
                n_words += len(units[i])
        return sorted(chosen)

    @staticmethod
    def _logp(prev: str, word: str, options: list[str], user: BigramLM) -> float:
        """log p(word | prev) under the user's LM, renormalised over ``options``."""
        return math.log(user.prob(prev, word) / sum(user.prob(prev, w) for w in options))

    def order(self, units: list[list[str]], user: BigramLM) -> list[int]:
        """Beam search for the most probable order of all ``units`` (ties keep the given order)."""
        if not units:
            return []
        beams: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
        for _ in range(len(units)):
            grown = []
            for score, used in beams:
                prev = units[used[-1]][-1] if used else BOS
                rest = [i for i in range(len(units)) if i not in used]
                firsts = [units[i][0] for i in rest]
                for i in rest:
                    s = score + self._logp(prev, units[i][0], firsts, user)
                    s += sum(math.log(user.prob(a, b)) for a, b in itertools.pairwise(units[i]))
                    grown.append((s, (*used, i)))
            beams = sorted(grown, key=lambda b: -b[0])[:self.config.beam]
        ends = [(s + math.log(user.prob(units[u[-1]][-1], EOS)), u) for s, u in beams]
        return list(max(ends, key=lambda b: b[0])[1])

    def __call__(self, selling_points: list[str], description: str = "", history_titles: list[str] = ()) -> list[str]:
        """Title words for one product, conditioned on the user's (sampled) clicked-ad titles."""
        units = [u[:self.config.max_words] for u in selling_point_units(list(selling_points))]
        vocab = {w for u in units for w in u}
        projected = [s for s in (project(tokenize(t), vocab) for t in history_titles) if s]
        user = BigramLM(projected, alpha=self.config.kappa, prior=self.background)
        self._coverage = [len(h) / len(vocab) for h in projected]
        chosen = [units[i] for i in self.select(units, projected)]
        return [w for i in self.order(chosen, user) for w in chosen[i]]
