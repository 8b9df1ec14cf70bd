"""vtgkit.nn.core_split: pieces run on the caller and one helper thread, one intra-op thread each."""

from __future__ import annotations

import threading

import pytest
import torch

from vtgkit.nn import core_split
from vtgkit.nn.core_split import BackgroundTasks, SplitRun, split_available


def test_not_used_with_one_thread_autograd_or_autocast() -> None:
    torch.set_num_threads(1)
    with torch.inference_mode():
        assert not split_available()
    torch.set_num_threads(2)
    assert not split_available()  # grad mode on
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert not split_available()
    torch.set_num_threads(3)  # more cores than the two threads of the split: intra-op parallelism is kept
    with torch.inference_mode():
        assert not split_available()


def _available() -> bool:
    torch.set_num_threads(2)
    with torch.inference_mode():
        return split_available()


def test_pieces_run_with_one_intraop_thread_and_settings_come_back() -> None:
    if not _available():
        pytest.skip("torch does not run on its bundled libgomp here: the split is off (the fallback is tested)")
    seen: list[tuple[str, int, bool]] = []
    lock = threading.Lock()

    def piece(index: int) -> None:
        with lock:
            seen.append((threading.current_thread().name, torch.get_num_threads(), torch.is_inference_mode_enabled()))

    with torch.inference_mode():
        with SplitRun([lambda i=i: piece(i) for i in range(6)]) as run:
            run.wait(0)
            run.wait(5)
            assert torch.get_num_threads() == 1  # the caller's own ops share the cores with the helper
        assert torch.get_num_threads() == 2
        assert core_split._mkl_threads() == 2
    assert len(seen) == 6
    assert {threads for _, threads, _ in seen} == {1}
    assert all(inference for _, _, inference in seen)  # the helper runs under the caller's inference mode


def test_error_in_a_piece_is_raised_and_the_run_stops() -> None:
    if not _available():
        pytest.skip("split unavailable")
    ran: list[int] = []

    def piece(index: int) -> None:
        if index == 1:
            raise RuntimeError("piece 1 failed")
        ran.append(index)

    with torch.inference_mode(), pytest.raises(RuntimeError, match="piece 1 failed"):
        with SplitRun([lambda i=i: piece(i) for i in range(50)]) as run:
            for index in range(50):
                run.wait(index)
    assert len(ran) < 50
    assert torch.get_num_threads() == 2


def test_concurrent_callers_each_get_all_their_pieces() -> None:
    if not _available():
        pytest.skip("split unavailable")
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def caller(key: int) -> None:
        try:
            torch.set_num_threads(2)  # a new thread: its own OpenMP setting
            done: list[int] = []
            with torch.inference_mode(), SplitRun([lambda i=i: done.append(i) for i in range(20)]) as run:
                for index in range(20):
                    run.wait(index)
            results[key] = sorted(done)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(key,)) for key in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == {key: list(range(20)) for key in range(3)}


def test_waiting_for_a_piece_that_never_starts_raises() -> None:
    """A piece fails in the helper while the caller waits for a later piece: the caller gets the error, no hang."""
    if not _available():
        pytest.skip("split unavailable")
    import time

    started = threading.Event()

    def first() -> None:  # taken by the caller
        started.wait(5)
        time.sleep(0.05)

    def failing() -> None:  # taken by the helper
        started.set()
        raise ValueError("helper piece failed")

    with torch.inference_mode(), pytest.raises(ValueError, match="helper piece failed"):
        with SplitRun([first, failing, lambda: None, lambda: None]) as run:
            run.wait(0)
            run.wait(3)


def test_split_scope_keeps_one_intraop_thread_and_allows_the_split() -> None:
    if not _available():
        pytest.skip("split unavailable")
    with torch.inference_mode():
        with core_split.split_scope() as active:
            assert active and core_split.in_split_scope()
            assert torch.get_num_threads() == 1 and split_available()
            with core_split.split_scope() as nested:
                assert not nested  # already inside: nothing changes
            assert torch.get_num_threads() == 1
        assert not core_split.in_split_scope()
        assert torch.get_num_threads() == 2
    with core_split.split_scope() as active:  # autograd on: no split
        assert not active and torch.get_num_threads() == 2


def test_background_tasks_run_on_the_helper_while_the_caller_has_one_thread() -> None:
    if not _available():
        pytest.skip("split unavailable")
    caller = threading.current_thread().name
    seen: dict[int, tuple[str, int]] = {}
    started, release = threading.Event(), threading.Event()

    def task(index: int) -> None:
        if index == 0:
            started.set()
            release.wait(5)  # hold the helper so that the caller finishes the later tasks itself
        seen[index] = (threading.current_thread().name, torch.get_num_threads())

    tasks = BackgroundTasks()
    with torch.no_grad():
        for index in range(4):
            tasks.submit(lambda index=index: task(index))
        assert tasks.in_background()
        assert torch.get_num_threads() == 1  # the helper has the other core until finish()
        assert started.wait(5)  # the helper took the first task
        release.set()
        tasks.finish()
    assert torch.get_num_threads() == 2 and core_split._mkl_threads() == 2
    assert sorted(seen) == [0, 1, 2, 3]
    assert seen[0][0] != caller  # the first task ran on the helper
    assert {threads for _, threads in seen.values()} == {1}


def test_background_task_error_is_raised_by_finish_and_threads_come_back() -> None:
    if not _available():
        pytest.skip("split unavailable")
    tasks = BackgroundTasks()

    def fail() -> None:
        raise RuntimeError("task failed")

    with torch.no_grad():
        tasks.submit(fail)
        with pytest.raises(RuntimeError, match="task failed"):
            tasks.finish()
    assert torch.get_num_threads() == 2


def test_background_tasks_run_at_once_without_the_split() -> None:
    torch.set_num_threads(1)
    ran: list[str] = []
    tasks = BackgroundTasks()
    tasks.submit(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]  # ran in the caller, before submit returned
    assert not tasks.in_background()
    tasks.finish()
