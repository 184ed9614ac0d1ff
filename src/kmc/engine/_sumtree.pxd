# Typed interface of the binary sum tree (cimported by the engine).
from libc.stdint cimport int32_t

cdef extern from *:
    # GCC/Clang builtin: start loading a cache line, never faults (the engine cimports it too)
    void __builtin_prefetch(const void* addr) nogil

cdef class SumTree:
    cdef double[::1] tree        # 2 * cap nodes; node 1 is the root, leaves at cap .. cap + n - 1
    cdef readonly Py_ssize_t n   # number of leaves in use
    cdef readonly Py_ssize_t cap  # power of two >= n, so leaf order equals prefix-sum order
    cdef Py_ssize_t depth         # log2(cap): levels between a leaf and the root

    cdef void set(self, Py_ssize_t i, double value) noexcept nogil
    cdef void set_ancestors(self, int32_t* leaves, Py_ssize_t k) noexcept nogil
    cdef inline void prefetch(self, Py_ssize_t i) noexcept nogil:
        # Start loading what set(i) will touch: the leaf and, from 2^15 leaves (a 512 KiB tree
        # that shares L2 with the network) on, its eight lowest ancestors; the few thousand
        # nodes above them stay cached.  Marking all sites of a hop first and updating them
        # after lets these misses overlap instead of queueing.
        cdef Py_ssize_t j = i + self.cap
        cdef Py_ssize_t k
        cdef double* t = &self.tree[0]
        __builtin_prefetch(&t[j])
        if self.cap >= 32768:
            for k in range(8):
                j >>= 1
                __builtin_prefetch(&t[j])

    cdef Py_ssize_t find(self, double u, double* rem) noexcept nogil
    cdef double total(self) noexcept nogil
    cdef void rebuild(self) noexcept nogil
