"""The offline-cache lock guard of ``analysis._taichi`` (hand-made lock files)."""

import os
import time

from analysis._taichi import clear_stale_cache_lock


def test_a_stale_cache_lock_is_removed_and_a_live_one_kept(tmp_path):
    lock = tmp_path / "ticache.lock"
    lock.touch()
    assert not clear_stale_cache_lock(tmp_path) and lock.exists()    # a writer holds it now
    old = time.time() - 601.0
    os.utime(lock, (old, old))
    assert clear_stale_cache_lock(tmp_path) and not lock.exists()
    assert not clear_stale_cache_lock(tmp_path)                      # nothing left to remove
