"""Keep freed memory in the process, so that the next array of a run reuses its pages.

A run allocates and frees arrays of hundreds of megabytes to gigabytes, stage
after stage, in one process (line integrals, radius maps, B-spline
coefficients, float64 temporaries). glibc gives every block above 32 MB back
to the operating system as soon as it is freed (``mmap``/``munmap``), so the
next such array starts on pages the kernel must fault in and zero again. On a
virtual machine that hands free guest memory back to its host (this project's
2-core VM runs virtio-balloon) a page can cost a fault on the host too: there,
filling a 2 GB array took 6.4 s on the first allocation and 0.4 s on the next
(one process, 5 Dec 2026), and ``perf`` found 23 % of the samples of a
whole-voxel radius map in the kernel's page zeroing. The paper scenario's run
spent 1775 s of system CPU time without this policy and 212 s with it (the next
run, which also had the day's other speed-ups).

:func:`keep_freed_memory` makes glibc serve large blocks from its heap and
never trim it, so the process keeps what it once used and reuses it. The
price is that the process's resident memory stays at its peak until it exits;
the command line calls it, since a run's process ends with the run. The
results are the same bytes either way.
"""

import ctypes
import platform

_M_TRIM_THRESHOLD = -1   # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4


def keep_freed_memory():
    """Ask glibc to keep freed memory in the process instead of returning it to the system.

    Sets ``M_MMAP_MAX = 0`` (large blocks come from the heap, not from
    ``mmap``) and an unlimited ``M_TRIM_THRESHOLD`` (the heap's free top is
    never returned). Does nothing where the C library is not glibc.

    Returns
    -------
    bool
        Whether the policy was set.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # mallopt takes an int; glibc reads the trim threshold as size_t, so -1 is "never"
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
