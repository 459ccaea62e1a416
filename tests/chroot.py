"""A cached Debian chroot for the real-host tests (GIMP 3, Krita from a newer Debian).

``DebianChroot`` builds one with debootstrap and apt (once per machine, into a folder under
/var/cache by default, under a lock so two test runs never build it at once) and bind-mounts
host folders into it at the same paths, so that a plug-in's worker.json can name this
machine's Python and files inside as well as outside. Building needs root, debootstrap and
the Debian mirror; ``skip_reason()`` says in one line what is missing, for ``pytest.skip``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MIRROR = os.environ.get("ARTCLOAK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CHROOT_COMMAND = shutil.which("chroot") or "/usr/sbin/chroot"
DEBOOTSTRAP_TIMEOUT_S = 900
APT_TIMEOUT_S = 1800
# What every chroot gets: the kernel's views and devices (/dev recursively: shm, pts).
SYSTEM_MOUNTS = (Path("/proc"), Path("/dev"))


class ChrootError(Exception):
    """The chroot could not be built or entered; the message says which step and why."""


@dataclass(frozen=True)
class DebianChroot:
    """A Debian ``suite`` at ``path`` with ``packages``; ``marker`` (a path inside it, such
    as ``usr/bin/krita``) exists once it is built. ``label`` starts every skip reason."""

    path: Path
    suite: str
    packages: tuple[str, ...]
    marker: str
    label: str
    # A further suite to take ``packages`` from (apt-get -t), e.g. "experimental" on top of sid
    take_from: str | None = None

    @property
    def ready(self) -> bool:
        return (self.path / self.marker).exists()

    def skip_reason(self) -> str | None:
        """Why this chroot cannot be used here, or None when it is built or can be built."""
        if sys.platform != "linux":
            return f"{self.label}: Linux only (runs in a Debian {self.suite} chroot)"
        if os.geteuid() != 0:
            return f"{self.label}: needs root to chroot and bind-mount"
        if self.ready:
            return None
        if shutil.which("debootstrap") is None:
            return (
                f"{self.label}: no Debian {self.suite} chroot at {self.path} and no debootstrap "
                "to build one (apt-get install debootstrap)"
            )
        return None

    def ensure(self) -> None:
        """Build the chroot unless it is there (another process may be building it: wait)."""
        if self.ready:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.ready:
                self._build()

    def _build(self) -> None:
        building = self.path.with_name(self.path.name + ".building")
        for stale in (building, self.path):  # never delete through a bind mount left behind
            if _mounts_under(stale):
                raise ChrootError(f"{stale} has mounts under it ({_mounts_under(stale)[0]}, …); "
                                  "unmount them (umount -l) before it can be rebuilt")  # fmt: skip
        shutil.rmtree(building, ignore_errors=True)
        _run(
            "debootstrap",
            ["debootstrap", "--variant=minbase", self.suite, str(building), MIRROR],
            DEBOOTSTRAP_TIMEOUT_S,
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        inside = [CHROOT_COMMAND, str(building)]
        if self.take_from:
            sources = building / "etc" / "apt" / "sources.list.d" / f"{self.take_from}.list"
            sources.write_text(f"deb {MIRROR} {self.take_from} main\n")
        # a mirror's sid and experimental may be a snapshot whose Release files have expired
        update = ["apt-get", "update", "-qq", "-o", "Acquire::Check-Valid-Until=false"]
        _run("apt-get update", [*inside, *update], APT_TIMEOUT_S, env)
        release = ["-t", self.take_from] if self.take_from else []
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *release,
                   *self.packages]  # fmt: skip
        _run("apt-get install", [*inside, *install], APT_TIMEOUT_S, env)
        _run("apt-get clean", [*inside, "apt-get", "clean"], 120, env)
        if not (building / self.marker).exists():
            raise ChrootError(f"{self.marker} is missing after installing {self.packages}")
        if self.path.exists():  # a stale, unfinished one
            shutil.rmtree(self.path)
        building.rename(self.path)

    def ensure_or_skip(self, what: str) -> None:
        """Build the chroot if need be; skip the calling test, saying why, where it cannot."""
        import pytest

        reason = self.skip_reason()
        if reason:
            pytest.skip(reason)
        try:
            self.ensure()
        except ChrootError as error:
            pytest.skip(f"{what}: could not build the chroot at {self.path}: {error}")

    def command(self, *args: str) -> list[str]:
        """The command line that runs ``args`` inside the chroot."""
        return [CHROOT_COMMAND, str(self.path), *args]

    def package_version(self, package: str) -> str:
        """The installed version of a Debian package inside the chroot ('' if unknown)."""
        found = subprocess.run(
            self.command("dpkg-query", "-W", "-f", "${Version}", package),
            capture_output=True,
            text=True,
            check=False,
        )
        return found.stdout.strip() if found.returncode == 0 else ""

    @contextlib.contextmanager
    def mounted(self, paths: Iterable[Path]) -> Iterator[None]:
        """/proc, /dev and each of ``paths`` bind-mounted at the same path inside; all are
        unmounted, and the mount points made for them removed, afterwards.
        Raises ChrootError when a mount fails (e.g. no CAP_SYS_ADMIN in a container)."""
        mounted: list[Path] = []
        made: list[Path] = []
        try:
            for source in (*SYSTEM_MOUNTS, *paths):
                inside = self.path / str(source).lstrip("/")
                made.extend(_make_dirs(inside))
                recursive = source == Path("/dev")
                _run(
                    f"bind-mount {source}",
                    ["mount", "--rbind" if recursive else "--bind", str(source), str(inside)],
                    60,
                )
                mounted.append(inside)
                if recursive:  # unmounting it later must not reach the host's /dev/pts, /dev/shm
                    _run("make-rslave", ["mount", "--make-rslave", str(inside)], 60)
            yield
        finally:
            for inside in reversed(mounted):
                subprocess.run(["umount", "-l", str(inside)], check=False, capture_output=True)
            for folder in reversed(made):
                with contextlib.suppress(OSError):  # rmdir: only an empty mount point, never a tree
                    os.rmdir(folder)


def _mounts_under(folder: Path) -> list[str]:
    """The mount points at or below ``folder`` (from /proc/self/mountinfo)."""
    prefix = str(folder.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[4].replace("\\040", " ") for line in lines]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _make_dirs(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it made (outermost first)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir()
    return list(reversed(missing))


def _run(step: str, args: list[str], timeout: float, env: dict | None = None) -> None:
    try:
        subprocess.run(args, check=True, capture_output=True, timeout=timeout, env=env)
    except subprocess.CalledProcessError as error:
        tail = (error.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
        raise ChrootError(f"{step} failed (exit {error.returncode}): {' | '.join(tail)}") from None
    except subprocess.TimeoutExpired:
        raise ChrootError(f"{step} took more than {timeout:.0f} s") from None
    except OSError as error:
        raise ChrootError(f"{step} could not run: {error}") from None


if __name__ == "__main__":  # build them ahead of a test run: python tests/chroot.py krita|gimp
    import importlib

    module = importlib.import_module(f"test_{sys.argv[1]}_real")  # (tests/ is sys.path[0])
    for chroot in module.CHROOTS.values():
        chroot.ensure()
        print(chroot.path, "ready:", chroot.package_version(sys.argv[1]))
