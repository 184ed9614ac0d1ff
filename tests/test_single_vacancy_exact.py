"""Exact single-vacancy correlation factor of a finite periodic box
(:func:`kmc.validate.single_vacancy_f_exact`).

Checked against results nobody here wrote: the ring of N sites (f = 1/(N - 1) exactly, the
winding argument of :func:`kmc.validate.ring_f_exact`) and, as the box grows, the infinite-lattice
values of Compaan & Haven / Trinkle (:data:`kmc.validate.EXACT_CORRELATION_FACTORS`), approached
as 1/N. The engine itself is compared with the finite-box value in tests/validation.
"""
import pytest

from kmc.validate import EXACT_CORRELATION_FACTORS, ring_f_exact, single_vacancy_f_exact, vacancy_network


@pytest.mark.parametrize("n_sites", [3, 4, 5, 8, 16, 33])
def test_ring_of_n_sites_gives_one_over_n_minus_one(n_sites):
    f = single_vacancy_f_exact(vacancy_network("chain", (n_sites, 1, 1)))
    assert f == pytest.approx(1.0 / (n_sites - 1), rel=1e-9)


def test_ring_agrees_with_the_long_time_winding_sum():
    # the finite-time winding sum tends to the same limit (its excess over 1/(N-1) falls as
    # 1/hops; here below 2 %)
    n = 8
    assert ring_f_exact(n, 200 * (n - 1) ** 2) == pytest.approx(
        single_vacancy_f_exact(vacancy_network("chain", (n, 1, 1))), rel=0.02)


# growing boxes; the last two are used for a 1/N (Richardson) extrapolation
SIZES = {
    "square": [4, 8, 16, 32, 72], "triangular": [4, 8, 16, 32, 72],
    "honeycomb": [4, 8, 16, 36, 52],
    "sc": [3, 4, 6, 8, 12, 16], "bcc": [3, 4, 6, 10, 12], "fcc": [2, 3, 4, 8, 10],
    "diamond": [2, 3, 4, 6, 8],
}


@pytest.mark.parametrize("lattice", list(SIZES))
def test_finite_box_converges_to_the_infinite_lattice_as_one_over_n(lattice):
    exact = EXACT_CORRELATION_FACTORS[lattice]
    dims = 2 if lattice in ("square", "triangular", "honeycomb") else 3
    n_sites, f = [], []
    for m in SIZES[lattice]:
        net = vacancy_network(lattice, (m, m, 1) if dims == 2 else (m, m, m))
        n_sites.append(net.n_sites)
        f.append(single_vacancy_f_exact(net))
    excess = [(x - exact) / exact for x in f]
    print(lattice, [f"N={n}: {100 * e:+.4f} %" for n, e in zip(n_sites, excess)])
    # one vacancy in a box of N sites correlates the tracer less: f lies above the infinite
    # value and falls monotonically towards it
    assert all(e > 0 for e in excess)
    assert all(a > b for a, b in zip(excess, excess[1:]))
    assert excess[-1] < 5e-4                   # the largest box (>= 4000 sites) within 0.05 %
    # the excess is c/N: N * excess changes by < 5 % between the two largest boxes (observed
    # < 1.4 %), and the 1/N extrapolation of the two lands on the infinite value (observed
    # within 1e-5 relative)
    c1, c2 = n_sites[-2] * excess[-2], n_sites[-1] * excess[-1]
    assert abs(c1 - c2) < 0.05 * c2
    n1, n2 = n_sites[-2:]
    extrapolated = (n2 * f[-1] - n1 * f[-2]) / (n2 - n1)
    assert extrapolated == pytest.approx(exact, rel=3e-5)
