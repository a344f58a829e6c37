/* The floor for bench/bench.pl: one benchmark case without Perl.
 *
 * Built by bench.pl with cc, twice:
 *   floor-c     0.17's locking protocol and chain (doc/FORMAT.md) written
 *               out in C: the same semop calls, 64 KB segments chained on the
 *               keys after the share's own, and the least copying the protocol
 *               allows (one copy of the bytes). An unchanged value
 *               (fetch-unchanged, two-readers) is told without the lock, as
 *               our core does (doc/FORMAT.md 6): the head's stamp, a GETVAL
 *               of the writer semaphore, the stamp again; 0.17's locked
 *               fetch only when that says no.
 *   floor-core  (-DSL_CORE) the same cases through our Rust core's C ABI
 *               (xs/sharelite.h), to split our time into core and Perl/XS.
 *
 * usage: floor KIND SIZE SECONDS CALIBRATE KEY   (SIZE is ignored by lock-*, version)
 * prints: RESULT ops_per_sec=N iterations=N seconds=S [semop_ns=N copy_ns=N] [getval_ns=N]
 * (floor-c: semop and copy times for store, fetch, pair; the GETVAL's for
 * fetch-unchanged, two-readers; each part timed alone, in a loop of its own)
 * The share lives on KEY, the first of a block of free keys that bench.pl
 * reserved for the run (the C chain takes the keys after it), and is removed
 * at the end; bench.pl removes what a failed run left in that block. */

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

#ifdef SL_CORE
#include "sharelite.h"
#endif

#define SEG_SIZE 65536
#define HDR 16
#define DATA (SEG_SIZE - HDR)
#define MAX_SEGS 256
#define LOCK_SH 1
#define LOCK_EX 2

static void die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Keeps the compiler from dropping reads whose result is unused. */
static volatile uint32_t sink;

/* The case's value size: the room of the buffer fetches copy into. */
static size_t size;

#ifndef SL_CORE
/* ------------------------------------------------------------------------
 * 0.17's protocol in C */

struct header {
    volatile int32_t next_shmid;
    volatile int32_t length;
    volatile uint32_t shm_state;
    volatile uint32_t version;
};

struct handle {
    int key;
    int semid;
    int nseg;                /* attached segments; seg[0] is the head */
    char *seg[MAX_SEGS];
    uint32_t shm_state;      /* the head's shm_state when seg[1..] were attached */
    int seen;                /* a fetch copied the value, with this stamp: */
    uint32_t seen_version;
    int32_t seen_length;
    uint32_t seen_shm_state;
};

#define HEAD(h) ((struct header *)(h)->seg[0])
#define HDR_OF(p) ((struct header *)(p))

union semun_arg {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

static struct sembuf lock_ex_ops[] = { { 1, 0, 0 }, { 2, 0, 0 }, { 2, 1, SEM_UNDO } };
static struct sembuf unlock_ex_ops[] = { { 2, -1, SEM_UNDO | IPC_NOWAIT } };
static struct sembuf lock_sh_ops[] = { { 2, 0, 0 }, { 1, 1, SEM_UNDO } };
static struct sembuf unlock_sh_ops[] = { { 1, -1, SEM_UNDO | IPC_NOWAIT } };

static void sem(struct handle *h, struct sembuf *ops, size_t n)
{
    if (semop(h->semid, ops, n) < 0)
        die("semop");
}
static void lock_ex(struct handle *h) { sem(h, lock_ex_ops, 3); }
static void unlock_ex(struct handle *h) { sem(h, unlock_ex_ops, 1); }
static void lock_sh(struct handle *h) { sem(h, lock_sh_ops, 2); }
static void unlock_sh(struct handle *h) { sem(h, unlock_sh_ops, 1); }

static char *attach(int shmid)
{
    char *p = shmat(shmid, NULL, 0);
    if (p == (char *)-1)
        die("shmat");
    return p;
}

static void open_share(struct handle *h, int key, int create)
{
    int flags = create ? IPC_CREAT | 0600 : 0;
    memset(h, 0, sizeof *h);
    h->key = key;
    if ((h->semid = semget(key, 3, flags)) < 0)
        die("semget");
    lock_ex(h);
    int shmid = shmget(key, SEG_SIZE, flags);
    if (shmid < 0)
        die("shmget");
    h->seg[0] = attach(shmid);
    h->nseg = 1;
    if (semctl(h->semid, 0, GETVAL) == 0) {
        union semun_arg one = { .val = 1 };
        if (semctl(h->semid, 0, SETVAL, one) < 0)
            die("semctl SETVAL");
        HEAD(h)->length = 0;
        HEAD(h)->next_shmid = -1;
        HEAD(h)->shm_state = 1;
        HEAD(h)->version = 1;
    }
    h->shm_state = HEAD(h)->shm_state;
    unlock_ex(h);
}

/* Store step 2 / fetch: forget the chain when the head says it was cut. */
static void check_state(struct handle *h)
{
    if (h->shm_state == HEAD(h)->shm_state)
        return;
    for (int i = 1; i < h->nseg; i++)
        shmdt(h->seg[i]);
    h->nseg = 1;
    h->shm_state = HEAD(h)->shm_state;
}

/* Segment i of the chain, attaching it by the previous one's next_shmid or,
 * when the chain ends there and create is set, creating it on the next free
 * key as 0.17 does. */
static char *segment(struct handle *h, int i, int create)
{
    if (i < h->nseg)
        return h->seg[i];
    if (i >= MAX_SEGS) {
        errno = EFBIG;
        die("chain");
    }
    struct header *prev = HDR_OF(h->seg[i - 1]);
    if (prev->next_shmid >= 0) {
        h->seg[i] = attach(prev->next_shmid);
    } else {
        if (!create) {
            errno = EINVAL;
            die("chain ends before the value");
        }
        int shmid = -1;
        for (int key = h->key + 1; shmid < 0; key++) {
            shmid = shmget(key, SEG_SIZE, IPC_CREAT | IPC_EXCL | 0600);
            if (shmid < 0 && errno != EEXIST && errno != EIDRM)
                die("shmget chained");
        }
        h->seg[i] = attach(shmid);
        HDR_OF(h->seg[i])->next_shmid = -1;
        HDR_OF(h->seg[i])->length = 0;
        prev->next_shmid = shmid;
    }
    h->nseg = i + 1;
    return h->seg[i];
}

static size_t chunks(size_t n)
{
    return n ? (n + DATA - 1) / DATA : 1;
}

static void copy_in(struct handle *h, const char *buf, size_t n)
{
    for (size_t i = 0, off = 0; off < n; i++, off += DATA)
        memcpy(segment(h, i, 1) + HDR, buf + off, n - off < DATA ? n - off : DATA);
}

static void copy_out(struct handle *h, char *buf, size_t n)
{
    for (size_t i = 0, off = 0; off < n; i++, off += DATA)
        memcpy(buf + off, segment(h, i, 0) + HDR, n - off < DATA ? n - off : DATA);
}

/* Removes the segment shmid and every one its links reach. */
static void remove_chain(int shmid)
{
    while (shmid >= 0) {
        char *p = attach(shmid);
        int next = HDR_OF(p)->next_shmid;
        shmctl(shmid, IPC_RMID, NULL);
        shmdt(p);
        shmid = next;
    }
}

static void store(struct handle *h, const char *buf, size_t n)
{
    lock_ex(h);
    check_state(h);
    HEAD(h)->length = 0;
    copy_in(h, buf, n);
    HEAD(h)->length = (int32_t)n;
    /* Cut the chain after the last segment used (0.17's order). */
    size_t last = chunks(n) - 1;
    struct header *tail = HDR_OF(segment(h, last, 1));
    if (tail->next_shmid >= 0) {
        remove_chain(tail->next_shmid);
        for (int i = last + 1; i < h->nseg; i++)
            shmdt(h->seg[i]);
        h->nseg = last + 1;
        tail->next_shmid = -1;
        h->shm_state = ++HEAD(h)->shm_state;
    }
    HEAD(h)->version++;
    unlock_ex(h);
}

/* Under the lock: remember the stamp of the value just copied. */
static void saw(struct handle *h)
{
    h->seen = 1;
    h->seen_version = HEAD(h)->version;
    h->seen_length = HEAD(h)->length;
    h->seen_shm_state = HEAD(h)->shm_state;
}

static size_t fetch(struct handle *h, char *buf)
{
    lock_sh(h);
    check_state(h);
    size_t n = (size_t)HEAD(h)->length;
    copy_out(h, buf, n);
    saw(h);
    unlock_sh(h);
    return n;
}

/* The head's stamp equals the one of the value last copied; the acquire
 * fences keep its loads on their side of the GETVAL system call (as the
 * core's FetchCache::unchanged_unlocked; on x86-64 they only bind the
 * compiler). */
static int stamp_seen(struct handle *h)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    int same = HEAD(h)->version == h->seen_version && HEAD(h)->length == h->seen_length
        && HEAD(h)->shm_state == h->seen_shm_state;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return same;
}

/* The writer semaphore (2) is 0: no exclusive lock held at this moment.
 * semctl GETVAL reads the set and writes nothing the readers share. */
static int writer_idle(struct handle *h)
{
    return semctl(h->semid, 2, GETVAL) == 0;
}

/* A fetch that keeps the caller's copy when the value is unchanged. First
 * the check without the lock (doc/FORMAT.md 6, "Unchanged values are not
 * copied again"): the stamp, the writer semaphore, the stamp again; when it
 * says no, 0.17's locked fetch, which compares the stamp under the shared
 * lock and copies only when it moved. */
static size_t fetch_kept(struct handle *h, char *buf)
{
    if (h->seen && stamp_seen(h) && writer_idle(h) && stamp_seen(h))
        return (size_t)h->seen_length;
    lock_sh(h);
    check_state(h);
    size_t n = (size_t)HEAD(h)->length;
    if (!h->seen || HEAD(h)->version != h->seen_version || (int32_t)n != h->seen_length
        || HEAD(h)->shm_state != h->seen_shm_state) {
        copy_out(h, buf, n);
        saw(h);
    }
    unlock_sh(h);
    return n;
}

static void lock_unlock(struct handle *h, int kind)
{
    if (kind == LOCK_EX) {
        lock_ex(h);
        unlock_ex(h);
    } else {
        lock_sh(h);
        unlock_sh(h);
    }
}

static uint32_t version(struct handle *h)
{
    return HEAD(h)->version;
}

static void remove_share(struct handle *w, struct handle *r)
{
    lock_ex(w);
    remove_chain(HEAD(w)->next_shmid);
    shmctl(shmget(w->key, 0, 0), IPC_RMID, NULL);
    semctl(w->semid, 0, IPC_RMID);
    (void)r;
}

#else
/* ------------------------------------------------------------------------
 * The same operations through our Rust core's C ABI */

struct handle {
    sl_share *share;
    size_t kept_len; /* the length of the value last fetched into the buffer */
};

static void check(int rc, const char *what)
{
    if (rc != SL_OK) {
        char msg[512];
        sl_last_error(msg, sizeof msg);
        fprintf(stderr, "floor-core: %s: %s\n", what, msg);
        exit(1);
    }
}

static void open_share(struct handle *h, int key, int create)
{
    /* Removed explicitly by remove_share, so neither handle destroys it. */
    check(sl_share_open(key, SEG_SIZE, create ? IPC_CREAT | 0600 : 0, 0, &h->share), "open");
}

static void store(struct handle *h, const char *buf, size_t n)
{
    check(sl_share_store(h->share, (const uint8_t *)buf, n), "store");
}

/* Where sl_share_fetch copies the value: the case's buffer (room bytes). */
struct dest {
    char *buf;
    size_t room;
    size_t len;
};

static uint8_t *to_buffer(void *ctx, size_t len, int plan)
{
    struct dest *d = ctx;
    (void)plan;
    if (len > d->room)
        return NULL; /* the fetch fails with ENOMEM */
    d->len = len;
    return (uint8_t *)d->buf;
}

/* A fetch with nothing kept: the core copies into buf every time. */
static size_t fetch(struct handle *h, char *buf)
{
    struct dest d = { buf, size, 0 };
    int plan = SL_FETCH_FILL_NEW;
    check(sl_share_fetch(h->share, 0, 0, to_buffer, &d, &plan), "fetch");
    return h->kept_len = d.len;
}

/* A fetch that keeps buf as the copy of the value last fetched through this
 * handle (room: all of it), as the XS glue keeps its string: for an
 * unchanged value the core answers SL_FETCH_UNCHANGED from its check
 * without the lock, and buf is left alone. */
static size_t fetch_kept(struct handle *h, char *buf)
{
    struct dest d = { buf, size, 0 };
    int plan = SL_FETCH_FILL_NEW;
    check(sl_share_fetch(h->share, 1, size, to_buffer, &d, &plan), "fetch");
    return plan == SL_FETCH_UNCHANGED ? h->kept_len : (h->kept_len = d.len);
}

static void lock_unlock(struct handle *h, int kind)
{
    check(sl_share_lock(h->share, kind, -1), "lock");
    check(sl_share_unlock(h->share), "unlock");
}

static uint32_t version(struct handle *h)
{
    uint32_t v = 0;
    check(sl_share_version(h->share, &v), "version");
    return v;
}

static void remove_share(struct handle *w, struct handle *r)
{
    sl_share_free(r->share);
    check(sl_share_remove(w->share), "remove");
    sl_share_free(w->share);
}
#endif

/* ------------------------------------------------------------------------
 * Cases, timed as bench.pl times them */

static struct handle writer, reader;
static const char *kind;
static char *values[2];
static char *out;
static double timer_cost;

static int share_key_of_run;

static void fetch_kept_op(struct handle *h)
{
    fetch_kept(h, out);
}

/* n operations op through the reader while a forked process does n more
 * through a handle of its own (after one fetch, so that it keeps a copy),
 * started together; returns half the wall time, so that ops/s counts both
 * (as bench.pl's two-readers case). */
static double two_readers(long n, void (*op)(struct handle *))
{
    int ready[2], go[2];
    char byte = 0;
    if (pipe(ready) < 0 || pipe(go) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        struct handle other;
        open_share(&other, share_key_of_run, 0);
        fetch(&other, out);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &byte, 1) != 1)
            _exit(1);
        for (long i = 0; i < n; i++)
            op(&other);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    if (read(ready[0], &byte, 1) != 1) {
        fprintf(stderr, "floor: second reader did not start\n");
        exit(1);
    }
    double t0 = now();
    if (write(go[1], "g", 1) != 1)
        die("pipe");
    for (long i = 0; i < n; i++)
        op(&reader);
    int status = 0;
    waitpid(pid, &status, 0);
    double wall = now() - t0;
    close(ready[0]);
    close(go[1]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floor: second reader failed\n");
        exit(1);
    }
    return wall / 2;
}

/* Seconds spent in n operations of the case. */
static double run(long n)
{
    double t0 = now(), spent = 0;
    if (!strcmp(kind, "store")) {
        for (long i = 0; i < n; i++)
            store(&writer, values[0], size);
    } else if (!strcmp(kind, "pair")) {
        for (long i = 0; i < n; i++) {
            store(&writer, values[i & 1], size);
            fetch(&reader, out);
        }
    } else if (!strcmp(kind, "fetch")) {
        /* Only the fetch is timed, as in bench.pl. */
        for (long i = 0; i < n; i++) {
            store(&writer, values[i & 1], size);
            double t = now();
            fetch(&reader, out);
            spent += now() - t;
        }
        spent -= n * timer_cost;
        return spent > 1e-9 ? spent : 1e-9;
    } else if (!strcmp(kind, "fetch-unchanged")) {
        for (long i = 0; i < n; i++)
            fetch_kept(&reader, out);
    } else if (!strcmp(kind, "lock-ex") || !strcmp(kind, "lock-sh")) {
        int k = !strcmp(kind, "lock-ex") ? LOCK_EX : LOCK_SH;
        for (long i = 0; i < n; i++)
            lock_unlock(&writer, k);
    } else if (!strcmp(kind, "two-readers")) {
        return two_readers(n, fetch_kept_op);
    } else if (!strcmp(kind, "version")) {
        for (long i = 0; i < n; i++)
            sink = version(&writer);
    } else {
        fprintf(stderr, "floor: unknown case kind '%s'\n", kind);
        exit(2);
    }
    return now() - t0;
}

static long calibrate(double target, double min_seconds)
{
    long n = 1;
    for (;;) {
        double t0 = now();
        run(n);
        double wall = now() - t0;
        if (wall >= min_seconds) {
            long k = (long)(n * target / wall);
            return k > 1 ? k : 1;
        }
        double grow = wall > 0 ? 1.5 * min_seconds / wall : 10;
        long next = (long)(n * (grow < 10 ? grow : 10));
        n = next > n ? next : n + 1;
    }
}

#ifndef SL_CORE
static void getval_op(struct handle *h)
{
    sink = writer_idle(h);
}

/* The unchanged check's system call alone, in ns per operation of the case:
 * n GETVALs of the writer semaphore, in two processes at once for
 * two-readers (as the case runs). */
static double getval_part(long n)
{
    if (!strcmp(kind, "two-readers"))
        return two_readers(n, getval_op) / n * 1e9;
    double t0 = now();
    for (long i = 0; i < n; i++)
        getval_op(&reader);
    return (now() - t0) / n * 1e9;
}

/* The protocol's parts alone, in ns per operation of the case: the semop
 * calls and the copies. */
static void parts(long n, double *semop_ns, double *copy_ns)
{
    int store_part = !strcmp(kind, "store") || !strcmp(kind, "pair");
    int fetch_part = !strcmp(kind, "fetch") || !strcmp(kind, "pair");
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (store_part)
            lock_unlock(&writer, LOCK_EX);
        if (fetch_part)
            lock_unlock(&reader, LOCK_SH);
    }
    double t1 = now();
    for (long i = 0; i < n; i++) {
        if (store_part)
            copy_in(&writer, values[i & 1], size);
        if (fetch_part)
            copy_out(&reader, out, size);
    }
    double t2 = now();
    *semop_ns = (t1 - t0) / n * 1e9;
    *copy_ns = (t2 - t1) / n * 1e9;
}
#endif

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: floor KIND SIZE SECONDS CALIBRATE KEY\n");
        return 2;
    }
    kind = argv[1];
    size = strtoul(argv[2], NULL, 10);
    double target = atof(argv[3]), min_seconds = atof(argv[4]);
    if (size > (size_t)DATA * (MAX_SEGS - 1)) {
        fprintf(stderr, "floor: size %zu too large\n", size);
        return 2;
    }
    for (int v = 0; v < 2; v++) {
        values[v] = malloc(size + 1);
        for (size_t i = 0; i < size; i++)
            values[v][i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(i + v) % 36];
    }
    out = malloc(size + 1);
    if (!values[0] || !values[1] || !out)
        die("malloc");
    int n_timer = 200000;
    double t0 = now();
    for (int i = 0; i < n_timer; i++) {
        double t = now();
        (void)t;
    }
    timer_cost = (now() - t0) / n_timer;

    int key = (int)strtol(argv[5], NULL, 0);
    share_key_of_run = key;
    open_share(&writer, key, 1);
    open_share(&reader, key, 0);
    store(&writer, values[0], size);
    if (fetch(&reader, out) != size || memcmp(out, values[0], size)) {
        fprintf(stderr, "floor: round trip of %zu bytes failed\n", size);
        return 1;
    }

    long n = calibrate(target, min_seconds);
    double spent = run(n);
    printf("RESULT ops_per_sec=%.3f iterations=%ld seconds=%.4f", n / spent, n, spent);
#ifndef SL_CORE
    if (!strcmp(kind, "store") || !strcmp(kind, "fetch") || !strcmp(kind, "pair")) {
        double semop_ns, copy_ns;
        long m = n / 4 > 1 ? n / 4 : 1;
        parts(m, &semop_ns, &copy_ns);
        printf(" semop_ns=%.1f copy_ns=%.1f", semop_ns, copy_ns);
    }
    if (!strcmp(kind, "fetch-unchanged") || !strcmp(kind, "two-readers"))
        printf(" getval_ns=%.1f", getval_part(n / 4 > 1 ? n / 4 : 1));
#endif
    printf("\n");
    remove_share(&writer, &reader);
    return 0;
}
