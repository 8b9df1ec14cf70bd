"""The memory allocator of a training process: tcmalloc when installed, else glibc malloc tuned to keep its memory.

Why: a training step allocates and frees many temporaries of tens of MB. glibc's malloc serves blocks above its
(adaptive) mmap threshold with fresh pages and gives freed memory back to the OS, so every step page-faults its
temporaries again (~0.3 ms per MB of first touch on the project's machine, notes/cpu-performance.md §1); on the
official R²-Tuning step preloading tcmalloc alone gave 1.5×. tcmalloc can only be preloaded at process start, so
``vtgkit train`` re-executes itself once with ``LD_PRELOAD`` (:func:`reexec_with_tcmalloc`); where that is not
possible (no library, opted out, not the CLI process) glibc's thresholds are raised in process with ``mallopt``
(:func:`tune_glibc_malloc`), which removes most of the page faults too. Choose with ``--allocator`` or
``VTGKIT_ALLOCATOR``: ``tcmalloc`` (default), ``glibc`` (tuned glibc malloc), ``default`` (leave malloc as it is).

The same start-up also sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (and unless ``default``):
OpenMP threads that wait at a barrier then sleep instead of spinning. On the shared 2-core machine, with other
processes busy, the spinning made a 2-thread training step 3–10× slower (5–14 CPU-s instead of 3.3–3.5); on an
idle machine the two policies measured the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV_CHOICE = "VTGKIT_ALLOCATOR"
CHOICES = ("tcmalloc", "glibc", "default")
_ENV_REEXEC = "VTGKIT_ALLOCATOR_REEXEC"  # set in the re-executed process: never re-execute twice
TCMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc <malloc.h>
_MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum: blocks up to 32 MiB come from the heap and are reused
_TRIM_THRESHOLD = 2**30  # keep up to 1 GiB of freed heap instead of returning it to the OS after every step
_TOP_PAD = 64 * 2**20


def find_tcmalloc() -> str | None:
    """Path of an installed tcmalloc shared library, or None."""
    for path in TCMALLOC_CANDIDATES:
        if os.path.exists(path):
            return path
    name = ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")
    return name if name and os.path.isabs(name) and os.path.exists(name) else None


def tcmalloc_loaded() -> bool:
    """Whether tcmalloc is mapped into this process (preloaded)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            return any("libtcmalloc" in line for line in maps)
    except OSError:
        return False


def allocator_choice(flag: str | None) -> str:
    """``flag`` (the CLI option) or the VTGKIT_ALLOCATOR environment variable, default ``tcmalloc``."""
    choice = flag or os.environ.get(ENV_CHOICE, "tcmalloc")
    if choice not in CHOICES:
        from vtgkit.errors import ConfigError

        raise ConfigError(f"allocator must be one of {', '.join(CHOICES)} (--allocator / {ENV_CHOICE}), got {choice!r}")
    return choice


def reexec_with_tcmalloc() -> None:
    """Replace this process by the same command with tcmalloc preloaded, when the library exists and it is not
    loaded yet. Returns only when nothing was done. Call it before any work (the process starts over)."""
    library = find_tcmalloc()
    if library is None or tcmalloc_loaded() or os.environ.get(_ENV_REEXEC):
        return
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["LD_PRELOAD"] = ":".join(filter(None, [library, env.get("LD_PRELOAD")]))
    env[_ENV_REEXEC] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def forget_preload() -> None:
    """Drop this module's LD_PRELOAD entry from the environment, so that subprocesses (ffmpeg, …) do not inherit it;
    the library stays loaded here."""
    if os.environ.pop(_ENV_REEXEC, None) is None:
        return
    library = find_tcmalloc()
    rest = [entry for entry in os.environ.get("LD_PRELOAD", "").split(":") if entry and entry != library]
    if rest:
        os.environ["LD_PRELOAD"] = ":".join(rest)
    else:
        os.environ.pop("LD_PRELOAD", None)


def tune_glibc_malloc() -> bool:
    """Raise glibc malloc's mmap and trim thresholds for this process (mallopt). False when not on glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD)))


def setup_allocator(flag: str | None, may_reexec: bool) -> str:
    """Choose and install the allocator of a training process (and the OpenMP wait policy, see above; call it
    before importing torch); returns a description for the log.

    Args:
        flag: the ``--allocator`` option (None: environment / default).
        may_reexec: this process is the ``vtgkit`` command itself (not e.g. a test calling it in process), so it
            may start over with tcmalloc preloaded.
    """
    choice = allocator_choice(flag)
    if choice == "tcmalloc" and may_reexec:
        reexec_with_tcmalloc()
    forget_preload()
    if choice != "default" and "torch" not in sys.modules:  # OpenMP reads it when torch loads it
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    policy = f", OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}" if os.environ.get("OMP_WAIT_POLICY") else ""
    if tcmalloc_loaded():
        return "tcmalloc (preloaded)" + policy
    if choice != "default" and tune_glibc_malloc():
        return "glibc malloc (mmap threshold 32 MiB, trim threshold 1 GiB)" + policy
    return "system malloc (default settings)" + policy
