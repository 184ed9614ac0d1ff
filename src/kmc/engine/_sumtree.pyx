"""Binary sum tree over non-negative weights: O(log n) update and proportional selection.

Every internal node is always recomputed as ``left + right`` (never updated by adding deltas), so
the tree holds no accumulated rounding drift: a full :meth:`rebuild` reproduces it bit for bit.
"""
import numpy as np


cdef class SumTree:
    def __init__(self, Py_ssize_t n):
        if n < 1:
            raise ValueError("a sum tree needs at least one leaf")
        cdef Py_ssize_t cap = 1
        while cap < n:
            cap <<= 1
        self.n = n
        self.cap = cap
        # node j's descendants four levels down are the 16 nodes 16j .. 16j + 15; align the
        # array so that they are exactly two cache lines (see find)
        buf = np.zeros(2 * cap + 16, dtype=np.float64)
        off = (-buf.ctypes.data % 128) // 8
        self.tree = buf[off:off + 2 * cap]

    cdef void set(self, Py_ssize_t i, double value) noexcept nogil:
        # Carry the running sum in a register and only load siblings: no store->load chain.
        # IEEE addition is commutative, so v + sibling equals left + right bit for bit.
        cdef Py_ssize_t j = i + self.cap
        cdef double v = value
        cdef double* t = &self.tree[0]
        t[j] = v
        while j > 1:
            v = v + t[j ^ 1]
            j >>= 1
            t[j] = v

    cdef Py_ssize_t find(self, double u, double* rem) noexcept nogil:
        # Leaf whose cumulative interval [S_{i-1}, S_i) holds u; ``rem`` gets u - S_{i-1}.
        # Rounding can leave u at or beyond a subtree's sum: never step into an empty subtree.
        cdef Py_ssize_t j = 1
        cdef double left
        cdef bint right
        cdef double* t = &self.tree[0]
        cdef Py_ssize_t far = 2 * self.cap
        while j < self.cap:
            # A descent is a chain of dependent loads; on a large tree each level below the
            # cache is a miss.  Prefetching the node's 16 descendants four levels down keeps
            # four misses in flight instead of one (Khuong & Morin, ACM JEA 22, 2017).
            if 16 * j < far:
                __builtin_prefetch(&t[16 * j])
                __builtin_prefetch(&t[16 * j + 8])
            left = t[2 * j]
            # branch-free descent: the direction is data, not a (mispredicted) branch
            right = (u >= left) & (t[2 * j + 1] > 0.0)
            u -= left * right
            j = 2 * j + right
        rem[0] = u
        return j - self.cap

    cdef double total(self) noexcept nogil:
        return self.tree[1]

    cdef void rebuild(self) noexcept nogil:
        cdef Py_ssize_t j
        for j in range(self.cap - 1, 0, -1):
            self.tree[j] = self.tree[2 * j] + self.tree[2 * j + 1]

    # --- Python shim, used by the tests to check the C-level methods against numpy ---
    def update(self, Py_ssize_t i, double value):
        """Set leaf ``i`` to ``value`` (must be >= 0)."""
        if not 0 <= i < self.n:
            raise IndexError(f"leaf {i} out of range 0..{self.n - 1}")
        if not value >= 0.0:
            raise ValueError("sum-tree weights must be non-negative")
        self.set(i, value)

    def select(self, double u):
        """Return ``(leaf, remainder)`` for ``0 <= u < total``."""
        cdef double rem = 0.0
        cdef Py_ssize_t i = self.find(u, &rem)
        return i, rem

    @property
    def sum(self):
        return self.total()

    @property
    def values(self):
        return np.asarray(self.tree)[self.cap:self.cap + self.n].copy()

    def full_rebuild(self):
        self.rebuild()

    def nodes(self):
        return np.asarray(self.tree).copy()
