"""One place that initialises taichi, so every kernel module shares one runtime."""

import taichi as ti

_ARCH = None


def ensure_taichi(arch="cpu"):
    """Initialise taichi once for this process.

    Parameters
    ----------
    arch : {"cpu", "gpu"}
        Backend. ``"gpu"`` picks CUDA/Vulkan/Metal, whichever taichi finds.
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
        ti.init(arch=ti.cpu if arch == "cpu" else ti.gpu, random_seed=0,
                log_level=ti.WARN, offline_cache=True)
        _ARCH = arch
    return _ARCH
