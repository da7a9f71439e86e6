"""heap.retained_heap: it changes no numbers, and does nothing off glibc. What it saves (page
faults, time) is measured by benchmarks/retained_heap.py, not here: whether
glibc reuses a freed block depends on the heap's state."""

from __future__ import annotations

import contextlib

import pytest

from mlcompress import heap

torch = pytest.importorskip("torch")

from conftest import tiny_model  # noqa: E402

def test_retained_heap_does_nothing_off_glibc(monkeypatch):
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    with heap.retained_heap():
        assert torch.ones(3).sum() == 3


def test_refined_latents_are_the_same_with_and_without_the_retained_heap(monkeypatch):
    from mlcompress.nn import refine as refine_module

    model = tiny_model("hyperprior-ctx", refine=4).eval()
    model.update()
    x = torch.rand(1, 3, 64, 64)
    kept = refine_module.refine(model, x, 0.013, 4, bf16=True)
    monkeypatch.setattr(refine_module, "retained_heap", contextlib.nullcontext)
    freed = refine_module.refine(model, x, 0.013, 4, bf16=True)
    assert all(torch.equal(a, b) for a, b in zip(kept, freed))
