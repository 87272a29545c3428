"""Gradient recording is switched per thread, as in PyTorch, and contexts nest and re-enter."""

import threading

import convscope as cs


def test_no_grad_in_other_threads_leaves_this_thread_recording():
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for _ in range(500):
            with cs.no_grad():
                assert not cs.is_grad_enabled()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(500):
        assert cs.is_grad_enabled()
    for t in threads:
        t.join()
    assert cs.is_grad_enabled()
    w = cs.ones(2, requires_grad=True)
    assert (w * 2).requires_grad


def test_one_instance_re_entered_and_nested_contexts():
    guard = cs.no_grad()

    def recurse(depth: int) -> None:
        with guard:
            assert not cs.is_grad_enabled()
            if depth:
                recurse(depth - 1)
            with cs.enable_grad():
                assert cs.is_grad_enabled()
            assert not cs.is_grad_enabled()

    recurse(3)
    assert cs.is_grad_enabled()

    @cs.no_grad()
    def inside() -> bool:
        return cs.is_grad_enabled()

    assert inside() is False and cs.is_grad_enabled()
    with cs.set_grad_enabled(False):
        assert not cs.is_grad_enabled()
    assert cs.is_grad_enabled()
    cs.set_grad_enabled(False)
    try:
        assert not cs.is_grad_enabled()
    finally:
        cs.set_grad_enabled(True)
