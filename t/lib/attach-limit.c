/* attach-limit.c: LD_PRELOAD library for t/26-attach-limit.t. It gives the
 * process a limit on how many SysV segments it may have attached at once, as
 * macOS (kern.sysv.shmseg, 8 by default) and the BSDs (kern.ipc.shmseg) have
 * and Linux has not: past ATTACH_LIMIT attachments shmat(2) fails with EMFILE.
 * It counts what this process attached and detached through the C library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/shm.h>

static int held;

static int
limit(void)
{
    const char *v = getenv("ATTACH_LIMIT");
    return v && *v ? atoi(v) : 8;
}

void *
shmat(int shmid, const void *addr, int flags)
{
    static void *(*next)(int, const void *, int);
    void *p;
    if (!next)
        next = (void *(*)(int, const void *, int))dlsym(RTLD_NEXT, "shmat");
    if (__atomic_load_n(&held, __ATOMIC_SEQ_CST) >= limit()) {
        errno = EMFILE;
        return (void *)-1;
    }
    p = next(shmid, addr, flags);
    if (p != (void *)-1)
        __atomic_add_fetch(&held, 1, __ATOMIC_SEQ_CST);
    return p;
}

int
shmdt(const void *addr)
{
    static int (*next)(const void *);
    int rc;
    if (!next)
        next = (int (*)(const void *))dlsym(RTLD_NEXT, "shmdt");
    rc = next(addr);
    if (rc == 0)
        __atomic_sub_fetch(&held, 1, __ATOMIC_SEQ_CST);
    return rc;
}
