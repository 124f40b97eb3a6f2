"""keep_freed_memory: after it, a freed 64 MiB tensor's pages are reused instead of faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, torch
from modalrec.train.memory import keep_freed_memory

def faults_of_ten_temporaries():
    x = torch.ones(2**24)  # 64 MiB: above glibc's largest mmap threshold
    (x * 2).sum()  # warm-up: the heap grows once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        (x * 2).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(faults_of_ten_temporaries(), keep_freed_memory(), faults_of_ten_temporaries(), keep_freed_memory())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_pages_are_reused() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    before, applied, after, again = done.stdout.split()
    assert applied == "True" and again == "True"
    assert int(before) > 10 * 10_000  # each 64 MiB temporary faulted in anew: 16,384 pages
    assert int(after) < 1_000
