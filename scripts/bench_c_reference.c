/* Hand-written C reference for the kmc engine: rejection-free (BKL) kMC of ions hopping between
 * nearest neighbours of a periodic simple-cubic L^3 lattice, every hop with the same rate, in
 * plain C with nothing general about it.  It uses the same algorithm as kmc (a binary sum tree
 * over the sites' total outgoing rates, descended to pick the hopping site, whose empty
 * neighbours are then scanned; after a hop only the totals that changed are recomputed and
 * their root paths rebuilt as left + right, no drift) and keeps the same per-ion records
 * (unwrapped displacement, squared hop lengths, hop count), so it is the speed kmc's Cython
 * engine should be compared with on the same lattice.  It omits everything kmc needs for
 * generality: rate evaluation (a total is rate * number of empty neighbours), event templates,
 * exclusions, interaction fields, class occupation integrals; it keeps a neighbour table (six
 * int32 per site), which is what kmc's event list amounts to on this lattice.
 *
 *   gcc -O3 -o bkl_ref scripts/bench_c_reference.c -lm && ./bkl_ref
 *
 * (-O3 without -march=native, as kmc's extension is built.)  Prints ns per hop for a single
 * vacancy and for a half-filled lattice at about 10^3 .. 10^6 sites, best of three timed runs.
 * `./bkl_ref L vacancy|half HOPS` instead runs HOPS hops once in run_hops(), for counting
 * instructions per hop, e.g. with
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=run_hops ./bkl_ref 10 vacancy 100000
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static inline double uniform(void) {  /* xorshift64*: a fast generator, as a C code would use */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return ((rng_state * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct {
    long L, n, cap;
    int8_t *occ;      /* 1 ion, 0 empty */
    int32_t *nb;      /* 6 neighbours per site */
    int32_t *ion_at;  /* ion on each site, -1 if empty */
    double *tree;     /* 2 * cap nodes, leaves at cap .. cap + n - 1 */
    double *disp;     /* 3 per ion */
    double *sumsq;
    int64_t *hops;
    uint8_t *dirty_flag;
    double rate, clock;
} Lattice;

static inline long nbr(const Lattice *g, long s, int k) { return g->nb[6 * s + k]; }

static long nbr_of_coords(const Lattice *g, long s, int k) {
    long L = g->L, x = s % L, y = (s / L) % L, z = s / (L * L);
    switch (k) {
        case 0: x = (x + 1) % L; break;
        case 1: x = (x + L - 1) % L; break;
        case 2: y = (y + 1) % L; break;
        case 3: y = (y + L - 1) % L; break;
        case 4: z = (z + 1) % L; break;
        default: z = (z + L - 1) % L; break;
    }
    return x + L * (y + L * z);
}

static inline double site_total(const Lattice *g, long s) {
    if (!g->occ[s]) return 0.0;
    int empty = 0;
    for (int k = 0; k < 6; k++) empty += !g->occ[nbr(g, s, k)];
    return g->rate * empty;
}

static inline void tree_set(Lattice *g, long i, double v) {
    long j = i + g->cap;
    double *t = g->tree;
    t[j] = v;
    while (j > 1) { v += t[j ^ 1]; j >>= 1; t[j] = v; }
}

static void setup(Lattice *g, long L, long n_ions) {
    g->L = L; g->n = L * L * L; g->cap = 1;
    while (g->cap < g->n) g->cap <<= 1;
    g->occ = calloc(g->n, 1);
    g->nb = malloc(6 * g->n * sizeof(int32_t));
    for (long s = 0; s < g->n; s++)
        for (int k = 0; k < 6; k++) g->nb[6 * s + k] = (int32_t)nbr_of_coords(g, s, k);
    g->ion_at = malloc(g->n * sizeof(int32_t));
    g->tree = calloc(2 * g->cap, sizeof(double));
    g->disp = calloc(3 * n_ions, sizeof(double));
    g->sumsq = calloc(n_ions, sizeof(double));
    g->hops = calloc(n_ions, sizeof(int64_t));
    g->dirty_flag = calloc(g->n, 1);
    g->rate = 1e13 * exp(-0.25 / (8.617333262e-5 * 600.0));
    g->clock = 0.0;
    long *perm = malloc(g->n * sizeof(long));
    for (long i = 0; i < g->n; i++) perm[i] = i;
    for (long i = g->n - 1; i > 0; i--) {
        long j = (long)(uniform() * (i + 1)), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
    for (long i = 0; i < g->n; i++) g->ion_at[i] = -1;
    for (long i = 0; i < n_ions; i++) { g->occ[perm[i]] = 1; g->ion_at[perm[i]] = (int32_t)i; }
    free(perm);
    for (long s = 0; s < g->n; s++) g->tree[g->cap + s] = site_total(g, s);
    for (long j = g->cap - 1; j > 0; j--) g->tree[j] = g->tree[2 * j] + g->tree[2 * j + 1];
}

static void release(Lattice *g) {
    free(g->occ); free(g->nb); free(g->ion_at); free(g->tree); free(g->disp); free(g->sumsq); free(g->hops);
    free(g->dirty_flag);
}

static void hop(Lattice *g) {
    double *t = g->tree;
    double total = t[1];
    g->clock += -log(1.0 - uniform()) / total;
    double u = uniform() * total;
    long j = 1;
    while (j < g->cap) {  /* never step into an empty subtree (rounding) */
        double left = t[2 * j];
        int right = (u >= left) & (t[2 * j + 1] > 0.0);
        u -= left * right;
        j = 2 * j + right;
    }
    long s = j - g->cap, d = -1;
    int kd = 0;
    for (int k = 0; k < 6; k++) {
        long m = nbr(g, s, k);
        if (!g->occ[m]) {
            d = m; kd = k;
            if (u < g->rate) break;
            u -= g->rate;
        }
    }
    int32_t ion = g->ion_at[s];
    g->occ[s] = 0; g->occ[d] = 1;
    g->ion_at[s] = -1; g->ion_at[d] = ion;
    /* the totals that change: s, d and their occupied neighbours */
    long dirty[14];
    int nd = 0;
    long two[2] = {s, d};
    for (int q = 0; q < 2; q++) {
        long x = two[q];
        if (!g->dirty_flag[x]) { g->dirty_flag[x] = 1; dirty[nd++] = x; }
        for (int k = 0; k < 6; k++) {
            long m = nbr(g, x, k);
            if (g->occ[m] && !g->dirty_flag[m]) { g->dirty_flag[m] = 1; dirty[nd++] = m; }
        }
    }
    for (int i = 0; i < nd; i++) {
        g->dirty_flag[dirty[i]] = 0;
        double v = site_total(g, dirty[i]);
        if (v != t[g->cap + dirty[i]]) tree_set(g, dirty[i], v);
    }
    g->disp[3 * ion + kd / 2] += (kd & 1) ? -1.0 : 1.0;
    g->sumsq[ion] += 1.0;
    g->hops[ion] += 1;
}

static double ns_per_hop(long L, int vacancy) {
    Lattice g;
    long n = L * L * L, iters = 2000000, best = 0;
    double best_ns = 1e30;
    setup(&g, L, vacancy ? n - 1 : n / 2);
    for (long i = 0; i < iters / 10; i++) hop(&g);  /* warm-up */
    for (int r = 0; r < 3; r++) {
        double t0 = seconds();
        for (long i = 0; i < iters; i++) hop(&g);
        double ns = (seconds() - t0) / iters * 1e9;
        if (ns < best_ns) best_ns = ns;
    }
    best = (long)g.hops[0];
    release(&g);
    return best < 0 ? 0.0 : best_ns;
}

__attribute__((noinline)) void run_hops(Lattice *g, long hops) {
    for (long i = 0; i < hops; i++) hop(g);
}

int main(int argc, char **argv) {
    if (argc == 4) {
        Lattice g;
        long L = atol(argv[1]), n = L * L * L;
        setup(&g, L, strcmp(argv[2], "vacancy") == 0 ? n - 1 : n / 2);
        run_hops(&g, 20000);  /* warm-up, as for kmc */
        run_hops(&g, atol(argv[3]));
        printf("clock %g\n", g.clock);
        release(&g);
        return 0;
    }
    long Ls[] = {10, 22, 46, 100};
    for (int i = 0; i < 4; i++) {
        long L = Ls[i];
        printf("sc %3ld^3 (%7ld sites): single vacancy %6.1f ns/hop, half-filled %6.1f ns/hop\n",
               L, L * L * L, ns_per_hop(L, 1), ns_per_hop(L, 0));
        fflush(stdout);
    }
    return 0;
}
