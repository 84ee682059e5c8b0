"""Request ids without a system call each: ``uuid4()`` reads ``os.urandom`` per id, which on a loaded virtual
machine costs a GIL hand-off and tenths of a millisecond per request (measured: docs/serving_performance.md).

An id is the keyed BLAKE2b of a per-process counter under a 32-byte key read once from ``os.urandom`` (again
in every forked worker, so workers never share a sequence): 32 hex digits, unique per process and as
unpredictable to a client as ``uuid4`` (a client sees ids, never the key).
"""

from __future__ import annotations

import hashlib
import itertools
import os

_state: dict = {}


def _reseed() -> None:
    _state["key"], _state["count"] = os.urandom(32), itertools.count()


def new_id() -> str:
    """32 lowercase hex digits, unique within this process and unpredictable from earlier ones."""
    n = next(_state["count"])  # atomic under the GIL: threads never get the same number
    return hashlib.blake2b(n.to_bytes(8, "little"), key=_state["key"], digest_size=16).hexdigest()


_reseed()
os.register_at_fork(after_in_child=_reseed)
