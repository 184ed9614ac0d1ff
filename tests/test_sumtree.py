"""The sum tree against numpy cumsum/searchsorted on random data."""
import numpy as np
import pytest

from kmc.engine._sumtree import SumTree


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_select_matches_searchsorted(n):
    rng = np.random.default_rng(n)
    w = rng.random(n) * (rng.random(n) < 0.7)  # some zero weights
    if w.sum() == 0:
        w[0] = 1.0
    tree = SumTree(n)
    for i, x in enumerate(w):
        tree.update(i, x)
    cum = np.cumsum(w)
    assert tree.sum == pytest.approx(cum[-1], rel=1e-13)
    for u in rng.random(2000) * cum[-1]:
        leaf, rem = tree.select(u)
        expect = int(np.searchsorted(cum, u, side="right"))
        # ties at interval boundaries can differ by rounding only when u sits on a boundary
        assert leaf == expect or abs(u - cum[min(expect, n - 1)]) < 1e-12
        assert w[leaf] > 0
        assert 0 <= rem <= w[leaf] * (1 + 1e-12)


def test_updates_and_rebuild_are_identical():
    rng = np.random.default_rng(5)
    tree = SumTree(300)
    for _ in range(5000):
        tree.update(int(rng.integers(300)), float(rng.random() * (rng.random() < 0.8)))
    before = tree.nodes()
    tree.full_rebuild()
    assert np.array_equal(before, tree.nodes())  # no drift: every node is exactly left + right


# 200000 leaves: a tree of 2^18, where update_many takes the two passes (smaller trees climb)
@pytest.mark.parametrize("n", [1, 2, 5, 300, 40000, 200000])
def test_batched_updates_equal_single_updates_bit_for_bit(n):
    """update_many (the engine's one update per hop: each leaf climbs its root path, or on trees
    of more than 2^17 leaves many leaves update their shared ancestors once, in two passes)
    leaves every node equal to single updates and to a full rebuild."""
    rng = np.random.default_rng(n)
    one, many = SumTree(n), SumTree(n)
    for _ in range(60):
        k = int(rng.integers(1, min(n, 40) + 1))
        centre = int(rng.integers(n))
        leaves = np.unique((centre + rng.integers(-3000, 3000, size=k)) % n)  # clustered
        values = rng.random(leaves.size) * (rng.random(leaves.size) < 0.8)
        for i, x in zip(leaves, values):
            one.update(int(i), float(x))
        order = rng.permutation(leaves.size)  # in any order
        many.update_many(leaves[order], values[order])
        assert np.array_equal(one.nodes(), many.nodes())
    many.full_rebuild()
    assert np.array_equal(one.nodes(), many.nodes())


@pytest.mark.parametrize("n", [5000, 200000])
@pytest.mark.parametrize("k", [12, 13, 64, 301])
def test_batched_update_of_adjacent_leaves(k, n):
    """Runs of neighbouring leaves (sibling leaves both changed, ancestors shared at every
    level) through the climbs (5000 leaves) and the two-pass update (200000): every node, node 0
    included, equals single updates."""
    rng = np.random.default_rng(k)
    one, many = SumTree(n), SumTree(n)
    for _ in range(20):
        start = int(rng.integers(n - k))
        leaves = np.arange(start, start + k)
        leaves = leaves[rng.random(k) < 0.9]
        values = rng.random(leaves.size)
        for i, x in zip(leaves, values):
            one.update(int(i), float(x))
        order = rng.permutation(leaves.size)
        many.update_many(leaves[order], values[order])
        assert np.array_equal(one.nodes(), many.nodes())


def test_never_selects_zero_weight_leaf_at_the_top_edge():
    tree = SumTree(5)
    for i, x in enumerate([0.1, 0.2, 0.3, 0.0, 0.0]):
        tree.update(i, x)
    leaf, _ = tree.select(np.nextafter(tree.sum, 0))
    assert leaf == 2
    leaf, _ = tree.select(tree.sum * (1 + 1e-15))  # rounding past the end
    assert leaf == 2


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        SumTree(0)
    tree = SumTree(3)
    with pytest.raises(IndexError):
        tree.update(3, 1.0)
    with pytest.raises(ValueError):
        tree.update(0, -1.0)
    with pytest.raises(ValueError):
        tree.update(0, float("nan"))
