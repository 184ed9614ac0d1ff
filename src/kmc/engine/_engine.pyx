"""Rejection-free (residence-time / BKL) kinetic Monte Carlo engine.

The event catalogue is fixed: events are grouped by source site (CSR ``uoff_out``), an impossible
event has rate 0.  A binary :class:`SumTree` over sites holds each site's total outgoing rate; a hop
is drawn by descending the tree (O(log N)) and scanning the few events of the chosen site, whose
rates are evaluated on the spot.  After a hop only the sites whose outgoing rates can depend on the
two sites whose occupancy changed get their totals recomputed; ``_touch`` states the rule that
picks them.  No per-event rate array is kept, which saves memory and the cache misses of scattered
updates (a variant that stored every rate and re-evaluated only the changed events ran more
instructions per hop: re-summing a site's few events in one tight loop is cheaper).  Totals are
always recomputed from scratch, so which sites get re-summed never changes a result, as long as
every site whose total changed is among them.  Interacting models with cell-periodic site energies
re-sum in one specialised loop and, when their fields take few values, read rates from a small
table indexed by the integer field difference (see ``rtab``); the changed leaves update their
shared tree ancestors once (``SumTree.set_ancestors``).

All arrays are owned by Python (``spec`` is static, ``state`` is the dynamic state); the engine holds
typed memoryviews on them.  Pair-interaction fields and exclusion counts are integers (energies in
units of ``QUANTUM_EV``) so they never drift and are rebuilt exactly from the occupancy, which makes
``pickle`` (= checkpoint) restore bit-identical.
"""
from libc.math cimport exp, log, INFINITY
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.pycapsule cimport PyCapsule_GetPointer
from numpy.random cimport bitgen_t

import numpy as np

from kmc.engine._sumtree cimport SumTree, __builtin_prefetch

QUANTUM_EV = 1e-12   # energy quantum of the integer interaction fields
cdef double _QUANTUM = 1e-12


cdef inline int64_t _tab_key(int64_t hq, int tz, uint64_t g_inv) noexcept nogil:
    # rate-table key of an integer field: hq / g exactly (every field is a multiple of the pair
    # energies' common divisor g = 2^tz * odd), as a shift and a multiplication by the odd
    # part's inverse mod 2^64; keys of differences are differences of keys
    return <int64_t> (<uint64_t> (hq >> tz) * g_inv)

cdef inline Py_ssize_t _csr_lo(const int64_t* uoff, Py_ssize_t n_unit, Py_ssize_t per_cell,
                               Py_ssize_t s) noexcept nogil:
    # Engine._lo from locals: the first entry of site s in a cell-tiled CSR array
    cdef Py_ssize_t c
    if n_unit == 1:
        return s * per_cell
    c = s // n_unit
    return c * per_cell + uoff[s - c * n_unit]


cdef inline Py_ssize_t _csr_hi(const int64_t* uoff, Py_ssize_t n_unit, Py_ssize_t per_cell,
                               Py_ssize_t s) noexcept nogil:
    cdef Py_ssize_t c
    if n_unit == 1:
        return (s + 1) * per_cell
    c = s // n_unit
    return c * per_cell + uoff[s - c * n_unit + 1]


cdef inline Py_ssize_t _new_dirty(uint8_t* isd, int32_t* dirty, const double* leaf,
                                  const int32_t* dst, const int64_t* uoff, Py_ssize_t n_unit,
                                  Py_ssize_t per_cell, Py_ssize_t nd, Py_ssize_t p) noexcept nogil:
    # Engine._mark of a site p not yet dirty, from locals: list it and start loading its leaf
    # and its events (no tree ancestors); returns the new number of dirty sites
    isd[p] = 1
    dirty[nd] = <int32_t> p
    __builtin_prefetch(&leaf[p])
    __builtin_prefetch(&dst[_csr_lo(uoff, n_unit, per_cell, p)])
    return nd + 1


cdef inline Py_ssize_t _mark_if_ion(const int8_t* occ, uint8_t* isd, int32_t* dirty,
                                     const double* leaf, Py_ssize_t nd, Py_ssize_t p,
                                     int64_t* marks) noexcept nogil:
    # mark p if it holds an ion, without a branch on that coin toss: p is written to the next
    # free slot of dirty[] (which has one spare) in any case, and the count advances only for a
    # new dirty site; returns the new number of dirty sites and counts the mark
    cdef uint8_t ion = occ[p] == 1
    cdef uint8_t new = ion & (isd[p] ^ 1)
    marks[0] += ion
    __builtin_prefetch(&leaf[p])
    dirty[nd] = <int32_t> p
    isd[p] |= new
    return nd + new


cdef inline Py_ssize_t _mark_occupied(const int8_t* occ, const int32_t* dst, Py_ssize_t lo,
                                      Py_ssize_t hi, uint8_t* isd, int32_t* dirty,
                                      const double* leaf, const int64_t* uoff, Py_ssize_t n_unit,
                                      Py_ssize_t per_cell, Py_ssize_t nd, int64_t* marks,
                                      bint branch_free) noexcept nogil:
    # mark the occupied sites among dst[lo:hi]: for the events of a site x, the occupied
    # sources of the events into x (every event has its reverse); returns the new number of
    # dirty sites and counts the marks.  The same sites in the same order either way.
    # branch_free (the models without exclusions): _mark_if_ion, since whether a neighbour
    # holds an ion is a coin toss the CPU mispredicts often (callgrind --branch-sim, sc 32^3
    # nn: 31 of 132 mispredictions per hop were these two tests; sc 32^3 nn 10-15 % more
    # hops/s).  With exclusions the tests are better predicted and the unconditional stores
    # cost more than they save (c-LLZO 4x4x4, 3 shells: 10 % fewer hops/s; interleaved
    # best-of-25 pairs, docs/performance.md).
    cdef Py_ssize_t e, p
    if branch_free:
        for e in range(lo, hi):
            nd = _mark_if_ion(occ, isd, dirty, leaf, nd, dst[e], marks)
        return nd
    for e in range(lo, hi):
        p = dst[e]
        if occ[p] == 1:
            marks[0] += 1
            if not isd[p]:
                nd = _new_dirty(isd, dirty, leaf, dst, uoff, n_unit, per_cell, nd, p)
    return nd


# 1.0 for an empty site, 0.0 for an ion or a blocker: a table lookup instead of a branch that the
# CPU would mispredict half the time
cdef double[3] _EMPTY_WEIGHT = [1.0, 0.0, 0.0]

# Memo of exp(): the rate of an event is a pure function of its template's (E_KRA, nu0) and of
# dE, and dE takes few distinct values (integer interaction fields, a handful of site energies):
# the allowed events of c-LLZO with three interaction shells, sampled 20 times over 2e6 hops,
# have 33 distinct (E_KRA, nu0, dE).  So most rate evaluations hit this small direct-mapped
# table (24 KiB: stays in L1) instead of calling exp().  A hit returns the very double a
# computation would give: results never depend on it.
cdef struct RateMemo:
    double dE
    double rate
    int64_t key      # rate class of the template (one per distinct (E_KRA, nu0)); -1 = empty
cdef enum:
    MEMO_BITS = 10
    MEMO_SIZE = 1 << MEMO_BITS
    RATE_TABLE_MAX = 4096    # 32 KiB


STATUS_DONE = 0
STATUS_NO_EVENTS = 1
STATUS_TIME = 2

SPEC_KEYS = (
    "uoff_out", "ev_dst", "ev_mid", "mid_off", "mid_ev", "mid_src", "layout",
    "uoff_ex", "ex_nbr", "uoff_in", "in_nbr", "in_Jq", "t_vec1", "t_vec2", "t_len1sq", "t_len2sq",
    "t_kra", "t_nu", "t_dE", "t_Jq", "t_srcex", "t_rate0", "E_site", "site_class",
)
STATE_KEYS = (
    "occ", "ion_at", "ion_site", "disp", "hops", "sumsq", "clock", "counters",
    "class_n", "class_t", "class_tlast",
)


cdef class Engine:
    # static network: events grouped by source site
    # Events, exclusion and interaction neighbours are tiled cell by cell in unit-cell order, so
    # the CSR range of site s = (cell, u) is cell * per_cell + uoff[u] .. uoff[u + 1]: tiny offset
    # tables instead of per-site offset arrays (no cache miss, no memory per site).
    cdef const int64_t[::1] uoff_out, uoff_ex, uoff_in
    cdef Py_ssize_t pc_out, pc_ex, pc_in
    cdef const int32_t[::1] ev_dst, ev_mid
    # events are stored cell by cell in template order, so an event's template is implicit:
    # t = e - (s // n_unit) * n_tmpl (no per-event template array to miss in cache)
    cdef Py_ssize_t n_unit, n_tmpl
    cdef const int64_t[::1] mid_off
    cdef const int32_t[::1] mid_ev, mid_src
    cdef const int32_t[::1] ex_nbr
    cdef const int32_t[::1] in_nbr
    cdef const int64_t[::1] in_Jq
    # event templates (one per hop of the unit cell)
    cdef const double[:, ::1] t_vec1, t_vec2
    cdef const double[::1] t_len1sq, t_len2sq, t_kra, t_nu, t_dE, t_rate0
    cdef const int64_t[::1] t_Jq
    cdef const uint8_t[::1] t_srcex
    cdef const double[::1] E_site
    cdef const int32_t[::1] site_class
    cdef int32_t[::1] t_rclass       # rate class of each template (key of the exp() memo)
    # E_site[dst] - E_site[src] + t_dE of each template, when E_site repeats cell by cell (then
    # it is the same double in every cell); else e_tiled is False and t_e0 unused
    cdef double[::1] t_e0
    cdef bint e_tiled
    # interacting, e_tiled, no knock-offs: _site_total's fast path (_total_fields)
    cdef bint fields_only
    # Rate table of the fields_only models whose fields take few values: in them an event's
    # rate depends only on its template t and its integer field difference
    # q = hq[d] - hq[s] - t_Jq[t]; all of these are multiples of the pair energies' common
    # divisor g = g_odd * 2^g_tz.  rtab[t_toff[t] + kq[d] - kq[s]] holds it, kq = hq / g being
    # kept instead of hq (t_toff includes -t_Jq[t] / g).  The divisions are exact, so each is
    # (x >> g_tz) * g_inv (g_inv: the inverse of g_odd modulo 2^64), without a divide.  Every
    # entry is filled when the engine is built.  Templates whose rates are the same function
    # of q (same E_KRA, nu0, e0 and t_Jq) share one segment.  NULL when the table would exceed
    # RATE_TABLE_MAX entries (e.g. fitted pair energies, whose common divisor is tiny).
    # A site that holds an ion or a blocker keeps kq + k_closed instead of kq: after the
    # k_closed entries of the table come as many 0.0, where the hops into such a site land.  So
    # an event's rate, closed or open, is one table read, rt[toff[t] + kq[d]] with
    # rt = rtab + k_closed - kq[s] for an ion at s, and the re-summing loop reads no occupancy
    # (a closed event adds 0.0, and tot + 0.0 == tot: the very doubles of skipping it).
    cdef double* rtab
    cdef int32_t[::1] kq
    cdef Py_ssize_t k_closed
    cdef int64_t[::1] t_toff
    # The table models keep only kq up to date during hops (hq = kq * g exactly; _sync_fields
    # brings hq up to date for the Python-level readers).  A hop changes a partner's key by
    # jk = in_Jq / g: per unit cell (jk[k - cell * pc_in]) when in_Jq repeats cell by cell
    # (jk_tiled), else per partner.  This spares the int64 field array and the per-site rows
    # of in_Jq their cache misses (callgrind sc 32^3 nn: 7.7 of 47 L2 misses a hop).
    cdef int32_t[::1] jk
    cdef bint jk_tiled
    cdef int g_tz
    cdef uint64_t g_inv
    cdef int64_t g_q
    cdef Py_ssize_t n_rtab
    # dynamic state (Python-owned)
    cdef int8_t[::1] occ
    cdef int32_t[::1] ion_at, ion_site
    cdef double[:, ::1] disp
    cdef int64_t[::1] hops
    cdef double[::1] sumsq, clock, class_t, class_tlast
    cdef int64_t[::1] counters, class_n
    # derived (rebuilt exactly from occ)
    cdef int32_t[::1] excnt
    cdef int64_t[::1] hq
    cdef SumTree tree
    cdef int32_t[::1] dirty
    cdef uint8_t[::1] is_dirty
    cdef int32_t[::1] open_nbr       # _touch_fields' list of one site's empty, open interaction partners
    cdef Py_ssize_t n_dirty
    # parameters
    cdef readonly double beta
    cdef readonly bint has_int, has_ex, has_mid, static, simple
    # work counters (deterministic, for benchmarks): sites marked dirty, site totals re-summed,
    # event rates evaluated (in updates and in the selection scan)
    cdef int64_t n_marks, n_resums, n_evals
    cdef int32_t max_srcex           # largest t_srcex: excnt[n] above it closes every hop into n
    cdef readonly Py_ssize_t n_sites, n_events
    cdef bitgen_t* rng
    cdef RateMemo* memo
    cdef readonly object bit_generator
    cdef readonly dict spec, state
    cdef object _hq_array, _excnt_array, _kq_array

    def __cinit__(self, *args, **kwargs):
        self.memo = <RateMemo*> malloc(MEMO_SIZE * sizeof(RateMemo))
        if self.memo == NULL:
            raise MemoryError("no memory for the engine's rate memo")
        cdef Py_ssize_t i
        for i in range(MEMO_SIZE):
            self.memo[i].key = -1

    def __dealloc__(self):
        free(self.memo)
        free(self.rtab)

    def __init__(self, dict spec, dict state, bit_generator, double beta, bint static):
        for key in SPEC_KEYS:
            if key not in spec:
                raise KeyError(f"engine spec lacks {key!r}")
        for key in STATE_KEYS:
            if key not in state:
                raise KeyError(f"engine state lacks {key!r}")
        if not beta > 0.0:
            raise ValueError("beta = 1/kT must be positive")
        self.spec = spec
        self.state = state
        self.beta = beta
        self.static = static
        self.uoff_out = spec["uoff_out"]
        self.ev_dst = spec["ev_dst"]
        self.n_unit = int(spec["layout"][0])
        self.n_tmpl = int(spec["layout"][1])
        if self.n_unit < 1 or self.n_tmpl < 0:
            raise ValueError("engine layout needs n_unit >= 1 and n_tmpl >= 0")
        self.ev_mid = spec["ev_mid"]
        self.mid_off = spec["mid_off"]
        self.mid_ev = spec["mid_ev"]
        self.mid_src = spec["mid_src"]
        self.uoff_ex = spec["uoff_ex"]
        self.ex_nbr = spec["ex_nbr"]
        self.uoff_in = spec["uoff_in"]
        self.in_nbr = spec["in_nbr"]
        if (np.array_equal(spec["uoff_in"], spec["uoff_out"]) and spec["in_nbr"].shape[0] > 0
                and np.array_equal(spec["in_nbr"], spec["ev_dst"])):
            # the interaction partners are the hop destinations, in the same order (e.g.
            # nearest-neighbour hops and interactions): one array serves both, so a site's
            # partners and destinations are one set of cache lines, not two (sc 32^3 nn:
            # 0.75 MB less to cache)
            self.in_nbr = spec["ev_dst"]
        self.in_Jq = spec["in_Jq"]
        self.t_vec1 = spec["t_vec1"]
        self.t_vec2 = spec["t_vec2"]
        self.t_len1sq = spec["t_len1sq"]
        self.t_len2sq = spec["t_len2sq"]
        self.t_kra = spec["t_kra"]
        self.t_nu = spec["t_nu"]
        self.t_dE = spec["t_dE"]
        self.t_Jq = spec["t_Jq"]
        self.t_srcex = spec["t_srcex"]
        self.t_rate0 = spec["t_rate0"]
        self.E_site = spec["E_site"]
        self.site_class = spec["site_class"]
        _, rclass = np.unique(np.stack([np.asarray(spec["t_kra"], float),
                                        np.asarray(spec["t_nu"], float)], axis=1),
                              axis=0, return_inverse=True)
        self.t_rclass = np.ascontiguousarray(rclass.reshape(-1), dtype=np.int32)
        self._bind_site_energies(spec)
        self.n_sites = int(spec["layout"][2])
        for key in ("uoff_out", "uoff_ex", "uoff_in"):
            if spec[key].shape[0] != self.n_unit + 1:
                raise ValueError(f"{key} needs n_unit + 1 entries")
        self.pc_out = self.uoff_out[self.n_unit]
        self.pc_ex = self.uoff_ex[self.n_unit]
        self.pc_in = self.uoff_in[self.n_unit]
        if self.pc_out != self.n_tmpl:
            raise ValueError("uoff_out must cover every template")
        self.n_events = self.ev_dst.shape[0]
        self.has_mid = self.ev_mid.shape[0] == self.n_events and self.n_events > 0
        self.has_ex = self.ex_nbr.shape[0] > 0
        self.has_int = self.in_nbr.shape[0] > 0
        # constant rates without exclusions or knock-offs: totals are branch-free sums
        self.simple = static and not self.has_mid and not self.has_ex
        self.max_srcex = int(np.max(spec["t_srcex"], initial=0))
        self.fields_only = self.has_int and self.e_tiled and not self.has_mid and not static
        self._bind_rate_table(spec)

        self.occ = state["occ"]
        self.ion_at = state["ion_at"]
        self.ion_site = state["ion_site"]
        self.disp = state["disp"]
        self.hops = state["hops"]
        self.sumsq = state["sumsq"]
        self.clock = state["clock"]
        self.counters = state["counters"]
        self.class_n = state["class_n"]
        self.class_t = state["class_t"]
        self.class_tlast = state["class_tlast"]
        if self.occ.shape[0] != self.n_sites or self.ion_at.shape[0] != self.n_sites:
            raise ValueError("occupancy arrays do not match the number of sites")

        self._excnt_array = np.zeros(self.n_sites, dtype=np.int32)
        self._hq_array = np.zeros(self.n_sites, dtype=np.int64)
        self.excnt = self._excnt_array
        self.hq = self._hq_array
        self._kq_array = np.zeros(self.n_sites if self.rtab != NULL else 1, dtype=np.int32)
        self.kq = self._kq_array
        self.tree = SumTree(max(self.n_sites, 1))
        self.dirty = np.zeros(self._dirty_bound(), dtype=np.int32)
        self.is_dirty = np.zeros(self.n_sites, dtype=np.uint8)
        self.n_dirty = 0
        self.open_nbr = np.zeros(int(np.diff(np.asarray(self.uoff_in)).max()) + 1 if self.has_int else 1,
                                 dtype=np.int32)

        self.bit_generator = bit_generator
        capsule = bit_generator.capsule
        self.rng = <bitgen_t*> PyCapsule_GetPointer(capsule, "BitGenerator")
        self.rebuild()

    def _bind_site_energies(self, dict spec):
        # numpy's float64 - and + are the IEEE operations _rate does, so t_e0[t] is the very
        # double _rate computes from E_site in every cell
        E = np.asarray(spec["E_site"], dtype=np.float64)
        n_unit, n_tmpl = self.n_unit, self.n_tmpl
        dst = np.asarray(spec["ev_dst"])[:n_tmpl]
        src = np.repeat(np.arange(n_unit), np.diff(np.asarray(spec["uoff_out"])))
        self.e_tiled = (E.shape[0] % n_unit == 0 and E.shape[0] >= n_unit
                        and dst.shape[0] == n_tmpl
                        and np.array_equal(E.reshape(-1, n_unit), np.broadcast_to(
                            E[:n_unit], (E.shape[0] // n_unit, n_unit))))
        t_e0 = np.zeros(max(n_tmpl, 1))
        if self.e_tiled and n_tmpl:
            t_e0[:n_tmpl] = E[dst] - E[src] + np.asarray(spec["t_dE"], dtype=np.float64)
        self.t_e0 = t_e0

    def _bind_rate_table(self, dict spec):
        # the range of q / g of each template, from the least and greatest field a site of each
        # unit can have (all its interaction partners present, counting only the negative or
        # only the positive energies)
        cdef Py_ssize_t i
        n_unit, n_tmpl = self.n_unit, self.n_tmpl
        self.t_toff = np.zeros(max(n_tmpl, 1), dtype=np.int64)
        self.jk = np.zeros(1, dtype=np.int32)
        if not self.fields_only or n_tmpl == 0:
            return
        in_Jq = np.asarray(spec["in_Jq"], dtype=np.int64)
        t_Jq = np.asarray(spec["t_Jq"], dtype=np.int64)
        vals = np.abs(np.concatenate([in_Jq, t_Jq]))
        g = int(np.gcd.reduce(vals[vals > 0])) if np.any(vals > 0) else 1
        per_site = np.diff(np.asarray(spec["uoff_in"]))
        counts = np.tile(per_site, self.n_sites // n_unit)
        starts = np.cumsum(counts) - counts
        lo_site = np.zeros(self.n_sites, dtype=np.int64)
        hi_site = np.zeros(self.n_sites, dtype=np.int64)
        has = counts > 0
        if in_Jq.shape[0]:
            lo_site[has] = np.add.reduceat(np.minimum(in_Jq, 0) // g, starts[has])
            hi_site[has] = np.add.reduceat(np.maximum(in_Jq, 0) // g, starts[has])
        lo_u = lo_site.reshape(-1, n_unit).min(axis=0)
        hi_u = hi_site.reshape(-1, n_unit).max(axis=0)
        dst = np.asarray(spec["ev_dst"])[:n_tmpl] % n_unit
        src = np.repeat(np.arange(n_unit), np.diff(np.asarray(spec["uoff_out"])))
        kmin = lo_u[dst] - hi_u[src] - t_Jq // g
        kmax = hi_u[dst] - lo_u[src] - t_Jq // g
        # templates with the same rate class, e0 and t_Jq have the same rate at every q: they
        # share one segment of the table, spanning all their ranges (c-LLZO 4x4x4 with three
        # shells: 288 templates, 2 segments, 332 entries instead of 46,752)
        seg_key = np.stack([np.asarray(self.t_rclass, dtype=np.int64)[:n_tmpl],
                            np.asarray(self.t_e0, dtype=np.float64)[:n_tmpl].view(np.int64),
                            t_Jq], axis=1)
        _, seg = np.unique(seg_key, axis=0, return_inverse=True)
        seg = seg.reshape(-1)
        n_seg = int(seg.max()) + 1
        smin = np.full(n_seg, np.iinfo(np.int64).max, dtype=np.int64)
        smax = np.full(n_seg, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(smin, seg, kmin)
        np.maximum.at(smax, seg, kmax)
        size = smax - smin + 1
        total = int(size.sum())
        if total > RATE_TABLE_MAX:
            return
        start = np.cumsum(size) - size
        self.t_toff = np.ascontiguousarray(start[seg] - smin[seg] - t_Jq // g, dtype=np.int64)
        tz = (g & -g).bit_length() - 1
        self.g_tz = tz
        self.g_inv = pow(g >> tz, -1, 2 ** 64)
        self.g_q = g
        self.rtab = <double*> malloc(2 * total * sizeof(double))
        if self.rtab == NULL:
            raise MemoryError("no memory for the engine's rate table")
        self.n_rtab = 2 * total
        self.k_closed = total
        for i in range(total, 2 * total):
            self.rtab[i] = 0.0
        per_cell = int(per_site.sum())
        n_cells = self.n_sites // n_unit
        self.jk_tiled = in_Jq.shape[0] == per_cell * n_cells and np.array_equal(
            in_Jq.reshape(n_cells, per_cell), np.broadcast_to(in_Jq[:per_cell], (n_cells, per_cell)))
        self.jk = np.ascontiguousarray((in_Jq[:per_cell] if self.jk_tiled else in_Jq) // g,
                                       dtype=np.int32)
        # every entry now, by the computation _rate does (the same dE, through the memo), so
        # the re-summing loop needs no test for a missing one; each segment from one of its
        # templates (the others give the very same doubles)
        first = np.unique(seg, return_index=True)[1]
        for j in range(n_seg):
            t = int(first[j])
            for i in range(start[j], start[j] + size[j]):
                self._tab_fill(t, (i - self.t_toff[t]) * g)

    def _dirty_bound(self):
        # Sites whose total can change in one hop: sources of every refreshed event.
        mo = int(np.diff(np.asarray(self.uoff_out)).max())
        mm = int(np.diff(np.asarray(self.mid_off)).max()) if self.has_mid else 0
        me = int(np.diff(np.asarray(self.uoff_ex)).max()) if self.has_ex else 0
        mi = int(np.diff(np.asarray(self.uoff_in)).max()) if self.has_int else 0
        # (+ 1: _mark_occupied writes its candidate to the next free slot before counting it)
        return min(self.n_sites, 2 * (1 + mo + mm + me * mo + mi * (1 + mo)) + 8) + 1

    # ------------------------------------------------------------------ derived state
    def rebuild(self):
        """Recompute exclusion counts, interaction fields, every rate and the tree from ``occ``."""
        cdef Py_ssize_t s, k
        cdef int64_t acc
        cdef int32_t cnt
        cdef int64_t evals = self.n_evals   # a rebuild is not hop work
        with nogil:
            for s in range(self.n_sites):
                cnt = 0
                if self.has_ex:
                    for k in range(self._lo(self.uoff_ex, self.pc_ex, s), self._hi(self.uoff_ex, self.pc_ex, s)):
                        if self.occ[self.ex_nbr[k]] != 0:
                            cnt += 1
                self.excnt[s] = cnt
                acc = 0
                if self.has_int:
                    for k in range(self._lo(self.uoff_in, self.pc_in, s), self._hi(self.uoff_in, self.pc_in, s)):
                        if self.occ[self.in_nbr[k]] == 1:
                            acc += self.in_Jq[k]
                self.hq[s] = acc
                if self.rtab != NULL:
                    self.kq[s] = <int32_t> (_tab_key(acc, self.g_tz, self.g_inv)
                                            + (self.occ[s] != 0) * self.k_closed)
            for s in range(self.n_sites):
                self.tree.tree[self.tree.cap + s] = self._site_total(s)
            self.tree.rebuild()
        self.n_evals = evals

    cdef inline Py_ssize_t _lo(self, const int64_t[::1] uoff, Py_ssize_t per_cell,
                               Py_ssize_t s) noexcept nogil:
        cdef Py_ssize_t c
        if self.n_unit == 1:
            return s * per_cell
        c = s // self.n_unit
        return c * per_cell + uoff[s - c * self.n_unit]

    cdef inline Py_ssize_t _hi(self, const int64_t[::1] uoff, Py_ssize_t per_cell,
                               Py_ssize_t s) noexcept nogil:
        cdef Py_ssize_t c
        if self.n_unit == 1:
            return (s + 1) * per_cell
        c = s // self.n_unit
        return c * per_cell + uoff[s - c * self.n_unit + 1]

    cdef inline double _site_total(self, Py_ssize_t s) noexcept nogil:
        cdef double tot = 0.0
        cdef Py_ssize_t e
        cdef Py_ssize_t base = self._tmpl_base(s)
        if self.occ[s] != 1:
            return 0.0
        if self.simple:
            # constant rates: a branch-free sum over the empty destinations
            for e in range(self._lo(self.uoff_out, self.pc_out, s), self._hi(self.uoff_out, self.pc_out, s)):
                tot += self.t_rate0[e - base] * _EMPTY_WEIGHT[self.occ[self.ev_dst[e]]]
            return tot
        cdef Py_ssize_t lo = self._lo(self.uoff_out, self.pc_out, s)
        cdef Py_ssize_t hi = self._hi(self.uoff_out, self.pc_out, s)
        if self.fields_only and hi > lo:
            self.n_evals += hi - lo
            # one copy of the loop per case, without per-event tests of the flag (the models
            # with a rate table come here only from rebuild(): _flush re-sums them in
            # _resum_table, whose table entries are the very doubles computed here)
            if self.has_ex:
                return self._total_fields(s, lo - base, hi - base, base, True)
            return self._total_fields(s, lo - base, hi - base, base, False)
        for e in range(lo, hi):
            tot += self._rate(e, s, e - base)
        return tot

    cdef inline double _total_fields(self, Py_ssize_t s, Py_ssize_t t_lo, Py_ssize_t t_hi,
                                     Py_ssize_t base, bint has_ex) noexcept nogil:
        # _site_total of the usual interacting model (fields_only): _rate written out with plain
        # pointers, no per-event flag tests and what is the same for all of s's events done once.
        # A closed event adds nothing (its rate is 0.0, and tot + 0.0 == tot); an open one adds
        # the same double, in the same order, as _rate gives.  s's events are base + t for the
        # templates t_lo <= t < t_hi.
        cdef const int32_t* dst = &self.ev_dst[base]
        cdef const int8_t* occ = &self.occ[0]
        cdef const int64_t* hq = &self.hq[0]
        cdef const int64_t* Jq = &self.t_Jq[0]
        cdef const double* e0 = &self.t_e0[0]
        cdef const int32_t* excnt = &self.excnt[0]
        cdef const uint8_t* srcex = &self.t_srcex[0]
        cdef const int32_t* rclass = &self.t_rclass[0]
        cdef RateMemo* memo = self.memo
        cdef int64_t hq_s = hq[s]
        cdef double tot = 0.0
        cdef double dE
        cdef Py_ssize_t t, d
        cdef int64_t q
        for t in range(t_lo, t_hi):
            d = dst[t]
            if occ[d] != 0:
                continue
            if has_ex and excnt[d] - srcex[t] > 0:
                continue
            # the same double as _rate's E_site[d] - E_site[s] + t_dE[t] + field term
            q = hq[d] - hq_s - Jq[t]
            dE = e0[t] + <double> q * _QUANTUM
            tot += self._memo_rate(memo, rclass[t], dE, t)
        return tot

    cdef void _tab_fill(self, Py_ssize_t t, int64_t dq) noexcept nogil:
        # the rate table entry of template t at dq = hq[d] - hq[s]: the rate _rate gives (the
        # same dE, through the memo)
        cdef int64_t q = dq - self.t_Jq[t]
        cdef double r = self._rate_of(t, self.t_e0[t] + <double> q * _QUANTUM)
        self.rtab[self.t_toff[t] + _tab_key(dq, self.g_tz, self.g_inv)] = r

    cdef inline Py_ssize_t _tmpl_base(self, Py_ssize_t s) noexcept nogil:
        # event index minus template index for every event of site s
        if self.n_unit == 1:
            return s * self.n_tmpl
        return (s // self.n_unit) * self.n_tmpl

    cdef inline double _rate(self, Py_ssize_t e, Py_ssize_t s, Py_ssize_t t) noexcept nogil:
        cdef Py_ssize_t d = self.ev_dst[e]
        cdef Py_ssize_t m
        cdef double dE, ea
        self.n_evals += 1
        if self.occ[s] != 1 or self.occ[d] != 0:
            return 0.0
        if self.has_mid:
            m = self.ev_mid[e]
            if m >= 0 and self.occ[m] != 1:
                return 0.0
        if self.has_ex and self.excnt[d] - self.t_srcex[t] > 0:
            return 0.0
        if self.static:
            return self.t_rate0[t]
        dE = self.E_site[d] - self.E_site[s] + self.t_dE[t]
        if self.has_int:
            dE += <double>(self.hq[d] - self.hq[s] - self.t_Jq[t]) * _QUANTUM
        return self._rate_of(t, dE)

    cdef inline double _rate_of(self, Py_ssize_t t, double dE) noexcept nogil:
        return self._memo_rate(self.memo, self.t_rclass[t], dE, t)

    cdef inline double _memo_rate(self, RateMemo* memo, int64_t key, double dE,
                                  Py_ssize_t t) noexcept nogil:
        # the rate of template t (rate class key) at dE: from the memo, else computed and
        # stored.  A multiplicative hash of dE's bits and the key; a miss only costs time.
        cdef uint64_t bits
        memcpy(&bits, &dE, 8)
        cdef RateMemo* m = &memo[((bits ^ (<uint64_t> key << 48)) * <uint64_t> 0x9E3779B97F4A7C15)
                                 >> (64 - MEMO_BITS)]
        if m.key == key and m.dE == dE:
            return m.rate
        return self._rate_miss(m, key, dE, t)

    cdef double _rate_miss(self, RateMemo* m, int64_t key, double dE, Py_ssize_t t) noexcept nogil:
        # kinetically resolved barrier: detailed balance holds for any E_KRA
        cdef double ea = self.t_kra[t] + 0.5 * dE
        if ea < dE:
            ea = dE
        if ea < 0.0:
            ea = 0.0
        m.key = key
        m.dE = dE
        m.rate = self.t_nu[t] * exp(-self.beta * ea)
        return m.rate

    cdef inline void _mark(self, Py_ssize_t s) noexcept nogil:
        # s's total must be re-summed (callers mark only the hop's two sites and occupied sites)
        cdef Py_ssize_t e
        self.n_marks += 1
        if not self.is_dirty[s]:
            self.is_dirty[s] = 1
            self.dirty[self.n_dirty] = <int32_t> s
            self.n_dirty += 1
            # _flush reads the site's events and updates its tree leaf: start those loads now,
            # so that on large networks the cache misses of all dirty sites overlap instead of
            # queueing
            self.tree.prefetch(s)
            e = self._lo(self.uoff_out, self.pc_out, s)
            if e < self.n_events:
                __builtin_prefetch(&self.ev_dst[e])

    cdef inline void _mark_sources(self, Py_ssize_t n) noexcept nogil:
        # the occupied sources of the events into n: the destinations of n's events (every event
        # has its reverse)
        cdef Py_ssize_t e, p
        cdef Py_ssize_t lo = self._lo(self.uoff_out, self.pc_out, n)
        cdef Py_ssize_t hi = self._hi(self.uoff_out, self.pc_out, n)
        cdef const int32_t* dst = &self.ev_dst[0]
        cdef const int8_t* occ = &self.occ[0]
        for e in range(lo, hi):
            p = dst[e]
            if occ[p] == 1:
                self._mark(p)

    cdef void _touch(self, Py_ssize_t x) noexcept nogil:
        # Mark every site whose total can have changed because the hop changed the occupancy of
        # x (called for the hop's source and destination, after occ, excnt and hq are updated).
        # The rate of p -> q reads occ[p], occ[q], occ[mid], excnt[q], hq[p] and hq[q] (the rest
        # is static).  Only an occupied site has a non-zero total, and no site other than the
        # hop's two changes occupancy, so a site that is empty or blocked now had total 0 before
        # and has 0 now: only x and occupied sites are marked.  What the hop changed at x:
        #   occ[x]: x's events and the events into x (their sources);
        #     knock-offs with x in the middle (their sources);
        #   excnt[n], n an exclusion neighbour of x: the events into n; if n is occupied they
        #     are closed before and after (an occupied destination), so only an empty n counts;
        #   hq[n], n an interaction neighbour of x: n's own events if n holds an ion; the events
        #     into n if n is empty, unless excnt[n] > max_srcex, which closes every hop into n
        #     before and after (excnt[n] did not change, or n is an exclusion neighbour of x and
        #     the rule above covers it); nothing if n holds a blocker.
        cdef Py_ssize_t k, n, p
        self._mark(x)
        self._mark_sources(x)
        if self.has_mid:
            for k in range(self.mid_off[x], self.mid_off[x + 1]):
                p = self.mid_src[k]
                if self.occ[p] == 1:
                    self._mark(p)
        if self.has_ex:
            for k in range(self._lo(self.uoff_ex, self.pc_ex, x), self._hi(self.uoff_ex, self.pc_ex, x)):
                n = self.ex_nbr[k]
                if self.occ[n] == 0:
                    self._mark_sources(n)
        if self.has_int:
            for k in range(self._lo(self.uoff_in, self.pc_in, x), self._hi(self.uoff_in, self.pc_in, x)):
                n = self.in_nbr[k]
                if self.occ[n] == 1:
                    self._mark(n)
                elif self.occ[n] == 0 and not (self.has_ex and self.excnt[n] > self.max_srcex):
                    self._mark_sources(n)

    cdef void _touch_fields(self, Py_ssize_t s, Py_ssize_t d) noexcept nogil:
        # _touch(s) and _touch(d) of the fields_only models (no knock-offs): the same rule and
        # the same marks (an interaction partner's own mark before the sources of the open empty
        # ones, which changes only the order of dirty[], and no result depends on that order:
        # each total is re-summed on its own, SumTree.set_ancestors gives the same nodes for any
        # order), with every array and size in a local (a store to a uint8 array may alias
        # anything: fields of self would be reloaded after each) and the marks counted once.
        # Only the leaves (and the events of a new dirty site reached by a branch) are
        # prefetched, not tree ancestors: these models mark many neighbouring sites whose
        # ancestors repeat.
        cdef const int8_t* occ = &self.occ[0]
        cdef const int32_t* dst = &self.ev_dst[0]
        cdef const int32_t* in_nbr = &self.in_nbr[0]
        cdef const int32_t* ex_nbr = NULL
        cdef const int32_t* excnt = &self.excnt[0]
        cdef const int64_t* uo = &self.uoff_out[0]
        cdef const int64_t* ui = &self.uoff_in[0]
        cdef const int64_t* ux = &self.uoff_ex[0]
        cdef Py_ssize_t nu = self.n_unit, po = self.pc_out, pi = self.pc_in, px = self.pc_ex
        cdef bint has_ex = self.has_ex
        cdef uint8_t* isd = &self.is_dirty[0]
        cdef int32_t* dirty = &self.dirty[0]
        cdef const double* leaf = &self.tree.tree[self.tree.cap]
        cdef Py_ssize_t nd = self.n_dirty
        cdef int64_t marks = 0
        cdef int32_t max_srcex = self.max_srcex
        cdef int32_t* open_nbr = &self.open_nbr[0]
        cdef Py_ssize_t i, x, k, n, no
        if has_ex:
            ex_nbr = &self.ex_nbr[0]
        for i in range(2):
            x = s if i == 0 else d
            # x itself, then the occupied sources of the events into x (every event has its
            # reverse: the destinations of x's events)
            marks += 1
            if not isd[x]:
                nd = _new_dirty(isd, dirty, leaf, dst, uo, nu, po, nd, x)
            nd = _mark_occupied(occ, dst, _csr_lo(uo, nu, po, x), _csr_hi(uo, nu, po, x), isd,
                                dirty, leaf, uo, nu, po, nd, &marks, not has_ex)
            if has_ex:
                for k in range(_csr_lo(ux, nu, px, x), _csr_hi(ux, nu, px, x)):
                    n = ex_nbr[k]
                    if occ[n] == 0:
                        nd = _mark_occupied(occ, dst, _csr_lo(uo, nu, po, n), _csr_hi(uo, nu, po, n),
                                            isd, dirty, leaf, uo, nu, po, nd, &marks, False)
            # x's interaction partners, without a branch on their coin-toss occupancy: an
            # occupied one is marked (written to the next free slot, counted if new), an empty
            # one that is open (excnt <= max_srcex; excnt is 0 without exclusions) is listed,
            # and the occupied sources of the events into the listed ones are marked after
            no = 0
            for k in range(_csr_lo(ui, nu, pi, x), _csr_hi(ui, nu, pi, x)):
                n = in_nbr[k]
                nd = _mark_if_ion(occ, isd, dirty, leaf, nd, n, &marks)
                open_nbr[no] = <int32_t> n
                if has_ex:
                    no += (occ[n] == 0) & (excnt[n] <= max_srcex)
                else:
                    no += occ[n] == 0     # (excnt is 0: no read of it)
            for k in range(no):
                n = open_nbr[k]
                nd = _mark_occupied(occ, dst, _csr_lo(uo, nu, po, n), _csr_hi(uo, nu, po, n),
                                    isd, dirty, leaf, uo, nu, po, nd, &marks, not has_ex)
        self.n_dirty = nd
        self.n_marks += marks

    cdef void _flush(self) noexcept nogil:
        # site totals are recomputed from scratch (never by deltas): no drift, exact restores.
        # The changed leaves are stored first and their ancestors updated together after.
        cdef Py_ssize_t i, s, n = 0
        cdef double tot
        cdef double* leaf = &self.tree.tree[self.tree.cap]
        cdef int32_t* dirty = &self.dirty[0]
        self.n_resums += self.n_dirty
        for i in range(self.n_dirty):
            s = dirty[i]
            self.is_dirty[s] = 0
            tot = self._site_total(s)
            if tot != leaf[s]:
                leaf[s] = tot
                dirty[n] = <int32_t> s   # n <= i: the changed ones, in place
                n += 1
        self.n_dirty = 0
        if n > 0:
            self.tree.set_ancestors(dirty, n)

    cdef void _flush_table(self) noexcept nogil:
        # _flush of the models with a rate table (a function of its own, so that neither
        # loop's registers are spent on the other)
        cdef Py_ssize_t n
        cdef double* leaf = &self.tree.tree[self.tree.cap]
        cdef int32_t* dirty = &self.dirty[0]
        self.n_resums += self.n_dirty
        if self.has_ex:
            n = self._resum_table(leaf, dirty, True, False)
        elif self.n_unit == 1:
            n = self._resum_table(leaf, dirty, False, True)
        else:
            n = self._resum_table(leaf, dirty, False, False)
        if n > 0:
            self.tree.set_ancestors(dirty, n)

    cdef inline Py_ssize_t _resum_table(self, double* leaf, int32_t* dirty, bint has_ex,
                                        bint one_unit) noexcept nogil:
        # _flush's re-summing loop for the models with a rate table: _site_total and
        # _total_fields written out once for all dirty sites, with everything in locals (and,
        # for one site per unit cell, the same templates for every site).  Stores the changed
        # totals in their leaves and returns how many changed (listed in dirty[]).
        cdef const int32_t* dst0 = &self.ev_dst[0]
        cdef const int32_t* dst
        cdef const int8_t* occ = &self.occ[0]
        cdef const int32_t* kq = &self.kq[0]
        cdef const int32_t* excnt = &self.excnt[0]
        cdef const uint8_t* srcex = &self.t_srcex[0]
        cdef const int64_t* uoff = &self.uoff_out[0]
        cdef const int64_t* toff = &self.t_toff[0]
        cdef const double* rtab = self.rtab + self.k_closed
        cdef const double* rt
        cdef uint8_t* isd = &self.is_dirty[0]
        cdef Py_ssize_t n_unit = self.n_unit, n_tmpl = self.n_tmpl
        cdef Py_ssize_t i, s, c, u, t, d, t_lo, t_hi, n = 0
        cdef int64_t evals = 0
        cdef double tot
        for i in range(self.n_dirty):
            s = dirty[i]
            isd[s] = 0
            tot = 0.0
            if occ[s] == 1:
                if one_unit:
                    c = s          # as in _lo: site s's events are s * n_tmpl + t
                    t_lo = 0
                    t_hi = n_tmpl
                else:
                    c = s // n_unit
                    u = s - c * n_unit
                    t_lo = uoff[u]
                    t_hi = uoff[u + 1]
                dst = dst0 + c * n_tmpl
                rt = rtab - kq[s]      # rt[toff[t] + kq[d]]: the table's entry at kq[d] - kq[s]
                evals += t_hi - t_lo
                if has_ex:
                    for t in range(t_lo, t_hi):
                        d = dst[t]
                        if occ[d] == 0 and excnt[d] - srcex[t] <= 0:
                            tot += rt[toff[t] + kq[d]]
                else:
                    # two events a turn (half the loop overhead), still added in event order,
                    # without a branch: a closed event (occupied destination) reads a 0.0 of
                    # the table's closed half (see k_closed), and tot + 0.0 == tot, so the very
                    # doubles of the branch.  The occupancy test was a coin toss: 38 of the
                    # sc 32^3 nn hop's 46 mispredictions (callgrind), ~1.2x hops/s without it.
                    t = t_lo
                    while t + 1 < t_hi:
                        tot += rt[toff[t] + kq[dst[t]]]
                        tot += rt[toff[t + 1] + kq[dst[t + 1]]]
                        t += 2
                    if t < t_hi:
                        tot += rt[toff[t] + kq[dst[t]]]
            if tot != leaf[s]:
                leaf[s] = tot
                dirty[n] = <int32_t> s   # n <= i: the changed ones, in place
                n += 1
        self.n_evals += evals
        self.n_dirty = 0
        return n

    cdef inline void _class_move(self, Py_ssize_t c, int64_t delta, double t) noexcept nogil:
        # lazy time integral of the number of ions in class c
        self.class_t[c] += <double> self.class_n[c] * (t - self.class_tlast[c])
        self.class_tlast[c] = t
        self.class_n[c] += delta

    cdef void _update_fields(self, Py_ssize_t s, Py_ssize_t d) noexcept nogil:
        # _execute's update of the fields_only models after the ion left s for d (a function
        # of its own, which keeps the other models' path as it was): the fields hq of both's
        # partners (or only their table keys kq), the marks, the re-summing
        if self.rtab != NULL:
            self.kq[s] -= self.k_closed       # s is empty now, d holds the ion
            self.kq[d] += self.k_closed
            self._move_fields(s, d, True)
            self._touch_fields(s, d)
            self._flush_table()
        else:
            self._move_fields(s, d, False)
            self._touch_fields(s, d)
            self._flush()

    cdef inline void _move_fields(self, Py_ssize_t s, Py_ssize_t d, bint table) noexcept nogil:
        # the fields of s's and d's interaction partners, or with a rate table only their keys
        # (kq - jk is exactly (hq - in_Jq) / g; hq is brought up to date by _sync_fields)
        cdef int64_t* hq = &self.hq[0]
        cdef int32_t* kq = &self.kq[0]
        cdef const int32_t* nbr = &self.in_nbr[0]
        cdef const int64_t* Jq = &self.in_Jq[0]
        cdef const int32_t* jk = &self.jk[0]
        cdef Py_ssize_t k, jb
        if table:
            # (jb: the first partner of the site's cell, as in _lo)
            jb = (s if self.n_unit == 1 else s // self.n_unit) * self.pc_in if self.jk_tiled else 0
            for k in range(self._lo(self.uoff_in, self.pc_in, s), self._hi(self.uoff_in, self.pc_in, s)):
                kq[nbr[k]] -= jk[k - jb]
            jb = (d if self.n_unit == 1 else d // self.n_unit) * self.pc_in if self.jk_tiled else 0
            for k in range(self._lo(self.uoff_in, self.pc_in, d), self._hi(self.uoff_in, self.pc_in, d)):
                kq[nbr[k]] += jk[k - jb]
            return
        for k in range(self._lo(self.uoff_in, self.pc_in, s), self._hi(self.uoff_in, self.pc_in, s)):
            hq[nbr[k]] -= Jq[k]
        for k in range(self._lo(self.uoff_in, self.pc_in, d), self._hi(self.uoff_in, self.pc_in, d)):
            hq[nbr[k]] += Jq[k]

    cdef void _execute(self, Py_ssize_t e, Py_ssize_t s) noexcept nogil:
        cdef Py_ssize_t d = self.ev_dst[e]
        cdef Py_ssize_t t = e - self._tmpl_base(s)
        cdef Py_ssize_t m = self.ev_mid[e] if self.has_mid else -1
        cdef Py_ssize_t k, ion, ion2 = -1
        cdef double now = self.clock[0]
        ion = self.ion_at[s]
        # the ion's records sit at a random place in memory: start loading them now and update
        # them last, so the cache miss overlaps the rate updates instead of stalling the hop
        __builtin_prefetch(&self.disp[ion, 0])
        __builtin_prefetch(&self.sumsq[ion])
        __builtin_prefetch(&self.hops[ion])
        __builtin_prefetch(&self.ion_site[ion])
        self.occ[s] = 0
        self.occ[d] = 1
        self.ion_at[s] = -1
        if m < 0:
            self.ion_at[d] = <int32_t> ion
        else:
            # interstitialcy: the ion at s knocks the ion at m on to d
            ion2 = self.ion_at[m]
            self.ion_at[m] = <int32_t> ion
            self.ion_at[d] = <int32_t> ion2
        self.counters[0] += 1
        self._class_move(self.site_class[s], -1, now)
        self._class_move(self.site_class[d], 1, now)
        if self.has_ex:
            for k in range(self._lo(self.uoff_ex, self.pc_ex, s), self._hi(self.uoff_ex, self.pc_ex, s)):
                self.excnt[self.ex_nbr[k]] -= 1
            for k in range(self._lo(self.uoff_ex, self.pc_ex, d), self._hi(self.uoff_ex, self.pc_ex, d)):
                self.excnt[self.ex_nbr[k]] += 1
        if self.has_int and self.fields_only:   # (has_int first: one test for the others)
            self._update_fields(s, d)
        else:
            if self.has_int:
                for k in range(self._lo(self.uoff_in, self.pc_in, s), self._hi(self.uoff_in, self.pc_in, s)):
                    self.hq[self.in_nbr[k]] -= self.in_Jq[k]
                for k in range(self._lo(self.uoff_in, self.pc_in, d), self._hi(self.uoff_in, self.pc_in, d)):
                    self.hq[self.in_nbr[k]] += self.in_Jq[k]
            self._touch(s)
            self._touch(d)
            self._flush()
        if m < 0:
            self.ion_site[ion] = <int32_t> d
        else:
            self.ion_site[ion] = <int32_t> m
            self.ion_site[ion2] = <int32_t> d
            for k in range(3):
                self.disp[ion2, k] += self.t_vec2[t, k]
            self.sumsq[ion2] += self.t_len2sq[t]
            self.hops[ion2] += 1
        for k in range(3):
            self.disp[ion, k] += self.t_vec1[t, k]
        self.sumsq[ion] += self.t_len1sq[t]
        self.hops[ion] += 1

    cdef Py_ssize_t _choose_table(self, Py_ssize_t s, double rem) noexcept nogil:
        # _run's scan of site s's events (the event whose share of s's total holds rem) for
        # the models with a rate table: the same rates as _rate, in the same order (the
        # table's entries are _rate's very doubles), read from the keys instead of the int64
        # fields and the site energies, which the hop would otherwise load only for this
        cdef Py_ssize_t base = self._tmpl_base(s)
        cdef const int32_t* dst = &self.ev_dst[base]
        cdef const int8_t* occ = &self.occ[0]
        cdef const int32_t* kq = &self.kq[0]
        cdef const int32_t* excnt = &self.excnt[0]
        cdef const uint8_t* srcex = &self.t_srcex[0]
        cdef const int64_t* toff = &self.t_toff[0]
        cdef const double* rt = self.rtab + self.k_closed - kq[s]
        cdef bint has_ex = self.has_ex, ion = occ[s] == 1
        cdef Py_ssize_t t, d, last = -1
        cdef Py_ssize_t lo = self._lo(self.uoff_out, self.pc_out, s) - base
        cdef Py_ssize_t hi = self._hi(self.uoff_out, self.pc_out, s) - base
        cdef double r
        for t in range(lo, hi):
            self.n_evals += 1
            d = dst[t]
            if not ion or occ[d] != 0 or (has_ex and excnt[d] - srcex[t] > 0):
                continue
            r = rt[toff[t] + kq[d]]
            if r > 0.0:
                last = base + t
                if rem < r:
                    return last
                rem -= r
        return last   # rounding put u at the very end of the site's interval

    cdef int _run(self, int64_t max_hops, double t_stop, int64_t* done) noexcept nogil:
        cdef double total, u, rem, dt, y, tnew, r
        cdef Py_ssize_t s, e, chosen, last, base
        cdef int64_t n = 0
        cdef int status = 0
        while n < max_hops:
            total = self.tree.total()
            if not total > 0.0:
                status = 1
                break
            # waiting time first, then the event: both from the same stream, fixed order
            dt = -log(1.0 - self.rng.next_double(self.rng.state)) / total
            if self.clock[0] + dt > t_stop:
                # memoryless clock: stopping here and redrawing later is statistically exact
                self.clock[0] = t_stop
                self.clock[1] = 0.0
                status = 2
                break
            # Kahan-compensated time so that 1e9+ hops keep full precision
            y = dt - self.clock[1]
            tnew = self.clock[0] + y
            self.clock[1] = (tnew - self.clock[0]) - y
            self.clock[0] = tnew
            u = self.rng.next_double(self.rng.state) * total
            s = self.tree.find(u, &rem)
            if self.rtab != NULL:
                chosen = self._choose_table(s, rem)
            else:
                chosen = -1
                last = -1
                base = self._tmpl_base(s)
                for e in range(self._lo(self.uoff_out, self.pc_out, s), self._hi(self.uoff_out, self.pc_out, s)):
                    r = self._rate(e, s, e - base)
                    if r > 0.0:
                        last = e
                        if rem < r:
                            chosen = e
                            break
                        rem -= r
                if chosen < 0:
                    chosen = last  # rounding put u at the very end of the site's interval
            self._execute(chosen, s)
            n += 1
        done[0] = n
        return status

    def run(self, int64_t max_hops, double t_stop=INFINITY):
        """Perform up to ``max_hops`` hops (stopping early at time ``t_stop`` or when no event can
        happen).  Returns ``(hops_done, status)`` with status 0 done, 1 no events, 2 t_stop reached."""
        cdef int64_t done = 0
        cdef int status
        if max_hops < 0:
            raise ValueError("max_hops must be >= 0")
        with self.bit_generator.lock:
            with nogil:
                status = self._run(max_hops, t_stop, &done)
        return done, status

    def run_marks(self, const double[::1] marks, double[:, :, ::1] frames, int64_t max_hops):
        """Run through the clock times ``marks`` (increasing) in one call, writing the ion
        displacements at each mark reached into ``frames[k]``, for at most ``max_hops`` hops.

        Reaching a mark is exactly :meth:`run` with ``t_stop`` at that mark, so any split of the
        marks over calls gives the same frames and state bit for bit; this only saves a return
        to Python per frame.  Returns ``(hops_done, marks_reached, status, hop_len2, ion_moves)``
        with status as in :meth:`run` (2: the last mark reached) and the sums of squared hop
        lengths and of ion moves over all ions at the last mark reached (0 if none)."""
        cdef Py_ssize_t k = 0, n_marks = marks.shape[0], n_ions = self.disp.shape[0], i
        cdef int64_t done = 0, step, moves = 0
        cdef double len2 = 0.0
        cdef int status = 0
        if max_hops < 0:
            raise ValueError("max_hops must be >= 0")
        if frames.shape[0] < n_marks or frames.shape[1] != n_ions or frames.shape[2] != 3:
            raise ValueError("frames must have room for every mark: (n_marks, n_ions, 3)")
        with self.bit_generator.lock:
            with nogil:
                while k < n_marks:
                    step = 0
                    status = self._run(max_hops - done, marks[k], &step)
                    done += step
                    # (a hop landing exactly on the mark also reaches it, as in run())
                    if status != 2 and not self.clock[0] >= marks[k]:
                        break
                    frames[k, :, :] = self.disp
                    len2 = 0.0
                    moves = 0
                    for i in range(n_ions):
                        len2 += self.sumsq[i]
                        moves += self.hops[i]
                    k += 1
                    if status != 2:
                        break
        return done, k, status, len2, moves

    def flush_class_time(self):
        """Bring the lazy per-class occupation integrals up to the current time."""
        cdef Py_ssize_t c
        cdef double now = self.clock[0]
        for c in range(self.class_n.shape[0]):
            self._class_move(c, 0, now)

    cdef void _sync_fields(self) noexcept nogil:
        # the table models' hops keep only the keys: hq = kq * g exactly (every field is a
        # multiple of g), for _rate and fields_eV
        cdef Py_ssize_t s
        if self.rtab != NULL:
            for s in range(self.n_sites):
                self.hq[s] = (self.kq[s] - (self.occ[s] != 0) * self.k_closed) * self.g_q

    @property
    def rates(self):
        """Rate of every event in the current state (computed now, by the engine's own code)."""
        self._sync_fields()
        out = np.zeros(self.n_events)
        cdef double[::1] o = out
        cdef Py_ssize_t s, e, base
        cdef int64_t evals = self.n_evals
        for s in range(self.n_sites):
            base = self._tmpl_base(s)
            for e in range(self._lo(self.uoff_out, self.pc_out, s), self._hi(self.uoff_out, self.pc_out, s)):
                o[e] = self._rate(e, s, e - base)
        self.n_evals = evals
        return out

    @property
    def work(self):
        """Deterministic work counts since construction or :meth:`reset_work`: sites marked
        (``marks``, duplicates included), site totals re-summed (``resums``) and event rates
        evaluated (``evals``; updates and selection scans, not :attr:`rates`)."""
        return {"marks": int(self.n_marks), "resums": int(self.n_resums),
                "evals": int(self.n_evals)}

    def reset_work(self):
        """Zero the :attr:`work` counters."""
        self.n_marks = self.n_resums = self.n_evals = 0

    @property
    def rate_table_entries(self):
        """Entries of the rate table (both halves; 0: rates through the exp() memo)."""
        return int(self.n_rtab)

    @property
    def fields_eV(self):
        """Pair-interaction field on every site from the mobile ions (eV)."""
        self._sync_fields()
        return self._hq_array * QUANTUM_EV

    @property
    def exclusion_counts(self):
        a = self._excnt_array.view()
        a.flags.writeable = False
        return a

    @property
    def total_rate(self):
        return self.tree.total()

    @property
    def site_totals(self):
        return np.asarray(self.tree.tree)[self.tree.cap:self.tree.cap + self.n_sites].copy()

    @property
    def nbytes(self):
        """Bytes held by every array the engine uses (static spec, state, derived, sum tree)."""
        total = sum(np.asarray(a).nbytes for a in self.spec.values())
        total += sum(np.asarray(a).nbytes for a in self.state.values())
        total += self._hq_array.nbytes + self._excnt_array.nbytes + self._kq_array.nbytes
        total += np.asarray(self.tree.tree).nbytes + np.asarray(self.dirty).nbytes
        total += np.asarray(self.is_dirty).nbytes + np.asarray(self.t_rclass).nbytes
        total += np.asarray(self.open_nbr).nbytes
        total += np.asarray(self.t_e0).nbytes + np.asarray(self.t_toff).nbytes
        total += self.n_rtab * sizeof(double)
        total += MEMO_SIZE * sizeof(RateMemo)
        return int(total)

    def __reduce__(self):
        # the derived arrays are rebuilt exactly from occ; the bit generator pickles its state
        return (Engine, (self.spec, self.state, self.bit_generator, self.beta, self.static))
