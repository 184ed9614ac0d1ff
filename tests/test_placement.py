"""The compiled hard-core placement (kmc.engine.placement): valid arrangements only, the local
search reaches close packing, its choices are unbiased where symmetry fixes the answer, and it
gives the same arrangement in a worker thread as in the main thread."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kmc.engine import placement
from kmc.engine.placement import JammedError, place_hard_core


def ring(n: int) -> list[np.ndarray]:
    """Sites on a ring; neighbours exclude each other."""
    return [np.array([(i - 1) % n, (i + 1) % n]) for i in range(n)]


def test_close_packed_ring_gives_both_arrangements_equally_often():
    """n/2 particles on a ring of n with nearest-neighbour exclusion: only the two alternating
    arrangements are valid. Random sequential placement almost always jams below n/2, so the
    local search does the work; the process is symmetric under a rotation by one site, which
    swaps the two arrangements, so each must come out with probability 1/2."""
    n, runs = 12, 400
    even = 0
    for seed in range(runs):
        occ = place_hard_core(n, ring(n), np.zeros(n, bool), n // 2, np.random.default_rng(seed))
        assert occ.sum() == n // 2 and not np.any(occ & np.roll(occ, 1))
        even += bool(occ[0])
    p, se = even / runs, 0.5 / np.sqrt(runs)
    assert abs(p - 0.5) < 4 * se


def test_the_local_search_is_what_reaches_close_packing(monkeypatch):
    n = 12
    monkeypatch.setattr(placement, "SEARCH_STEPS_PER_PARTICLE", 0)
    monkeypatch.setattr(placement, "SEARCH_STEPS_EXTRA", 0)
    jammed = 0
    for seed in range(20):
        try:
            place_hard_core(n, ring(n), np.zeros(n, bool), n // 2, np.random.default_rng(seed))
        except JammedError as e:
            assert e.placed < n // 2
            jammed += 1
    assert jammed >= 15   # sequential placement alone rarely packs the ring


def test_fixed_sites_and_csr_input():
    n = 30
    nb = ring(n)
    fixed = np.zeros(n, bool)
    fixed[[0, 7]] = True
    off = np.concatenate([[0], np.cumsum([len(x) for x in nb])])
    a = place_hard_core(n, nb, fixed, 12, np.random.default_rng(3))
    b = place_hard_core(n, (off, np.concatenate(nb)), fixed, 12, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.sum() == 12 and not (a & fixed).any()
    taken = a | fixed
    assert not np.any(taken & np.roll(taken, 1))
    with pytest.raises(JammedError):
        place_hard_core(n, nb, fixed, 15, np.random.default_rng(3))   # 14 at most with 0, 7 taken


def test_same_arrangement_in_worker_threads():
    n = 200
    seeds = range(8)
    serial = [place_hard_core(n, ring(n), np.zeros(n, bool), 90, np.random.default_rng(s))
              for s in seeds]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda s: place_hard_core(n, ring(n), np.zeros(n, bool), 90,
                                                           np.random.default_rng(s)), seeds))
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded, strict=True))
