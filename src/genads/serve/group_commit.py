"""Group commit: the events that arrive while the ledger commits are written together in its next transaction.

An event's transaction is short (a few indexed reads and writes) but its commit is not: SQLite fsyncs the WAL
(``synchronous=FULL``), PostgreSQL flushes its log, and every transaction pays a Python round trip through the
driver. :class:`GroupWriter` runs one thread that takes every event queued so far (at most ``max_group``) and hands
them to its ``write`` function in one call (the app's: :meth:`genads.serve.ledger.SQLLedger.record_events`, one
transaction with a savepoint per event, then what follows each event: metrics, the served log, refunds).
Nothing waits on purpose: a lone event is written at once, and a group forms only while the previous one is
being written, so the group size follows the load.

Submitting is non-blocking and answers an asyncio future of the caller's loop; a group's answers reach each loop
in one ``call_soon_threadsafe``. Handlers on the event loop thus never block on the ledger, and no thread-pool
hand-off is paid per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupWriter(Generic[T, R]):
    """One writer thread; ``write(items)`` returns one outcome per item (a value, or the exception that item
    answers with); an exception raised by ``write`` itself answers every item of the group."""

    def __init__(self, write: Callable[[list[T]], Sequence[R | BaseException]], max_group: int = 64,
                 name: str = "genads-group-commit") -> None:
        if max_group < 1:
            raise ValueError(f"max_group={max_group} must be >= 1")
        self.write, self.max_group, self.name = write, max_group, name
        self._queue: deque[tuple[T, asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.groups = 0
        """Groups written so far (tests and the profile read it)."""
        self.items = 0

    def submit(self, item: T) -> asyncio.Future:
        """Queue ``item`` (on an event loop); the future gets its outcome."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with self._ready:
            if self._thread is None:  # the first event, or the first since close(): (re)start the thread
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._queue.append((item, loop, done))
            self._ready.notify()
        return done

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread (a later submit starts it again: an app's lifespan may be
        entered more than once)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._ready:
            self._closed = False

    def _take(self) -> list[tuple[T, asyncio.AbstractEventLoop, asyncio.Future]] | None:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if not self._queue:  # closing and nothing left: this thread ends
                self._thread = None
                return None
            n = min(len(self._queue), self.max_group)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while (group := self._take()) is not None:
            try:
                outcomes: Sequence[R | BaseException] | BaseException = self.write([item for item, _, _ in group])
                if len(outcomes) != len(group):
                    raise RuntimeError(f"write gave {len(outcomes)} outcomes for {len(group)} items")
            except BaseException as err:  # the database failed: every item of the group answers with it
                outcomes = err
            self.groups += 1
            self.items += len(group)
            loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, object]]] = {}
            for i, (_, loop, done) in enumerate(group):
                outcome = outcomes if isinstance(outcomes, BaseException) else outcomes[i]
                loops.setdefault(loop, []).append((done, outcome))
            for loop, answers in loops.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these answers any more
                    loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[asyncio.Future, object]]) -> None:
    """On the event loop: each waiting handler gets its outcome (unless its client went away)."""
    for done, outcome in answers:
        if done.done():
            continue
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
