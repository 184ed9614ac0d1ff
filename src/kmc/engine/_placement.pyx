"""Compiled hard-core placement (:func:`kmc.engine.placement.place_hard_core`): random sequential
placement along a given site order, then the local search that unjams it, on the caller's numpy
random stream.

The draws are numpy's own: ``Generator.integers(n)`` (Lemire's bounded method on 32-bit outputs,
as ``random_bounded_uint64_fill``) and ``Generator.shuffle`` of a list (``random_interval``,
masked rejection), taken from the same ``bitgen_t``. So the compiled search makes exactly the
choices the earlier pure-Python loop made with the same Generator, and runs without the GIL.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from cpython.pycapsule cimport PyCapsule_GetPointer
from numpy.random cimport bitgen_t

import numpy as np

cdef uint64_t _U32 = 0xFFFFFFFFUL


cdef inline uint64_t _interval(bitgen_t* bg, uint64_t mx) noexcept nogil:
    # a uniform integer in [0, mx]: numpy's random_interval (used by shuffle)
    cdef uint64_t mask = mx, value
    if mx == 0:
        return 0
    mask |= mask >> 1
    mask |= mask >> 2
    mask |= mask >> 4
    mask |= mask >> 8
    mask |= mask >> 16
    mask |= mask >> 32
    if mx <= _U32:
        while True:
            value = bg.next_uint32(bg.state) & mask
            if value <= mx:
                return value
    while True:
        value = bg.next_uint64(bg.state) & mask
        if value <= mx:
            return value


cdef inline uint64_t _below(bitgen_t* bg, uint64_t n) noexcept nogil:
    # a uniform integer in [0, n), 1 <= n <= 2**32: numpy's Generator.integers(n)
    cdef uint64_t rng = n - 1, m
    cdef uint32_t rng_excl, leftover, threshold
    if rng == 0:
        return 0
    if rng == _U32:
        return bg.next_uint32(bg.state)
    rng_excl = <uint32_t>(rng + 1)
    m = <uint64_t>bg.next_uint32(bg.state) * rng_excl
    leftover = <uint32_t>(m & _U32)
    if leftover < rng_excl:
        threshold = (<uint32_t>_U32 - <uint32_t>rng) % rng_excl
        while leftover < threshold:
            m = <uint64_t>bg.next_uint32(bg.state) * rng_excl
            leftover = <uint32_t>(m & _U32)
    return m >> 32


cdef inline bint _free(int64_t s, uint8_t[::1] occ, uint8_t[::1] fixed,
                       int64_t[::1] count) noexcept nogil:
    return occ[s] == 0 and fixed[s] == 0 and count[s] == 0


cdef inline void _set(int64_t s, int64_t d, uint8_t[::1] occ, int64_t[::1] count,
                      int64_t[::1] off, int32_t[::1] nbr) noexcept nogil:
    cdef int64_t k
    occ[s] = 1 if d > 0 else 0
    for k in range(off[s], off[s + 1]):
        count[nbr[k]] += d


def place(int64_t[::1] off, int32_t[::1] nbr, uint8_t[::1] fixed, int64_t[::1] order,
          int64_t[::1] open_sites, int64_t n_free, int64_t max_steps, bit_generator):
    """Place ``n_free`` particles: sequentially along ``order``, then at most ``max_steps`` local
    search steps drawing from ``bit_generator``. Returns ``(occupied mask, placed)``."""
    cdef int64_t n_sites = fixed.shape[0], n_open = open_sites.shape[0]
    cdef int64_t i, j, k, a, b, s, n_cand, step, placed = 0, tmp, max_deg = 0
    cdef bint found, excluded
    if <uint64_t>n_open > _U32:
        raise ValueError("too many sites for the compiled placement (at most 2**32 - 1)")
    for i in range(n_sites):
        max_deg = max(max_deg, off[i + 1] - off[i])
    occ_a = np.zeros(n_sites, dtype=np.uint8)
    cand_a = np.zeros(max_deg + 1, dtype=np.int64)
    count_a = np.zeros(n_sites, dtype=np.int64)
    cdef uint8_t[::1] occ = occ_a
    cdef int64_t[::1] cand = cand_a, count = count_a
    cdef bitgen_t* bg = <bitgen_t*> PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    with bit_generator.lock, nogil:
        for i in range(n_sites):
            if fixed[i]:
                for k in range(off[i], off[i + 1]):
                    count[nbr[k]] += 1
        for i in range(order.shape[0]):  # random sequential
            if placed == n_free:
                break
            s = order[i]
            if _free(s, occ, fixed, count):
                _set(s, 1, occ, count, off, nbr)
                placed += 1
        step = 0
        while placed < n_free and step < max_steps:
            step += 1
            s = open_sites[_below(bg, <uint64_t>n_open)]
            if not occ[s]:
                continue
            _set(s, -1, occ, count, off, nbr)
            # candidates: s and its excluded neighbours that are free now, in that order
            n_cand = 0
            if _free(s, occ, fixed, count):
                cand[n_cand] = s
                n_cand += 1
            for k in range(off[s], off[s + 1]):
                if _free(nbr[k], occ, fixed, count):
                    cand[n_cand] = nbr[k]
                    n_cand += 1
            for i in range(n_cand - 1, 0, -1):  # Generator.shuffle of a list
                j = <int64_t>_interval(bg, <uint64_t>i)
                tmp = cand[i]
                cand[i] = cand[j]
                cand[j] = tmp
            found = False
            for i in range(n_cand):  # the first pair that does not exclude itself
                a = cand[i]
                for j in range(i + 1, n_cand):
                    b = cand[j]
                    excluded = False
                    for k in range(off[a], off[a + 1]):
                        if nbr[k] == b:
                            excluded = True
                            break
                    if not excluded:
                        found = True
                        break
                if found:
                    break
            if found:
                _set(a, 1, occ, count, off, nbr)
                _set(b, 1, occ, count, off, nbr)
                placed += 1
            else:  # s itself is always admissible
                _set(cand[_below(bg, <uint64_t>n_cand)], 1, occ, count, off, nbr)
    return occ_a.astype(bool), int(placed)
