"""heap.retained_heap: it changes no numbers, and does nothing off glibc. What it saves (page
faults, time) is measured by benchmarks/retained_heap.py, not here: whether
glibc reuses a freed block depends on the heap's state."""

from __future__ import annotations

import contextlib

import pytest

from mlcompress import heap

torch = pytest.importorskip("torch")

from conftest import tiny_model  # noqa: E402


class _FakeGlibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_retained_heap_raises_glibcs_thresholds_for_the_block_and_trims_after_it_even_when_it_raises(monkeypatch):
    lib = _FakeGlibc()
    monkeypatch.setattr(heap, "_glibc", lambda: lib)
    with pytest.raises(RuntimeError), heap.retained_heap():
        assert lib.calls == [("mallopt", heap.M_MMAP_THRESHOLD, heap.MMAP_THRESHOLD),
                             ("mallopt", heap.M_TRIM_THRESHOLD, heap.TRIM_THRESHOLD_INSIDE)]
        raise RuntimeError
    assert lib.calls[2:] == [("mallopt", heap.M_TRIM_THRESHOLD, heap.TRIM_THRESHOLD_AFTER), ("malloc_trim", 0)]


def test_off_glibc_retained_heap_just_runs_the_block(monkeypatch):
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    ran = []
    with heap.retained_heap():
        ran.append(True)
    assert ran == [True]


def test_refined_latents_are_the_same_with_and_without_the_retained_heap(monkeypatch):
    from mlcompress.nn import refine as refine_module

    model = tiny_model("hyperprior-ctx", refine=4).eval()
    model.update()
    x = torch.rand(1, 3, 64, 64)
    kept = refine_module.refine(model, x, 0.013, 4, bf16=True)
    monkeypatch.setattr(refine_module, "retained_heap", contextlib.nullcontext)
    freed = refine_module.refine(model, x, 0.013, 4, bf16=True)
    assert all(torch.equal(a, b) for a, b in zip(kept, freed))
