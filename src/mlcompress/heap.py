"""Keep freed memory in the heap for a block of many equal-sized tensor steps (glibc only): the
refining encoders' steps (nn.refine) and training steps (train.loop, train.restore).

A refinement step allocates and frees the same few dozen tensors of up to ~20 MB each (a
24-channel bfloat16 activation of a 768x512 image is 19 MB). glibc's malloc hands such blocks
back to the kernel as they are freed (they are mmapped, or they sit at the top of the heap above
its trim threshold), so the next step faults their pages in again: on kodim07 (hyperprior-ctx
q3, 40 bfloat16 steps, one core) 1.6-2.3 million page faults and 2.8-4.1 s of kernel time in a
20.4-20.9 s encode. :func:`retained_heap` raises both thresholds for the block, so freed blocks
stay in the heap and are reused: 0.06-0.17 million faults, 0.2-0.4 s in the kernel, 16.7-17.7 s
(docs/CODECS.md, "Refinement revisions"). It changes no numbers, only where the bytes come from,
and not the peak memory (about 0.72 GB either way). How much glibc reuses depends on the heap's
state (an aligned request does not always fit the block just freed), so it is measured per run
(benchmarks/retained_heap.py), not promised. A training step gains the same way: 0.31 s instead of
0.40 s for hyperprior-ctx on two threads (docs/LEARNED.md).

On other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager

#: mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: glibc's largest dynamic mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX); blocks
#: below it come from the heap
MMAP_THRESHOLD = 32 * 2**20
#: keep up to this much freed memory at the top of the heap inside the block
TRIM_THRESHOLD_INSIDE = 2**30
#: after the block: what glibc's dynamic threshold reaches with MMAP_THRESHOLD (twice it)
TRIM_THRESHOLD_AFTER = 2 * MMAP_THRESHOLD


def _glibc():
    try:
        lib = ctypes.CDLL(None)
        lib.gnu_get_libc_version  # noqa: B018 (raises AttributeError off glibc)
        lib.mallopt  # noqa: B018
        lib.malloc_trim  # noqa: B018
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return None
    return lib


@contextmanager
def retained_heap():
    """Run the block with freed memory kept in the heap, then trim it back (a no-op off glibc)."""
    lib = _glibc()
    if lib is None:
        yield
        return
    lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_INSIDE)
    try:
        yield
    finally:
        lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)
        lib.malloc_trim(0)
