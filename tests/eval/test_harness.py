"""The harness passes user ids to a model with a user token, and only to such a model."""

import numpy as np

from genads.data.split import EvalSet
from genads.eval.harness import drop_unseen_targets, evaluate, evaluate_protocols, rank_all, rule_out_history


class ByUser:
    """Recommends item (user % 5) + 1 first: right only when it sees the user ids."""

    name = "by-user"
    uses_users = True

    def recommend(self, history: np.ndarray, k: int, users: np.ndarray | None = None) -> np.ndarray:
        if users is None:
            return np.tile(np.arange(1, k + 1), (len(history), 1))
        first = users % 5 + 1
        rest = np.tile(np.arange(6, 6 + k - 1), (len(history), 1))
        return np.column_stack([first, rest])


class HistoryOnly:
    """The plain protocol: recommend(history, k), no users argument at all."""

    name = "history-only"

    def recommend(self, history: np.ndarray, k: int) -> np.ndarray:
        return np.tile(np.arange(1, k + 1), (len(history), 1))


def eval_set(n: int = 7) -> EvalSet:
    users = np.arange(10, 10 + n)
    return EvalSet(users, np.ones((n, 3), dtype=np.int64), users % 5 + 1)


def test_a_model_with_a_user_token_gets_each_cases_user():
    cases = eval_set()
    ranked = rank_all(ByUser(), cases, 3, batch_size=2)  # batches of 2: users stay aligned with their rows
    assert ranked[:, 0].tolist() == (cases.users % 5 + 1).tolist()
    assert evaluate(ByUser(), cases, ks=(1,))["recall@1"] == 1.0


def test_a_model_without_one_is_called_as_before():
    cases = eval_set()
    assert rank_all(HistoryOnly(), cases, 3).shape == (len(cases), 3)


class ByScores:
    """Ranks every item by random scores seeded by the history (a stand-in for any score-based model)."""

    name = "by-scores"
    n_items = 30

    def score(self, history: np.ndarray) -> np.ndarray:
        """(N+1,) scores for one history row; column 0 = padding."""
        return np.random.default_rng(list(history.tolist())).random(self.n_items + 1)

    def recommend(self, history: np.ndarray, k: int) -> np.ndarray:
        order = [np.argsort(-self.score(h), kind="stable") for h in history]
        return np.stack([o[o > 0][:k] for o in order])


def _random_cases(seed: int, n: int = 40, n_items: int = 30, width: int = 12) -> EvalSet:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, width + 1, n)
    history = np.zeros((n, width), dtype=np.int64)
    for i, length in enumerate(lengths):
        history[i, width - length:] = rng.integers(1, n_items + 1, length)  # repeats allowed, as in real logs
    return EvalSet(np.arange(n), history, rng.integers(1, n_items + 1, n))


def test_history_exclusion_never_returns_a_history_item_and_equals_a_naive_masked_ranking():
    for seed in range(5):
        cases, model = _random_cases(seed), ByScores()
        ranked = rank_all(model, cases, 10, batch_size=7, exclude_history=True)
        for row, history in zip(ranked, cases.history, strict=True):
            assert not set(row.tolist()) & set(history.tolist())  # never a history item (nor padding)
            masked = model.score(history)
            masked[0] = -np.inf
            masked[history] = -np.inf  # the naive way: mask the history's scores, then take the top 10
            assert row.tolist() == np.argsort(-masked, kind="stable")[:10].tolist()


def test_nothing_ruled_out_keeps_history_items():
    cases, model = _random_cases(0), ByScores()
    ranked = rank_all(model, cases, 10)
    assert any(set(r.tolist()) & set(h.tolist()) for r, h in zip(ranked, cases.history, strict=True))


def test_rule_out_history_fills_short_rows_and_drops_empty_slots():
    ranked = np.array([[5, 3, -1, 7], [1, 2, 3, 4]])
    history = np.array([[0, 3], [1, 2]])
    assert rule_out_history(ranked, history, 3).tolist() == [[5, 7, -1], [3, 4, -1]]


def test_both_protocols_side_by_side():
    cases, model = _random_cases(1), ByScores()
    both = evaluate_protocols(model, cases, ks=(10,))
    assert set(both) == {"all", "excl"}
    assert both["excl"] == evaluate(model, cases, ks=(10,), exclude_history=True)


def test_users_whose_target_was_never_seen_are_dropped_and_counted():
    cases = EvalSet(np.arange(4), np.zeros((4, 2), dtype=np.int64), np.array([1, 9, 2, 9]))
    kept, dropped = drop_unseen_targets(cases, np.array([1, 2, 3]))
    assert dropped == 2 and kept.target.tolist() == [1, 2] and kept.users.tolist() == [0, 2]
