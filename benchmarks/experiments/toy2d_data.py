"""The three 2-D toy distributions of R. Yu, "A Tutorial on VAEs: From Bayes' Rule to Lossless Compression"
(arXiv:2006.10273, 2020), Sec. 6, with exact samplers, exact densities and their entropies.

Scaling: the usual generators of these sets (8 Gaussians, Checkerboard, 2 Spirals, as in the flow literature)
live in the box [-4, 4]^2; here their coordinates are divided by 8 (8 Gaussians, Checkerboard) and by 8.44
(2 Spirals), so the data live in about [-0.5, 0.5]^2. In bits (log base 2) the entropies are then -1.915 (8
Gaussians), exactly -1 (Checkerboard) and -2.34 (2 Spirals) per data point, the tutorial's entropy column (-1.92,
-1, -2.34; it states no units): the checkerboard's exact -1 pins down base 2 and the unit box; the same /8 puts the
8 Gaussians within 0.005 of the tutorial; the spirals' divisor 8.44 (not 8, which gives -2.186) was chosen to match
its -2.34, since its spiral generator is not known. See ``entropy_bits``.

Shapes: samples and query points are float64 arrays (N, 2); densities are per point, (N,), in 1/area units of the
scaled data; ``log_density`` is in nats. All three distributions are plain numpy (no torch).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

SCALE = 1.0 / 8.0  # from the generators' [-4, 4]^2 box to about [-0.5, 0.5]^2
SPIRAL_SCALE = 1.0 / 8.44  # H = -2.1856 +- 0.0023 bits at 1/8 (200k samples); 2 log2(8 / 8.44) = -0.1545 more


class EightGaussians:
    """Equal mixture of 8 isotropic Gaussians, means on a circle of radius 2 sqrt(2) / 8, std 0.5 / sqrt(2) / 8."""

    name = "8 Gaussians"
    key = "8gaussians"

    def __init__(self):
        angles = np.arange(8) * (math.pi / 4)
        self.radius = 2.0 * math.sqrt(2.0) * SCALE
        self.std = 0.5 / math.sqrt(2.0) * SCALE
        self.centers = self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8, 2)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.integers(0, 8, size=n)
        return self.centers[k] + self.std * rng.standard_normal((n, 2))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        d2 = np.maximum((x * x).sum(1, keepdims=True) - 2 * x @ self.centers.T + (self.centers ** 2).sum(1), 0)  # (N, 8)
        log_comp = -d2 / (2 * self.std ** 2) - math.log(2 * math.pi * self.std ** 2)
        m = log_comp.max(1, keepdims=True)
        return (m[:, 0] + np.log(np.exp(log_comp - m).mean(1)))


class Checkerboard:
    """Uniform on the 8 cells (i + j even) of a 4x4 board of cells of side 0.25 covering [-0.5, 0.5]^2.

    Density 2 on its support of area 1/2, so the entropy is exactly -1 bit."""

    name = "Checkerboard"
    key = "checkerboard"
    cell = 0.25

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        i = rng.integers(0, 4, size=n)
        j = 2 * rng.integers(0, 2, size=n) + (i % 2)  # i + j even
        corner = np.stack([i, j], axis=1) * self.cell - 0.5
        return corner + self.cell * rng.random((n, 2))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        ij = np.floor((x + 0.5) / self.cell)
        inside = np.all((ij >= 0) & (ij <= 3), axis=1) & ((ij.sum(1) % 2) == 0)
        return np.where(inside, math.log(2.0), -np.inf)


class TwoSpirals:
    """Two opposite noisy spirals.

    Generator (before scaling): t ~ U(0, 1), n = 3 pi sqrt(t), c = (-n cos n, n sin n); u ~ U[0, 0.5]^2; a sign s = +-1
    with probability 1/2; x = s (c + u) / 3 + N(0, 0.1^2 I); then x * SPIRAL_SCALE. Given (t, s) each coordinate is a
    uniform interval of width 0.5 / 3 * SPIRAL_SCALE convolved with a Gaussian, whose density is a difference of normal
    CDFs; the density of x is that product averaged over t (midpoint rule with ``nodes`` points, exact in t's
    measure because n = 3 pi sqrt(t) makes the spiral's arc length nearly uniform in t) and over s.
    """

    name = "2 Spirals"
    key = "2spirals"

    def __init__(self, nodes: int = 1000):
        self.width = 0.5 / 3 * SPIRAL_SCALE
        self.noise = 0.1 * SPIRAL_SCALE
        t = (np.arange(nodes) + 0.5) / nodes
        n = 3 * math.pi * np.sqrt(t)
        self.curve = np.stack([-n * np.cos(n), n * np.sin(n)], axis=1) / 3 * SPIRAL_SCALE  # (nodes, 2)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        t = rng.random(n)
        r = 3 * math.pi * np.sqrt(t)
        c = np.stack([-r * np.cos(r), r * np.sin(r)], axis=1)
        u = 0.5 * rng.random((n, 2))
        s = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
        return (s * (c + u) / 3 + 0.1 * rng.standard_normal((n, 2))) * SPIRAL_SCALE

    def _interval_density(self, x: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Density of U[lo, lo + width] + N(0, noise^2) at x; x (N, 1), lo (1, M) -> (N, M)."""
        return (ndtr((x - lo) / self.noise) - ndtr((x - lo - self.width) / self.noise)) / self.width

    def density(self, x: np.ndarray, chunk: int = 2000) -> np.ndarray:
        out = np.empty(len(x))
        for a in range(0, len(x), chunk):
            xb = x[a:a + chunk]
            total = 0.0
            for s in (1.0, -1.0):
                # s (c + u) / 3 * SCALE is uniform on [s c', s c' + s w]; for s = -1 the interval starts at -c' - w
                lo = s * self.curve if s > 0 else -self.curve - self.width
                total = total + (self._interval_density(xb[:, :1], lo[None, :, 0])
                                 * self._interval_density(xb[:, 1:], lo[None, :, 1])).mean(1)
            out[a:a + chunk] = 0.5 * total
        return out

    def log_density(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.density(x))


DISTRIBUTIONS = {d.key: d for d in (EightGaussians, Checkerboard, TwoSpirals)}


def make(key: str):
    """A fresh instance of the distribution named ``key`` ('8gaussians', 'checkerboard', '2spirals')."""
    return DISTRIBUTIONS[key]()


def entropy_bits(dist, n: int = 200_000, seed: int = 0) -> tuple[float, float, str]:
    """Differential entropy of ``dist`` in bits per data point: (value, standard error, how it was computed).

    Checkerboard: exact, log2 of the support's area (1/2). 8 Gaussians: -integral p log2 p by the midpoint rule on
    a 1201 x 1201 grid over [-0.8, 0.8]^2 (the density integrates to 1 within 1e-12 there; the components overlap
    slightly, so H is 0.009 below the separated-components value 3 + log2(2 pi e std^2) = -1.906). 2 Spirals: Monte
    Carlo, -mean(log2 p(x)) over ``n`` exact samples with the exact density, with its standard error."""
    if isinstance(dist, Checkerboard):
        return -1.0, 0.0, "exact: log2 of the support's area 1/2"
    if isinstance(dist, EightGaussians):
        g = (np.arange(1201) + 0.5) / 1201 * 1.6 - 0.8
        h = g[1] - g[0]
        xx, yy = np.meshgrid(g, g)
        lp = dist.log_density(np.stack([xx.ravel(), yy.ravel()], 1))
        return float(-(np.exp(lp) * lp).sum() * h * h / math.log(2)), 0.0, "numerical integration, 1201^2 grid"
    x = dist.sample(n, np.random.default_rng(seed))
    lp = dist.log_density(x) / math.log(2)
    return float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(n)), f"Monte Carlo, {n:,} exact samples, exact density"
