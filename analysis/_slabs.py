"""Work split into slabs along the first axis, run on every CPU this process may use."""

import os
from concurrent.futures import ThreadPoolExecutor


def in_slabs(n, planes, work):
    """Call ``work(start, stop)`` for consecutive ranges of at most ``planes`` of ``range(n)``, in threads.

    For numpy and scipy calls that release the GIL. ``work`` writes each
    range's own part of an output, so the result does not depend on the
    number of threads, and no call sees more than one slab's temporaries.

    Parameters
    ----------
    n : int
        Planes to cover (0 calls nothing).
    planes : int
        Planes per call, >= 1.
    work : callable
        ``work(start, stop)``; its return value is ignored.
    """
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        list(pool.map(lambda start: work(start, min(start + planes, n)), range(0, n, planes)))
