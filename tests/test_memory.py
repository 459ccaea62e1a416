"""Processes artcloak owns give a full-size VAE's freed tensors back to the system (glibc)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from artcloak import memory
from artcloak.engine import Engine
from artcloak.engine.encoders.model import TaeEncoder, VaeEncoder
from artcloak.engine.encoders.tae import TAE_FAMILIES, TinyAutoencoder
from artcloak.settings import ModelSettings
from artcloak.testing import make_tiny_vae
from artcloak.testing.tae import tae_modules

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
    assert memory.return_freed_memory() is False


def _tiny_vae() -> VaeEncoder:
    return VaeEncoder(make_tiny_vae(), source="tiny", family="sd1", train_resolution=64)


def _tiny_tae() -> TaeEncoder:
    encoder, decoder = tae_modules("taesd")
    vae = TinyAutoencoder(TAE_FAMILIES["taesd"], encoder, decoder)
    return TaeEncoder(vae, source="tae", family="taesd", train_resolution=64)


@pytest.mark.parametrize(
    ("owned", "make", "expected"),
    [(True, _tiny_vae, True), (True, _tiny_tae, False), (False, _tiny_vae, False)],
)
def test_only_a_vae_in_artcloaks_own_process_sets_malloc(monkeypatch, owned, make, expected):
    calls = []
    monkeypatch.setattr(memory, "_owned", owned)
    monkeypatch.setattr(memory, "return_freed_memory", lambda: calls.append(1) or True)
    engine = Engine(ModelSettings(lpips_random_backbone=True), encoders=[make()])
    assert engine.encoders
    assert bool(calls) is expected


def test_artcloaks_command_says_its_process_is_its_own(monkeypatch):
    import artcloak.cli

    calls = []
    monkeypatch.setattr(artcloak.cli, "own_process", lambda: calls.append(1))
    with pytest.raises(SystemExit):
        artcloak.cli.main(["cloak", "/no/such/artwork.png"])
    assert calls == [1]
