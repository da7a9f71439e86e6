"""Keep freed memory in the heap for a block of many equal-sized tensor steps (glibc only): the
refining encoders' steps (nn.refine) and training steps (train.loop, train.restore).

Such a step allocates and frees the same few dozen tensors of up to ~20 MB each (a 24-channel
bfloat16 activation of a 768x512 image is 19 MB). glibc's malloc hands such blocks back to the
kernel as they are freed (they are mmapped, or they sit at the top of the heap above its trim
threshold), so the next step faults their pages in again. :func:`retained_heap` raises both
thresholds for the block, so freed blocks stay in the heap and are reused, then trims the heap.
It changes no numbers, only where the bytes come from, and not the peak memory. What it saves
(page faults, time) is measured by benchmarks/retained_heap.py and recorded in docs/CODECS.md
("Refinement revisions") and docs/LEARNED.md; how much glibc reuses depends on the heap's state
(an aligned request does not always fit the block just freed), so it is measured, not promised.

On other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
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


@functools.cache
def _glibc():
    """The C library, where it is glibc (looked up once); else None."""
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
