"""A training step reuses the memory the last one freed instead of faulting pages in anew."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

# In a fresh process: malloc's state there depends on nothing else the test run did.
STEPS_AFTER_WARM_UP = """
import json, os, resource
from marl_tui.config import load_scenario
from marl_tui.train.build import build_run
from marl_tui.train.allocator import keep_freed_memory
from marl_tui.train.run_config import RunConfig
keep_freed_memory()  # what the training processes' entry points do
t = build_run(RunConfig(scenario=load_scenario("fulfillment"), algo="qmix", seed=0, n_envs=32))
while t.updates < 3:  # the replay buffer filled, the first updates' memory allocated
    t.train_step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
while t.updates < 13:
    t.train_step()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc's thresholds are glibc's")
def test_a_qmix_update_faults_few_pages_in() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", STEPS_AFTER_WARM_UP], capture_output=True,
                         text=True, env=env, timeout=120, check=True)
    faults_per_update = json.loads(out.stdout.strip().splitlines()[-1])
    # glibc's moving thresholds: ~2,900 a step here (munmap'd batches faulted back in)
    assert faults_per_update < 200
