"""Freed tensors go back to the system at once, for a full-size VAE in a process artcloak owns.

glibc's malloc serves a block under its mmap threshold from a heap it keeps, and raises that
threshold (up to 32 MiB) each time a larger mapped block is freed. A pass through a full-size
VAE frees and makes again tensors of every size from kilobytes to 134 MB; the ones under the
raised threshold stay in the heap, scattered, and the process's memory grows well past what its
live tensors need. A fixed threshold of 1 MiB maps every tensor of that size or more on its own
and unmaps it when freed. A tiny autoencoder keeps glibc's rule: mapping its 16 MB tensors afresh
each pass costs page faults, more time than its small peak is worth. ``bench/malloc_threshold.py``
(one forward+backward, 2 threads): the full-size SD VAE at 512 px 8.29 s and a peak of 2.13 GB
against 7.88 s and 2.53 GB; TAEF2 at 256 px 0.31 s against 0.20 s.

Only in processes artcloak starts (its command line, its workers, its batch actors): in a host's
process (ComfyUI) malloc stays the host's to set. A person who sets ``MALLOC_MMAP_THRESHOLD_``
keeps it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MAPPED_FROM_BYTES = 1 << 20
_owned = False  # is this process artcloak's own?


def own_process() -> None:
    """Say that this process is artcloak's own (its command, a worker, a batch actor)."""
    global _owned
    _owned = True


def fit_to_encoders(full_size: bool) -> bool:
    """Once encoders load: ``return_freed_memory`` in a process artcloak owns when one of them is
    a full-size VAE (``full_size``); whether the threshold was set."""
    return _owned and full_size and return_freed_memory()


def return_freed_memory() -> bool:
    """Set glibc's mmap threshold to MAPPED_FROM_BYTES; False where it is not glibc's malloc or
    the person set the threshold themselves (nothing changes then)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = _glibc()
    return libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MAPPED_FROM_BYTES) == 1


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    # musl and other C libraries have no gnu_get_libc_version; their mallopt does nothing.
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
