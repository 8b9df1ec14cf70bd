"""vtgkit.train.allocator: tcmalloc by re-executing once, tuned glibc malloc otherwise, explicit choices."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vtgkit.errors import ConfigError
from vtgkit.train import allocator

SCRIPT = """
import os
from vtgkit.train.allocator import setup_allocator
print(setup_allocator({flag!r}, may_reexec=True))
print("LD_PRELOAD" in os.environ and "tcmalloc" in os.environ["LD_PRELOAD"])
"""


def run_script(flag: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.ENV_CHOICE)}
    completed = subprocess.run([sys.executable, "-c", SCRIPT.format(flag=flag)], capture_output=True, text=True,
                               env=env, timeout=120, check=True)
    return completed.stdout.split("\n")


@pytest.mark.skipif(allocator.find_tcmalloc() is None, reason="tcmalloc is not installed")
def test_tcmalloc_by_reexecuting_once_and_not_passed_to_subprocesses() -> None:
    description, inherited, _ = run_script(None)
    assert description.startswith("tcmalloc (preloaded)")
    assert inherited == "False"


def test_glibc_choice_keeps_the_system_allocator_tuned() -> None:
    description, inherited, _ = run_script("glibc")
    assert description.startswith("glibc malloc (mmap threshold") or description.startswith("system malloc")
    assert inherited == "False"


def test_unknown_choice_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allocator.ENV_CHOICE, "jemalloc")
    with pytest.raises(ConfigError, match="VTGKIT_ALLOCATOR"):
        allocator.allocator_choice(None)
    assert allocator.allocator_choice("default") == "default"


def test_openmp_wait_policy_is_passive_unless_set() -> None:
    code = ("import os\nfrom vtgkit.train.allocator import setup_allocator\n"
            "setup_allocator('glibc', may_reexec=False)\nprint(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", allocator.ENV_CHOICE)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert run.stdout.strip() == "PASSIVE"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(env, OMP_WAIT_POLICY="ACTIVE"), timeout=120, check=True)
    assert run.stdout.strip() == "ACTIVE"
