"""The machine a report was measured on, in one phrase."""

from __future__ import annotations

import os
import platform

import torch
from artcloak.engine.optimize import cpu_has_bf16_tiles


def machine() -> str:
    """Its architecture and the vector units torch's kernels use (AVX2 and AVX-512 hosts differ
    about 2.7x in a full-size VAE pass; AMX tiles make bf16 passes the faster), CPUs, torch
    threads and torch version."""
    units = torch.backends.cpu.get_cpu_capability() + (", AMX" if cpu_has_bf16_tiles() else "")
    return (f"{platform.machine()} ({units}), {os.cpu_count()} CPUs, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")  # fmt: skip
