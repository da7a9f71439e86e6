"""One torch thread and/or one numpy BLAS thread for a block: deterministic coding (learned
codecs, k-means) and fair timing.

torch is imported only when installed and only when the block runs, so numpy-only code paths
can use this too.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def single_torch_thread():
    """Run the block with torch's intra-op thread count at 1, then restore it (no-op without torch)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def one_blas_thread():
    """Run the block with numpy's BLAS (and OpenMP) pools at one thread, then restore them."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@contextmanager
def one_core():
    """One torch thread and one numpy BLAS thread for the block: how the benchmark and the model
    cards time a codec, so that N parallel jobs use N cores."""
    with single_torch_thread(), one_blas_thread():
        yield
