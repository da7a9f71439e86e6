"""numba kernels of weighted k-means for colour VQ (:mod:`mlcompress.codecs.vq`); imported lazily.

* :func:`kmeanspp`: greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with scikit-learn's
  greedy choice: ``trials`` candidates per seed, the one that lowers the potential most wins),
  driven by uniform numbers that the caller draws from its seeded generator.
* :func:`lloyd`: Lloyd's algorithm with Hamerly's bounds (Hamerly 2010, "Making k-means even
  faster"): an upper bound on each point's distance to its center and one lower bound on its
  distance to every other center let most points skip the search once the centers settle. The
  assignments are those of plain Lloyd (up to ties between equally near centers).

Points are stored transposed, DxP float64 (D = 1..4 colour channels), so that the loops over
points or centers run over contiguous memory and vectorise; weights are P positive float64.
Everything runs on one thread in a fixed order: the same inputs give the same centers on every
run, process and thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _dot(a, b):
    """sum(a * b) in a fixed order, with 4 running sums (one chain of additions would stall)."""
    s0 = s1 = s2 = s3 = 0.0
    n = a.size - a.size % 4
    for i in range(0, n, 4):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
    for i in range(n, a.size):
        s0 += a[i] * b[i]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, nogil=True)
def kmeanspp(xt, w, k, uniforms):
    """Indices of k seeds among the P points of ``xt`` (DxP); ``uniforms`` is k x trials U[0, 1).

    The first seed is drawn with probability proportional to the weights, each later one among
    ``trials`` candidates drawn proportionally to weight x squared distance to the nearest seed.
    """
    dim, p = xt.shape
    trials = uniforms.shape[1]
    seeds = np.empty(k, np.int64)
    cum = np.cumsum(w)
    seeds[0] = min(np.searchsorted(cum, uniforms[0, 0] * cum[-1], side="right"), p - 1)
    closest = np.zeros(p)
    for d in range(dim):
        row = xt[d]
        v = row[seeds[0]]
        for i in range(p):
            t = row[i] - v
            closest[i] += t * t
    best_dist = np.empty(p)
    cand_dist = np.empty(p)
    for c in range(1, k):
        cum = np.cumsum(w * closest)
        best_pot = np.inf
        best_id = -1
        for t in range(trials):
            cand = min(np.searchsorted(cum, uniforms[c, t] * cum[-1], side="right"), p - 1)
            cand_dist[:] = 0.0
            for d in range(dim):
                row = xt[d]
                v = row[cand]
                for i in range(p):
                    u = row[i] - v
                    cand_dist[i] += u * u
            for i in range(p):
                if cand_dist[i] > closest[i]:
                    cand_dist[i] = closest[i]
            pot = _dot(w, cand_dist)
            if pot < best_pot:
                best_pot, best_id = pot, cand
                best_dist, cand_dist = cand_dist, best_dist
        seeds[c] = best_id
        closest, best_dist = best_dist, closest
    return seeds


@njit(cache=True, nogil=True)
def _scan(xt, i, ct, dist):
    """(nearest center, its squared distance, squared distance to the second) of point i.

    ``ct`` is DxK, ``dist`` scratch of K. Ties go to the lower center index.
    """
    dim, k = ct.shape
    dist[:] = 0.0
    for d in range(dim):
        v = xt[d, i]
        row = ct[d]
        for j in range(k):
            t = v - row[j]
            dist[j] += t * t
    b1, d1, d2 = 0, np.inf, np.inf
    for j in range(k):
        dd = dist[j]
        if dd < d2:
            if dd < d1:
                d2, d1, b1 = d1, dd, j
            else:
                d2 = dd
    return b1, d1, d2


@njit(cache=True, nogil=True)
def lloyd(xt, w, init, max_iter, tol):
    """Weighted Lloyd on ``xt`` (DxP) from centers ``init`` (DxK).

    Returns (centers DxK, labels P, inertia, center updates). Stops when no point changes
    center, after ``max_iter`` center updates, or when the centers move by no more than ``tol``
    (sum of squared moves). A center that loses all its points stays where it was. The labels
    are each point's nearest center before the last update (the assignment the centers are the
    weighted means of, at convergence); inertia is measured against the returned centers.
    """
    dim, p = xt.shape
    k = init.shape[1]
    ct = init.copy()
    dist = np.empty(k)
    a = np.empty(p, np.int64)
    up = np.empty(p)
    lo = np.empty(p)
    for i in range(p):
        b, d1, d2 = _scan(xt, i, ct, dist)
        a[i], up[i], lo[i] = b, np.sqrt(d1), np.sqrt(d2)
    sums = np.empty((dim, k))
    ws = np.empty(k)
    delta = np.empty(k)
    half = np.empty(k)
    n_iter = 0
    for it in range(max_iter):
        n_iter = it + 1
        sums[:] = 0.0
        ws[:] = 0.0
        for i in range(p):
            ws[a[i]] += w[i]
        for d in range(dim):
            row = xt[d]
            srow = sums[d]
            for i in range(p):
                srow[a[i]] += w[i] * row[i]
        shift = 0.0
        m1, m2, jm = 0.0, 0.0, -1  # the largest and the second largest center move
        for j in range(k):
            s = 0.0
            if ws[j] > 0:
                for d in range(dim):
                    v = sums[d, j] / ws[j]
                    t = v - ct[d, j]
                    s += t * t
                    ct[d, j] = v
            shift += s
            delta[j] = np.sqrt(s)
            if delta[j] > m1:
                m2, m1, jm = m1, delta[j], j
            elif delta[j] > m2:
                m2 = delta[j]
        if shift <= tol:
            break
        for j in range(k):  # half the distance from each center to its nearest other center
            dist[:] = 0.0
            for d in range(dim):
                row = ct[d]
                v = row[j]
                for q in range(k):
                    t = row[q] - v
                    dist[q] += t * t
            dist[j] = np.inf
            half[j] = 0.5 * np.sqrt(dist.min())
        changed = 0
        for i in range(p):
            j = a[i]
            up[i] += delta[j]
            lo[i] -= m2 if j == jm else m1
            bound = max(half[j], lo[i])
            if up[i] <= bound:
                continue
            s = 0.0
            for d in range(dim):
                t = xt[d, i] - ct[d, j]
                s += t * t
            up[i] = np.sqrt(s)
            if up[i] <= bound:
                continue
            b, d1, d2 = _scan(xt, i, ct, dist)
            if b != j:
                changed += 1
                a[i] = b
            up[i], lo[i] = np.sqrt(d1), np.sqrt(d2)
        if changed == 0:
            break
    inertia = 0.0
    for i in range(p):
        s = 0.0
        for d in range(dim):
            t = xt[d, i] - ct[d, a[i]]
            s += t * t
        inertia += w[i] * s
    return ct, a, inertia, n_iter


@njit(cache=True, nogil=True)
def nearest(xt, ct):
    """Index of the nearest center (DxK) for each point of ``xt`` (DxP), ties to the lower index.

    For integer-valued inputs up to 255 the float32 distances are exact.
    """
    dim, k = ct.shape
    p = xt.shape[1]
    c32 = ct.astype(np.float32)
    dist = np.empty(k, np.float32)
    out = np.empty(p, np.int32)
    for i in range(p):
        dist[:] = 0.0
        for d in range(dim):
            v = np.float32(xt[d, i])
            row = c32[d]
            for j in range(k):
                t = v - row[j]
                dist[j] += t * t
        b, best = 0, dist[0]
        for j in range(1, k):
            if dist[j] < best:
                b, best = j, dist[j]
        out[i] = b
    return out


@njit(cache=True, nogil=True)
def unique_keys(keys, nkeys):
    """Distinct values of ``keys`` (N, each < nkeys) in ascending order: (values U, counts U,
    index into the values of each key N)."""
    lut = np.zeros(nkeys, np.int32)
    for i in range(keys.size):
        lut[keys[i]] = 1
    u = 0
    for v in range(nkeys):
        if lut[v]:
            lut[v] = u
            u += 1
    values = np.empty(u, np.uint32)
    counts = np.zeros(u, np.int64)
    inverse = np.empty(keys.size, np.int32)
    for i in range(keys.size):
        j = lut[keys[i]]
        inverse[i] = j
        counts[j] += 1
        values[j] = keys[i]
    return values, counts, inverse
