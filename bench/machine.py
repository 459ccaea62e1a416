"""The machine a report was measured on, in one phrase."""

from __future__ import annotations

import os
import platform

import torch


def machine() -> str:
    """Its architecture and the vector units torch's kernels use (AVX2 and AVX-512 hosts differ
    about 2.7x in a full-size VAE pass), CPUs, torch threads and torch version."""
    capability = torch.backends.cpu.get_cpu_capability()
    return (f"{platform.machine()} ({capability}), {os.cpu_count()} CPUs, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")  # fmt: skip
