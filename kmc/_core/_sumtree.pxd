# Typed interface of the binary sum tree (cimported by the engine).

cdef class SumTree:
    cdef double[::1] tree        # 2 * cap nodes; node 1 is the root, leaves at cap .. cap + n - 1
    cdef readonly Py_ssize_t n   # number of leaves in use
    cdef readonly Py_ssize_t cap  # power of two >= n, so leaf order equals prefix-sum order

    cdef void set(self, Py_ssize_t i, double value) noexcept nogil
    cdef Py_ssize_t find(self, double u, double* rem) noexcept nogil
    cdef double total(self) noexcept nogil
    cdef void rebuild(self) noexcept nogil
