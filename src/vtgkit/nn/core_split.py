"""Run independent pieces of an inference forward on two threads, each with one intra-op thread.

Why: at batch 1 most of a forward is a chain of mid-sized ops. Splitting every op over the cores (torch's intra-op
parallelism) pays an OpenMP barrier per op and scales poorly (R²-Tuning: 193 CPU-ms at 1 thread became 245 at 2),
and a barrier waits for a whole scheduler slice when another process holds one of the cores (measured on a busy
machine: 2 threads ran the R²-Tuning forward ~10× slower than 1). Independent pieces (e.g. the per-layer,
per-clip-range video mapping of the R² block) run instead one per thread, each thread with one intra-op thread: no
barrier inside a piece, and results equal to the single-threaded ones. Used only when the caller has exactly two
intra-op threads (the small machines it is for); with more, torch's intra-op parallelism is kept.

Thread counts per Python thread: ``torch.set_num_threads`` is process-wide (it stores the count that threads pick up
lazily on their first parallel op) and sets the calling thread's OpenMP and MKL counts; ``torch.get_num_threads``
reads the calling thread's OpenMP setting. So the per-thread limit is set directly on the OpenMP runtime torch uses
(``omp_set_num_threads`` changes only the calling thread's setting) and on MKL (``MKL_Set_Num_Threads_Local``, per
thread too), and restored afterwards; nothing process-wide changes. This needs torch's OpenMP backend with its
bundled libgomp; it is probed once and the split is not used otherwise (:func:`split_available`). The helper thread
is shared by all callers: a caller never waits for it to become free, it runs its own pieces itself when the helper
is busy with someone else's.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch


@functools.cache
def _thread_controls() -> tuple[Callable[[int], None], Callable[[int], int]] | None:
    """(set this thread's OpenMP thread count, set this thread's MKL thread count returning the previous one), or
    None when torch does not run on the bundled libgomp with MKL."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            loaded = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    gomp = [path for path in glob.glob(os.path.join(lib_dir, "libgomp*.so*")) if os.path.realpath(path) in loaded
            or path in loaded]
    cpu = os.path.join(lib_dir, "libtorch_cpu.so")
    if len(gomp) != 1 or not os.path.exists(cpu):
        return None
    try:
        omp_set = ctypes.CDLL(gomp[0]).omp_set_num_threads
        mkl_set = ctypes.CDLL(cpu).MKL_Set_Num_Threads_Local  # C interface (by value)
    except (OSError, AttributeError):
        return None
    omp_set.argtypes, omp_set.restype = [ctypes.c_int], None
    mkl_set.argtypes, mkl_set.restype = [ctypes.c_int], ctypes.c_int
    return omp_set, mkl_set


@contextlib.contextmanager
def _one_intraop_thread() -> Iterator[None]:
    """Limit the calling thread to one intra-op thread (OpenMP and MKL), restoring its settings on exit."""
    controls = _thread_controls()
    assert controls is not None
    omp_set, mkl_set = controls
    previous = torch.get_num_threads()  # also runs torch's lazy per-thread init before the setting is changed
    omp_set(1)
    previous_mkl = mkl_set(1)
    try:
        yield
    finally:
        omp_set(previous)
        mkl_set(previous_mkl)


def _probe() -> bool:
    """The controls act on the runtime torch uses: a limited thread sees one intra-op thread, others keep theirs."""
    seen: list[object] = []

    def run() -> None:
        with _one_intraop_thread():
            seen.append((torch.get_num_threads(), _mkl_threads()))
        seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen == [(1, 1), before] and torch.get_num_threads() == before


def _mkl_threads() -> int | None:
    """MKL's thread count in the calling thread, as torch reports it."""
    for line in torch.__config__.parallel_info().splitlines():
        if "mkl_get_max_threads()" in line:
            return int(line.rsplit(":", 1)[1])
    return None


_probe_lock = threading.Lock()
_probe_result: bool | None = None
_helper: ThreadPoolExecutor | None = None
_scope = threading.local()


def split_available() -> bool:
    """Whether :class:`SplitRun` may split work in the calling thread: the thread controls work, the caller has
    exactly 2 intra-op threads (or is inside :func:`split_scope`), and neither autograd nor autocast is on (the
    helper thread does not inherit them). With more threads the split (two threads) would leave cores idle, so
    torch's intra-op parallelism is kept there."""
    global _probe_result, _helper
    if torch.is_grad_enabled() or torch.is_autocast_enabled("cpu"):
        return False
    if getattr(_scope, "active", False):
        return True
    if torch.get_num_threads() != 2:
        return False
    if _probe_result is None:
        with _probe_lock:
            if _probe_result is None:
                _probe_result = _thread_controls() is not None and _probe()
                if _probe_result:
                    _helper = ThreadPoolExecutor(1, thread_name_prefix="vtgkit-split")
    return _probe_result


def in_split_scope() -> bool:
    return getattr(_scope, "active", False)


@contextlib.contextmanager
def split_scope() -> Iterator[bool]:
    """Run a whole forward in split mode when :func:`split_available`: the calling thread keeps one intra-op thread
    throughout (yields True), also between the :class:`SplitRun` blocks, where splitting small ops over the cores
    would cost more in barriers than it saves and would leave an OpenMP thread spin-waiting on the helper's core.
    Yields False (and changes nothing) when the split is not available."""
    if in_split_scope() or not split_available():
        yield False
        return
    with _one_intraop_thread():
        _scope.active = True
        try:
            yield True
        finally:
            _scope.active = False


class SplitRun:
    """Pieces of work run in order by the calling thread and one helper thread, one intra-op thread each.

    Use as a context manager; inside, :meth:`wait` for a piece (the caller runs pending pieces itself meanwhile).
    The caller's own ops inside the block also run with one intra-op thread, as the helper uses the other core.
    """

    def __init__(self, tasks: list[Callable[[], None]]) -> None:
        self._tasks = tasks
        self._next = 0
        self._lock = threading.Lock()
        self._done = [threading.Event() for _ in tasks]
        self._errors: list[BaseException] = []
        self._inference = torch.is_inference_mode_enabled()
        self._job: Future | None = None
        self._limit: contextlib.AbstractContextManager | None = None

    def _pull(self) -> bool:
        """Run the next pending piece in the calling thread; False when none is left."""
        with self._lock:
            if self._next >= len(self._tasks) or self._errors:
                return False
            index = self._next
            self._next += 1
        try:
            self._tasks[index]()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            with self._lock:
                self._errors.append(error)
        finally:
            self._done[index].set()
        return True

    def _drain(self) -> None:
        """The helper's job: pull pieces until none is left (grad mode and inference mode are per thread)."""
        with torch.inference_mode(self._inference), torch.no_grad(), _one_intraop_thread():
            while self._pull():
                pass

    def wait(self, index: int) -> None:
        """Return once piece ``index`` is done, running pending pieces meanwhile; re-raises a piece's error."""
        while not self._done[index].is_set():
            if not self._pull():
                if self._errors:  # the run stopped: piece `index` may never start
                    raise self._errors[0]
                self._done[index].wait()  # it runs in the helper
        if self._errors:
            raise self._errors[0]

    def __enter__(self) -> SplitRun:
        assert _helper is not None, "call split_available() first"
        self._job = _helper.submit(self._drain)
        self._limit = _one_intraop_thread()
        self._limit.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(exc[0] is not None)

    def finish(self, failed: bool = False) -> None:
        """End the split (idempotent): run the pieces nobody waited for (or drop them when ``failed``), wait for the
        helper and give the caller its intra-op threads back; re-raises a piece's error."""
        if self._limit is None or self._job is None:
            return
        try:
            if not failed:
                while self._pull():  # pieces nobody waited for
                    pass
            else:
                with self._lock:
                    self._next = len(self._tasks)  # stop handing out pieces
        finally:
            self._limit.__exit__(None, None, None)
            if not self._job.cancel():  # the helper is on one of our pieces (or done): it stops after it
                self._job.result()
            self._limit = self._job = None
        if not failed and self._errors:
            raise self._errors[0]


class BackgroundTasks:
    """Tasks handed over one at a time that run on the shared helper thread (one intra-op thread) while the caller
    goes on with other work, e.g. the weight-gradient halves of the token MLP's backward chunks while autograd goes
    on with the rest of the graph (vtgkit.nn.token_pool).

    When the split is available in the caller (:func:`split_available` outside grad mode, or inside
    :func:`split_scope`), the first :meth:`submit` also limits the caller to one intra-op thread (the helper has the
    other core) until :meth:`finish`; otherwise every task runs at once in the caller. :meth:`finish` runs what is
    left in the caller, waits for the helper and re-raises a task's error. Tasks store their own results, so the
    outcome does not depend on which thread ran a task.
    """

    def __init__(self) -> None:
        self._pending: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._jobs: list[Future] = []
        self._draining = False
        self._limit: contextlib.AbstractContextManager | None = None
        self._owner: int | None = None
        self._background: bool | None = None

    def _start(self) -> bool:
        """Whether tasks go to the helper (decided at the first submit, in the caller's thread)."""
        if self._background is None:
            with torch.no_grad():
                self._background = not in_split_scope() and split_available()
            if self._background:
                self._owner = threading.get_ident()
                self._limit = _one_intraop_thread()
                self._limit.__enter__()
        return self._background

    def in_background(self) -> bool:
        """Whether submitted tasks run on the helper thread (then the caller has one intra-op thread until
        :meth:`finish`)."""
        return self._start()

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on the helper thread (in order after the ones before it), or now when the split is off."""
        if not self._start():
            task()
            return
        with self._lock:
            self._pending.append(task)
            if self._draining or self._errors:
                return
            self._draining = True
        assert _helper is not None
        self._jobs.append(_helper.submit(self._drain))

    def _next(self) -> Callable[[], None] | None:
        with self._lock:
            if not self._pending or self._errors:
                return None
            return self._pending.pop(0)

    def _run(self, task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException as error:  # noqa: BLE001 - re-raised by finish()
            with self._lock:
                self._errors.append(error)

    def _drain(self) -> None:
        with torch.no_grad(), _one_intraop_thread():
            while True:
                with self._lock:
                    if not self._pending or self._errors:
                        self._draining = False  # a later submit starts a new job
                        return
                    task = self._pending.pop(0)
                self._run(task)

    def finish(self) -> None:
        """Run the remaining tasks in the caller, wait for the helper, restore the caller's intra-op threads;
        re-raises the first task error."""
        try:
            while (task := self._next()) is not None:
                self._run(task)
            for job in self._jobs:
                if not job.cancel():  # started (or done): it stops once nothing is pending
                    job.result()
            self._jobs.clear()
        finally:
            self._restore()
            self._background = None  # a later round (e.g. a second backward of a retained graph) decides again
        if self._errors:
            raise self._errors[0]

    def _restore(self) -> None:
        if self._limit is not None and threading.get_ident() == self._owner:
            limit, self._limit = self._limit, None
            limit.__exit__(None, None, None)

    def __del__(self) -> None:
        # a backward pass that failed before finish(): give the caller its threads back (when freed in its thread)
        with self._lock:
            self._pending.clear()
        self._restore()
