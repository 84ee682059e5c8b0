"""The harness passes user ids to a model with a user token, and only to such a model."""

import numpy as np

from genads.data.split import EvalSet
from genads.eval.harness import evaluate, rank_all


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
