"""Processes artcloak owns give freed tensors back to the system (glibc's malloc)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from artcloak.memory import return_freed_memory

# Frees a 24 MiB block (glibc then serves blocks up to 24 MiB from its heap), then makes,
# touches and frees a 16 MiB one: prints how much of it the process still holds, in MiB.
RETAINED = """
import ctypes, ctypes.util, os, sys
from artcloak.memory import return_freed_memory
if sys.argv[1] == "set":
    assert return_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * page
def touched(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block
libc.free(touched(24 << 20))
before = resident()
libc.free(touched(16 << 20))
print((resident() - before) / 2**20)
"""

glibc = pytest.mark.skipif(
    "CS_GNU_LIBC_VERSION" not in getattr(os, "confstr_names", {}), reason="glibc's malloc only"
)


def _retained(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    run = subprocess.run([sys.executable, "-c", RETAINED, mode], capture_output=True,
                         text=True, check=True, env=env)  # fmt: skip
    return float(run.stdout)


@glibc
def test_freed_blocks_go_back_to_the_system():
    assert _retained("default") > 8  # glibc's own rule keeps the freed block
    assert _retained("set") < 1


def test_a_threshold_the_person_set_is_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert return_freed_memory() is False
