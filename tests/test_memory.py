"""The command line's process keeps freed memory (synthcal.memory)."""

import platform
import subprocess
import sys

import pytest

from conftest import ROOT

# In a child process: the policy is process-wide and would otherwise change this test session's malloc.
# glibc's mallinfo: ``hblkhd`` counts the bytes of blocks served by mmap, ``arena`` the bytes of the heap.
_CHILD = """
import ctypes, sys
import numpy as np
from synthcal.cli import main

class Mallinfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo.restype = Mallinfo
if sys.argv[1] == "cli":
    assert main(["check", "scenarios/tiny.toml"]) == 0
block = np.ones(64 << 20, dtype=np.uint8)
mapped_while_held = libc.mallinfo().hblkhd
del block
print("mapped", mapped_while_held, "heap", libc.mallinfo().arena)
"""


def _child(how):
    result = subprocess.run([sys.executable, "-c", _CHILD, how], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    words = result.stdout.split()[-4:]
    return int(words[1]), int(words[3])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the policy is glibc's (mallopt); elsewhere it does nothing")
def test_the_command_line_serves_a_large_array_from_its_heap_and_keeps_it_when_freed():
    block = 64 << 20
    mapped, heap = _child("cli")
    assert mapped < block          # the 64 MB block did not come from mmap
    assert heap >= block           # and its pages stayed in the heap after it was freed
    # without the command line, glibc maps such a block and hands it back: the test can tell
    mapped_default, _ = _child("plain")
    assert mapped_default >= block
