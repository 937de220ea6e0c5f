"""analysis._taichi.forget_compiling_arguments: a kernel's first arrays are freed like any other."""

import weakref

import numpy as np
import taichi as ti

from analysis._taichi import ensure_taichi, forget_compiling_arguments


def _fresh_kernel():
    # defined here so that its first call, the one that compiles it, happens in the test
    @ti.kernel
    def fill(a: ti.types.ndarray(dtype=ti.f32, ndim=2), value: ti.f32):
        for i, j in a:
            a[i, j] = value

    return fill


def test_the_array_a_kernel_was_compiled_with_is_freed_after_the_call():
    ensure_taichi("cpu")
    fill = _fresh_kernel()
    first = np.zeros((4, 5), np.float32)
    fill(first, 2.0)
    assert np.all(first == 2.0)
    gone = weakref.ref(first)
    del first
    # freed at once: taichi's compiling context and the compiled kernel form a reference cycle,
    # which held the array until the cyclic collector ran, and numpy-heavy code seldom runs it
    assert gone() is None
    # the compiled kernel still runs on later arrays
    later = np.zeros((3, 2), np.float32)
    fill(later, 5.0)
    assert np.all(later == 5.0)


def test_installing_twice_patches_once():
    ensure_taichi("cpu")
    call = ti.lang.kernel_impl.Kernel.__call__
    assert forget_compiling_arguments() and forget_compiling_arguments()
    assert ti.lang.kernel_impl.Kernel.__call__ is call
