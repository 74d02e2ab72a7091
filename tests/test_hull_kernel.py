"""adapters.hull_kernel: the compiled upper hull gives the Python loop's bridge edges exactly."""

from __future__ import annotations

import itertools

import numpy as np

from adapters.hull_kernel import hull_edges


def _reference(xs: np.ndarray, fs: np.ndarray, tol: float) -> list[tuple[int, int]]:
    """The loop ``adapters.envelope._hull_bridges`` ran before the kernel (NumPy scalars)."""
    hull: list[int] = []
    for i in range(len(xs)):
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (xs[a] - xs[o]) * (fs[i] - fs[o]) - (fs[a] - fs[o]) * (xs[i] - xs[o])
            if cross >= 0.0:
                hull.pop()
            else:
                break
        hull.append(i)
    edges = []
    for a, b in itertools.pairwise(hull):
        if b - a > 1:
            chord = fs[a] + (xs[a + 1 : b] - xs[a]) * (fs[b] - fs[a]) / (xs[b] - xs[a])
            if np.max(chord - fs[a + 1 : b]) > tol:
                edges.append((a, b))
    return edges


def test_kernel_edges_equal_the_python_loop_on_random_and_degenerate_curves() -> None:
    rng = np.random.default_rng(7)
    cases: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(400):
        n = int(rng.integers(0, 160))
        xs = np.sort(rng.uniform(0.0, 1e9, n))
        kind = rng.integers(0, 4)
        if kind == 0:  # concave: no bridge
            fs = np.sqrt(xs)
        elif kind == 1:  # a kinked income with a second hump (Aave above its kink)
            fs = xs * np.where(xs < 4e8, 1e-9 * xs, 0.4 + 0.2 * np.sin(xs / 5e7))
        else:  # noise: many hull edges
            fs = rng.normal(0.0, 1.0, n) * 10.0 ** rng.uniform(-3, 9)
        cases.append((xs, fs))
    nan = np.sort(rng.uniform(0.0, 10.0, 40))
    fnan = rng.normal(0.0, 1.0, 40)
    fnan[17] = np.nan
    cases += [(nan, fnan), (np.array([0.0, 1.0, 1.0, 2.0]), np.array([0.0, 5.0, -1.0, 0.0]))]
    bridged = 0
    for xs, fs in cases:
        for tol in (0.0, 1e-9 * max(float(np.nanmax(np.abs(fs), initial=0.0)), 1e-300)):
            want = _reference(xs, fs, tol)
            got = [tuple(e) for e in hull_edges(xs, fs, tol).tolist()]
            assert got == want, (xs, fs, tol)
            bridged += bool(want)
    assert bridged > 100  # the sample exercises the bridged path, not only concave curves
    # column views (a stride other than one) give the same edges
    m = np.stack([cases[5][0], cases[5][1]], axis=1)
    assert hull_edges(m[:, 0], m[:, 1], 0.0).tolist() == [
        list(e) for e in _reference(*cases[5], 0.0)
    ]
