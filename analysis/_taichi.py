"""One place that initialises taichi, so every kernel module shares one runtime."""

import taichi as ti

_ARCH = None


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
        ti.init(arch=ti.cpu if arch == "cpu" else ti.cuda, random_seed=0,
                log_level=ti.ERROR, offline_cache=True)
        if arch == "gpu" and ti.lang.impl.current_cfg().arch != ti.cuda:
            raise ValueError("arch: 'gpu' asked for, but no CUDA GPU is available here; use --arch cpu")
        _ARCH = arch
    return _ARCH
