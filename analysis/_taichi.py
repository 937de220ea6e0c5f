"""One place that initialises taichi, so every kernel module shares one runtime."""

import os
import threading
import time
from pathlib import Path

import taichi as ti
from taichi.lang import kernel_impl

_ARCH = None
# taichi holds its offline-cache lock for the seconds it takes to write the cache at exit
_STALE_LOCK_S = 600.0


def clear_stale_cache_lock(cache_dir, max_age_s=_STALE_LOCK_S):
    """Remove taichi's offline-cache lock if a killed process left it behind.

    A process killed while taichi writes its kernel cache leaves
    ``ticache.lock``; every later process then skips the cache and compiles
    every kernel again (about a minute for the phantom's). A lock older than
    ``max_age_s`` seconds is no live writer's and is removed.

    Returns
    -------
    bool
        Whether a stale lock was removed.
    """
    lock = Path(cache_dir) / "ticache.lock"
    try:
        if time.time() - lock.stat().st_mtime <= max_age_s:
            return False
        lock.unlink()
    except FileNotFoundError:
        return False
    return True


def ensure_taichi(arch="cpu"):
    """Initialise taichi once for this process.

    Parameters
    ----------
    arch : {"cpu", "gpu"}
        Backend. ``"gpu"`` needs a CUDA GPU and is an error without one
        (rather than a silent fall-back to the CPU).
        Calling again with another arch re-initialises taichi (fields
        declared earlier become invalid, so modules must declare their fields
        after calling this).

    Returns
    -------
    str
        The arch in use.
    """
    global _ARCH
    if arch not in ("cpu", "gpu"):
        raise ValueError(f"arch: expected 'cpu' or 'gpu', got {arch!r}")
    if _ARCH != arch:
        # CUDA only: taichi's generic ti.gpu also tries Vulkan, which crashes
        # the process on machines without a GPU instead of failing cleanly.
        threads_before = _threads()
        clear_stale_cache_lock(ti.lang.impl.default_cfg().offline_cache_file_path)
        ti.init(arch=ti.cpu if arch == "cpu" else ti.cuda, random_seed=0,
                log_level=ti.ERROR, offline_cache=True)
        if arch == "cpu":
            _pin(sorted(_threads() - threads_before))
        if arch == "gpu" and ti.lang.impl.current_cfg().arch != ti.cuda:
            raise ValueError("arch: 'gpu' asked for, but no CUDA GPU is available here; use --arch cpu")
        _ARCH = arch
    forget_compiling_arguments()
    return _ARCH


def forget_compiling_arguments():
    """Stop taichi from keeping the arrays a kernel was first called with.

    Taichi (1.7) compiles a kernel on its first call and keeps that call's
    arguments in the compiler's context (``argument_data``), which forms a
    reference cycle with the compiled kernel: only Python's cyclic collector
    frees them, and it seldom runs in code whose large objects are numpy
    arrays (it counts container objects, not bytes). A run passes arrays of
    gigabytes (a phantom's slabs, a scan's sinogram): on the paper
    scenario's phantom stage 4.1 GiB stayed in use that way after its first
    step. After each kernel call, the contexts that compiling it made (in
    that thread) forget their arguments; compiling reads them only while it
    builds the kernel. Installed once; does nothing where taichi's
    internals differ.

    Returns
    -------
    bool
        Whether the patch is in place.
    """
    kernel = getattr(kernel_impl, "Kernel", None)
    make_context = getattr(kernel_impl, "_get_tree_and_ctx", None)
    if kernel is None or make_context is None:
        return False
    if getattr(kernel.__call__, "_forgets_arguments", False):
        return True
    # per thread: a kernel compiles in the thread that calls it, and another thread's call must
    # not clear a context that is still being compiled
    made = threading.local()
    call = kernel.__call__

    def recording(*args, **kwargs):
        tree, context = make_context(*args, **kwargs)
        made.__dict__.setdefault("contexts", []).append(context)
        return tree, context

    def calling(self, *args, **kwargs):
        try:
            return call(self, *args, **kwargs)
        finally:
            contexts = made.__dict__.get("contexts", [])
            while contexts:
                contexts.pop().argument_data = None

    calling._forgets_arguments = True
    kernel_impl._get_tree_and_ctx = recording
    kernel.__call__ = calling
    return True


def _threads():
    """Thread ids of this process (empty where /proc is missing)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _pin(thread_ids):
    """Pin the threads taichi just started one per CPU, in the order they started.

    Taichi's CPU thread pool starts its workers one after the other, so
    consecutive threads land on different CPUs. Without this, Linux at times
    wakes two workers on one CPU; a worker then waits there for a time
    slice (milliseconds) while the other spins at the DEM's barrier.
    """
    if not hasattr(os, "sched_setaffinity"):
        return  # not Linux
    cpus = sorted(os.sched_getaffinity(0))
    for k, tid in enumerate(thread_ids):
        try:
            os.sched_setaffinity(tid, {cpus[k % len(cpus)]})
        except OSError:
            pass  # a thread that has already exited
