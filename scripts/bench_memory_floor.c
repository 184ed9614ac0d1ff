/* What a BKL hop costs at the least on this machine, whatever the engine around it:
 * one binary sum-tree descent (the design's event selection), seven leaf updates with their
 * root paths (a hop on simple cubic changes the totals of the two sites and their neighbours),
 * and one read-modify-write of the moving ion's record at a random place.  No rate is evaluated
 * and no neighbour list is read, so kmc's real hop can only cost more.  Also a pointer chase:
 * the latency of one dependent load in arrays of growing size.
 *
 *   gcc -O3 -march=native -o floor scripts/bench_memory_floor.c -lm && ./floor
 *
 * The tree work is done the way the engine does it, with the same prefetches: the descent
 * fetches each node's descendants four levels down, the seven leaf paths and the ion record are
 * requested before they are used.
 *
 * On 2026-11-30 (the project's 2-core VM, five runs): floor 99-104 ns per hop at 10^3 sites,
 * 175-193 ns at 10^5 and 466-559 ns at 10^6; pointer chase 8-12 ns at 1 MB, 15-20 ns at 4 MB,
 * 115-132 ns at 16 MB, 144-167 ns at 64-256 MB.  Without the prefetches the floor was 98-103,
 * 250-370 and 800-1015 ns.  See README "Performance".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t state = 88172645463325252ULL;

static inline uint64_t next(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return state;
}

static inline double uniform(void) { return (next() >> 11) * (1.0 / 9007199254740992.0); }

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *huge_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 1 << 21, bytes)) { perror("posix_memalign"); exit(1); }
    madvise(p, bytes, MADV_HUGEPAGE);  /* as numpy does for large arrays */
    return p;
}

static double hop_floor_ns(size_t n) {
    size_t cap = 1, iters = 5000000, L = (size_t)(cbrt((double)n) + 0.5);
    while (cap < n) cap <<= 1;
    double *t = huge_alloc(2 * cap * sizeof(double));  /* 2 MiB-aligned, so 128 B-aligned too */
    double *ion = huge_alloc((n / 2 + 1) * 6 * sizeof(double));
    for (size_t i = 0; i < 2 * cap; i++) t[i] = 0.0;
    for (size_t i = 0; i < (n / 2 + 1) * 6; i++) ion[i] = 0.0;
    for (size_t i = 0; i < n; i++) t[cap + i] = uniform();
    for (size_t j = cap - 1; j > 0; j--) t[j] = t[2 * j] + t[2 * j + 1];
    long nbr[7] = {0, 1, -1, (long)L, -(long)L, (long)(L * L), -(long)(L * L)};
    double sink = 0.0, t0 = seconds();
    for (size_t it = 0; it < iters; it++) {
        double u = uniform() * t[1];
        size_t j = 1;
        while (j < cap) {  /* branch-free descent, as in src/kmc/engine/_sumtree.pyx */
            if (16 * j < 2 * cap) {  /* the 16 descendants four levels down: two cache lines */
                __builtin_prefetch(&t[16 * j]);
                __builtin_prefetch(&t[16 * j + 8]);
            }
            double left = t[2 * j];
            int right = (u >= left) & (t[2 * j + 1] > 0.0);
            u -= left * right;
            j = 2 * j + right;
        }
        size_t leaf = j - cap < n ? j - cap : n - 1;
        double *rec = ion + 6 * ((leaf * 2654435761u) % (n / 2));
        __builtin_prefetch(rec, 1);  /* as the engine does: load it while the tree is updated */
        size_t dirty[7];
        for (int q = 0; q < 7; q++) {  /* as the engine marks dirty sites: prefetch first */
            size_t k = dirty[q] = cap + (size_t)(((long)leaf + nbr[q] + (long)n) % (long)n);
            __builtin_prefetch(&t[k], 1);
            for (int l = 0; cap >= 32768 && l < 8; l++) { k >>= 1; __builtin_prefetch(&t[k], 1); }
        }
        for (int q = 0; q < 7; q++) {
            size_t k = dirty[q];
            double v = uniform();
            t[k] = v;
            while (k > 1) { v += t[k ^ 1]; k >>= 1; t[k] = v; }
        }
        rec[0] += 1.0; rec[1] += 1.0; rec[2] += 1.0; rec[3] += 1.0;
        sink += u;
    }
    double ns = (seconds() - t0) / iters * 1e9;
    free(t); free(ion);
    return sink == -1.0 ? 0.0 : ns;
}

static double chase_ns(size_t megabytes) {
    size_t n = megabytes * 1024 * 1024 / sizeof(uint64_t), iters = 20000000, p = 0;
    uint64_t *a = huge_alloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) a[i] = i;
    for (size_t i = n - 1; i > 0; i--) {  /* one random cycle through the whole array */
        size_t j = next() % (i + 1), tmp = a[i];
        a[i] = a[j]; a[j] = tmp;
    }
    double t0 = seconds();
    for (size_t i = 0; i < iters; i++) p = a[p];
    double ns = (seconds() - t0) / iters * 1e9;
    free(a);
    return p == (size_t)-1 ? 0.0 : ns;
}

int main(void) {
    size_t sizes[] = {1000, 100000, 1000000};
    size_t mbs[] = {1, 4, 16, 64, 256};
    for (int i = 0; i < 3; i++)
        printf("hop floor, %7zu sites: %6.0f ns per hop\n", sizes[i], hop_floor_ns(sizes[i]));
    for (int i = 0; i < 5; i++)
        printf("pointer chase, %3zu MB: %6.1f ns per load\n", mbs[i], chase_ns(mbs[i]));
    return 0;
}
