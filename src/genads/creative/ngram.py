"""The non-neural title baseline: select and order selling points under an n-gram style model.

A title may use only selling-point words, so what a generator decides is *which* selling points
to say and *in which order*. The style model is a bigram language model over "projected" titles:
a clicked ad's title reduced to the words it shares with the current product's selling points,
in order (``project``). Two such models are mixed:

* the user model, fitted on the projected history titles (the user's own style), and
* a background model, fitted on projected reference copy of a training corpus (general style);
  uniform when there is no corpus.

The user model's weight grows with the evidence, mu = h / (h + kappa) for h non-empty projected
history titles. Beam search over selling-point units (each used at most once, words already said
are dropped from later units) maximises the sum of log-probabilities, each step renormalised over
the units still available. Which units to say is decided first, by a unigram inclusion model
(how often a selling-point word offered in the corpus is said in the copy, updated by how often
the user's projected history titles say it), under a length limit in words.
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
    """Bigram LM with Dirichlet smoothing towards an add-one unigram: p(w | v) = (c(v w) + a p(w)) / (c(v) + a)."""

    def __init__(self, sequences: list[list[str]], alpha: float = 2.0) -> None:
        self.alpha = alpha
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
        p_uni = (self.uni[word] + 1) / (self.total + len(self.uni) + 1)
        return (self.bi[prev, word] + self.alpha * p_uni) / (self.ctx[prev] + self.alpha)

    def __len__(self) -> int:
        return sum(self.ctx.values())


@dataclass(frozen=True)
class BaselineConfig:
    max_words: int = 12
    """Length limit of a title in words."""
    beam: int = 8
    kappa: float = 2.0
    """Prior strength of the background model against the user's history (mu = h / (h + kappa))."""
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
        return (hits + self.config.kappa * prior) / (len(projected_history) + self.config.kappa)

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

    def _logp(self, prev: str, word: str, options: list[str], user: BigramLM, mu: float) -> float:
        """log p(word | prev) under the mixture, renormalised over ``options``."""
        def mix(w: str) -> float:
            bg = self.background.prob(prev, w) if self.background is not None else 1.0
            return mu * user.prob(prev, w) + (1 - mu) * bg

        return math.log(mix(word) / sum(mix(w) for w in options))

    def order(self, units: list[list[str]], user: BigramLM, mu: float) -> list[int]:
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
                    s = score + self._logp(prev, units[i][0], firsts, user, mu)
                    s += sum(self._logp(a, b, [b], user, mu) for a, b in itertools.pairwise(units[i]))
                    grown.append((s, (*used, i)))
            beams = sorted(grown, key=lambda b: -b[0])[:self.config.beam]
        ends = [(s + self._logp(units[u[-1]][-1], EOS, [EOS, BOS], user, mu), u) for s, u in beams]
        return list(max(ends, key=lambda b: b[0])[1])

    def __call__(self, selling_points: list[str], description: str = "", history_titles: list[str] = ()) -> list[str]:
        """Title words for one product, conditioned on the user's (sampled) clicked-ad titles."""
        units = [u[:self.config.max_words] for u in selling_point_units(list(selling_points))]
        vocab = {w for u in units for w in u}
        projected = [s for s in (project(tokenize(t), vocab) for t in history_titles) if s]
        mu = len(projected) / (len(projected) + self.config.kappa)
        chosen = [units[i] for i in self.select(units, projected)]
        return [w for i in self.order(chosen, BigramLM(projected), mu) for w in chosen[i]]
