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
        self.depth = cap.bit_length() - 1
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

    cdef void set_ancestors(self, int32_t* leaves, Py_ssize_t k) noexcept nogil:
        # Bring every ancestor of the k distinct leaves (site indices, values already stored) up
        # to date, each once: the leaves of one hop share most of their ancestors, which
        # separate root paths would recompute once per leaf.  The same nodes as set() gives,
        # bit for bit: each is left + right of its final children.  leaves[] is overwritten
        # (the leaves whose climbs are needed).  A node waiting to be recomputed holds -1.0
        # meanwhile (a sum of rates is never negative).
        cdef double* t = &self.tree[0]
        cdef Py_ssize_t i, n = 0, j
        cdef Py_ssize_t cap = self.cap
        cdef double v, w, t0
        if cap == 1:
            return            # the leaf is the root
        if self.depth <= 17 or k * self.depth < 160:
            # One root path per leaf (as set() climbs, 6-7.5 instructions a level): also exact,
            # since a node's last update comes from the last of its changed leaves, when all its
            # children are final.  It computes shared ancestors again and again, but its loops
            # have fixed lengths, where the two passes below stop at data-dependent nodes that
            # the CPU mispredicts (callgrind --branch-sim, sc 32^3 nn: 39 a hop).  Measured on
            # the sc nn models (docs/performance.md): the climbs are faster up to 2^17 leaves
            # (32^3 nn 1.3x, three shells 1.3x, 48^3 1.15x), the two passes at 2^18 (64^3 nn,
            # 1.04x), where the fewer nodes they load matter more; with few leaves the climbs are
            # also fewer instructions (below about 160 leaf-levels).
            for i in range(k):
                j = leaves[i] + cap
                v = t[j]
                if self.depth & 1:
                    v = v + t[j ^ 1]
                    j >>= 1
                    t[j] = v
                while j > 1:     # two levels per turn (the depth left is even)
                    v = v + t[j ^ 1]
                    j >>= 1
                    t[j] = v
                    v = v + t[j ^ 1]
                    j >>= 1
                    t[j] = v
            return
        # Two passes, without a queue.  The first marks every ancestor as waiting, climbing
        # from each leaf only up to the first node already marked, and drops a leaf whose
        # sibling leaf is listed (the sibling's climb will recompute their parent).  The second
        # climbs from each kept leaf, recomputing nodes as value + sibling (IEEE addition
        # commutes: the same double as left + right), and stops below a waiting sibling: the
        # climb that recomputes that sibling goes on to the parent, then with both children
        # final.  Node 0 (unused) is a waiting sentinel above the root that ends both climbs.
        t0 = t[0]
        t[0] = -1.0
        for i in range(k):
            j = (leaves[i] + cap) >> 1
            if t[j] < 0.0:
                continue
            leaves[n] = leaves[i]
            n += 1
            while t[j] >= 0.0:
                t[j] = -1.0
                j >>= 1
        for i in range(n):
            j = leaves[i] + cap
            v = t[j]
            while True:
                w = t[j ^ 1]
                if w < 0.0:
                    break
                v = v + w
                j >>= 1
                t[j] = v
        t[0] = t0

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

    def update_many(self, leaves, values):
        """Set the distinct leaves ``leaves`` to ``values`` (each >= 0) at once."""
        idx = np.ascontiguousarray(leaves, dtype=np.int32).copy()
        val = np.asarray(values, dtype=np.float64)
        if idx.shape != val.shape or len(set(idx.tolist())) != idx.shape[0]:
            raise ValueError("update_many needs as many values as distinct leaves")
        if idx.shape[0] and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError("leaf out of range")
        if not np.all(val >= 0.0):
            raise ValueError("sum-tree weights must be non-negative")
        cdef int32_t[::1] iv = idx
        cdef Py_ssize_t i
        for i in range(idx.shape[0]):
            self.tree[self.cap + iv[i]] = val[i]
        if idx.shape[0]:
            self.set_ancestors(&iv[0], idx.shape[0])

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
