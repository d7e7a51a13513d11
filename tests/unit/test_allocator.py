"""core.allocator: after ``retain_freed_memory`` an update's temporaries reuse heap pages instead of
faulting fresh ones in (glibc); elsewhere it is a no-op that says so."""

import subprocess
import sys

import pytest

from rlworks.core import allocator

FAULTS = r'''
import resource, torch
torch.set_num_threads(1)
from rlworks.algos import sac
held = {}
sac.train("Pendulum-v1", sac.SACConfig(hidden=(256, 256)), total_steps=300, seed=0, on_start=lambda s: held.update(s=s))
s = held["s"]
for _ in range(50):
    sac.train_round(s, 1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    sac.train_round(s, 1)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)
'''


def test_retain_freed_memory_is_idempotent():
    first = allocator.retain_freed_memory()
    assert allocator.retain_freed_memory() is first
    if sys.platform.startswith("linux"):  # glibc here (the CI image); the thresholds were set
        assert first is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_sac_updates_do_not_fault_pages_in():
    # the training loop sets the thresholds; with glibc's adaptive defaults these updates fault in
    # 3-110 pages each (measured, depending on how the heap grew), with them retained none
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1.0
