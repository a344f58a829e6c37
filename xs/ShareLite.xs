/* XS glue for IPC::ShareLite: argument conversion only. All logic is in the
 * Rust core (rust-core/, C ABI in xs/sharelite.h). Rust returns a status;
 * croak is called here, after the Rust call has returned. */

#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "sharelite.h"

/* Copy-on-write string copies, which the core makes by default but XS must
 * ask for. Safe here: no buffer is written while it is shared (see kept_room). */
#ifndef SV_COW_OTHER_PVS
#  define SV_COW_OTHER_PVS 0
#endif
#ifndef SV_COW_SHARED_HASH_KEYS
#  define SV_COW_SHARED_HASH_KEYS 0
#endif
#define COW_FLAGS (SV_COW_SHARED_HASH_KEYS | SV_COW_OTHER_PVS)

/* A fact for the core's fetch cache, which decides (rust-core/src/
 * fetch_cache.rs): how many bytes of a value the kept copy's buffer can take
 * in place. 0 unless it is a string buffer of its own that nobody else shares
 * any more (every copy handed out was dropped or written to) and that may be
 * written. Two of its bytes are perl's: the NUL and the copy-on-write count. */
static size_t
kept_room(SV *kept)
{
#ifdef PERL_COPY_ON_WRITE
    if (!SvPOK(kept) || SvREADONLY(kept) || SvLEN(kept) < 2)
        return 0;
    if (SvIsCOW(kept) && CowREFCNT(kept) != 0)
        return 0;
    return SvLEN(kept) - 2;
#else
    (void)kept;
    return 0;
#endif
}

/* $! from the core's last failure. */
#define CORE_ERRNO() SETERRNO(sl_last_errno(), 0)

/* A blocking wait interrupted by a signal: run Perl's handler for it (which
 * may die: no lock is held and no Rust frame is on the stack here), then let
 * the caller try again. */
static int
interrupted(pTHX_ int rc)
{
    if (rc != SL_ERROR || sl_last_errno() != EINTR)
        return 0;
    PERL_ASYNC_CHECK();
    return 1;
}
#define INTERRUPTED(rc) interrupted(aTHX_ (rc))

/* The one error path: "IPC::ShareLite <what> error: <reason>", $! set. */
static void
croak_core(pTHX_ const char *what)
{
    char msg[512];
    sl_last_error(msg, sizeof msg);
    CORE_ERRNO();
    croak("IPC::ShareLite %s error: %s", what, msg);
}

/* The object's handle hangs off the object as extension magic, which owns
 * it: freeing the object frees the handle (svt_free), and a new thread gets
 * a handle of its own (svt_dup), so Perl never holds the raw pointer. The
 * magic's object slot keeps the last large value fetched (see fetch). The
 * core decides what freeing does (unlock, remove: sl_share_free). */
static int
handle_free(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    sl_share_free((sl_share *)mg->mg_ptr);
    mg->mg_ptr = NULL;
    return 0;
}

#ifdef USE_ITHREADS
/* A thread's copy of the object gets a handle of its own on the same share,
 * which never removes it (the core's rule for clones). If the share cannot
 * be attached again, the copy has none and its methods croak. */
static int
handle_dup(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    sl_share *copy = NULL;
    PERL_UNUSED_ARG(param);
    if (mg->mg_ptr && sl_share_clone((sl_share *)mg->mg_ptr, &copy) != SL_OK)
        copy = NULL;
    mg->mg_ptr = (char *)copy;
    return 0;
}
#else
#  define handle_dup NULL
#endif

static MGVTBL handle_vtbl = { NULL, NULL, NULL, NULL, handle_free, NULL, handle_dup, NULL };

static MAGIC *
handle_magic(pTHX_ SV *self)
{
    if (!SvROK(self) || SvTYPE(SvRV(self)) != SVt_PVHV)
        croak("IPC::ShareLite: method called without an object");
    return SvRMAGICAL(SvRV(self)) ? mg_findext(SvRV(self), PERL_MAGIC_ext, &handle_vtbl) : NULL;
}

/* The one handle check (the typemap's, for every method). */
static MAGIC *
open_magic(pTHX_ SV *self)
{
    MAGIC *mg = handle_magic(aTHX_ self);
    if (!mg || !mg->mg_ptr)
        croak("IPC::ShareLite: the object has no open share");
    return mg;
}
#define handle_of(self) ((sl_share *)open_magic(aTHX_ (self))->mg_ptr)

/* What fetch's destination callback needs and leaves: called by the core
 * under the lock once the length is known. It only allocates (perl's
 * allocator exits the process when memory runs out; it never croaks). */
struct fetch_dest {
#ifdef PERL_IMPLICIT_CONTEXT
    PerlInterpreter *perl;
#endif
    SV *kept;   /* the kept copy, or NULL */
    SV *value;  /* the string filled */
    size_t len;
};

static uint8_t *
fetch_dest(void *ctx, size_t len, int plan)
{
    struct fetch_dest *d = (struct fetch_dest *)ctx;
#ifdef PERL_IMPLICIT_CONTEXT
    dTHXa(d->perl);
#endif
    d->len = len;
    if (plan == SL_FETCH_FILL_KEPT && d->kept) {
        /* In place: no allocation; len is at most its room. */
        d->value = d->kept;
    } else {
        /* Two spare bytes: the NUL, and room for a copy-on-write count. */
        d->value = newSV(len + 2);
        SvPOK_only(d->value);
    }
    return (uint8_t *)SvPVX(d->value);
}

/* Collects what sl_look and sl_orphan report, field by field, into a hash:
 * numbers and strings as values, list items into an array under their name. */
struct fields {
#ifdef PERL_IMPLICIT_CONTEXT
    PerlInterpreter *perl;
#endif
    HV *hv;
};

static void
field(void *ctx, const char *name, int kind, int64_t number, const char *text)
{
    struct fields *f = (struct fields *)ctx;
#ifdef PERL_IMPLICIT_CONTEXT
    dTHXa(f->perl);
#endif
    I32 len = (I32)strlen(name);
    if (kind == SL_FIELD_LIST_ITEM) {
        SV **slot = hv_fetch(f->hv, name, len, 1);
        if (!SvROK(*slot)) {
            SV *rv = newRV_noinc((SV *)newAV());
            sv_setsv(*slot, rv);
            SvREFCNT_dec(rv);
        }
        av_push((AV *)SvRV(*slot), newSViv((IV)number));
    } else {
        (void)hv_store(f->hv, name, len, kind == SL_FIELD_TEXT ? newSVpv(text, 0) : newSViv((IV)number), 0);
    }
}

static struct fields
new_fields(pTHX)
{
    struct fields f;
#ifdef PERL_IMPLICIT_CONTEXT
    f.perl = aTHX;
#endif
    f.hv = newHV();
    sv_2mortal((SV *)f.hv);
    return f;
}

MODULE = IPC::ShareLite    PACKAGE = IPC::ShareLite

PROTOTYPES: DISABLE

int
_open(self, key, size, flags, destroy)
    SV *self
    IV key
    UV size
    IV flags
    IV destroy
  PREINIT:
    sl_share *share = NULL;
    int rc;
    size_t sz;
    MAGIC *mg;
    SV *kept;
  CODE:
    /* 0 on failure, with $! set: the caller croaks (from the user's line). */
    if (handle_magic(aTHX_ self))
        croak("IPC::ShareLite: the object is open already");
    /* A size beyond size_t (a 32-bit system) goes to the kernel as the
     * largest one, which it refuses, rather than wrapped to a small one. */
    sz = size > (UV)SIZE_MAX ? SIZE_MAX : (size_t)size;
    do
        rc = sl_share_open((key_t)key, sz, (int)flags, destroy ? 1 : 0, &share);
    while (INTERRUPTED(rc));
    if (rc == SL_OK) {
        kept = newSV(0);
        mg = sv_magicext(SvRV(self), kept, PERL_MAGIC_ext, &handle_vtbl, (const char *)share, 0);
        mg->mg_flags |= MGf_REFCOUNTED;  /* sv_magicext took its own reference */
        SvREFCNT_dec(kept);
#ifdef USE_ITHREADS
        mg->mg_flags |= MGf_DUP;
#endif
    } else {
        CORE_ERRNO();
    }
    RETVAL = rc == SL_OK;
  OUTPUT:
    RETVAL

SV *
_last_error()
  PREINIT:
    char msg[512];
  CODE:
    sl_last_error(msg, sizeof msg);
    RETVAL = newSVpv(msg, 0);
  OUTPUT:
    RETVAL

void
_set_destroy(share, destroy)
    sl_share *share
    IV destroy
  CODE:
    if (sl_share_set_destroy(share, destroy ? 1 : 0) != SL_OK)
        croak_core(aTHX_ "destroy()");

IV
remove(share)
    sl_share *share
  CODE:
    if (sl_share_remove(share) != SL_OK)
        croak_core(aTHX_ "remove()");
    RETVAL = 1;
  OUTPUT:
    RETVAL

UV
_segment_size(share)
    sl_share *share
  PREINIT:
    size_t size = 0;
  CODE:
    if (sl_share_segment_size(share, &size) != SL_OK)
        croak_core(aTHX_ "size()");
    RETVAL = size;
  OUTPUT:
    RETVAL

IV
store(self, value = &PL_sv_undef)
    SV *self
    SV *value
  PREINIT:
    const char *bytes = "";
    STRLEN len = 0;
    int rc;
  CODE:
    if (SvOK(value)) {
        if (SvROK(value) && !SvAMAGIC(value))
            Perl_ck_warner(aTHX_ packWARN(WARN_MISC),
                "IPC::ShareLite store(): storing a reference stores only its address (%" SVf "); "
                "serialize it first, e.g. with Storable's freeze", SVfARG(value));
        if (SvUTF8(value)) {
            value = sv_mortalcopy(value);
            if (!sv_utf8_downgrade(value, TRUE)) {
                SETERRNO(EILSEQ, 0);
                croak("IPC::ShareLite store() error: Wide character in store");
            }
        }
        bytes = SvPV_const(value, len);
    }
    /* The handle is looked up on every try: a signal handler may have
     * dropped the object. */
    do
        rc = sl_share_store(handle_of(self), (const uint8_t *)bytes, len);
    while (INTERRUPTED(rc));
    if (rc != SL_OK)
        croak_core(aTHX_ "store()");
    RETVAL = 1;
  OUTPUT:
    RETVAL

void
fetch(self)
    SV *self
  PREINIT:
    MAGIC *mg;
    SV *kept;
    struct fetch_dest d;
    int plan = SL_FETCH_FILL_NEW;
    int rc;
  PPCODE:
#ifdef PERL_IMPLICIT_CONTEXT
    d.perl = aTHX;
#endif
    /* The value of the last fetch may be kept in the magic and handed out
     * again as a copy-on-write copy: the core decides, from what is kept.
     * Looked up on every try: a signal handler may have fetched through this
     * object, or dropped it. */
    do {
        mg = open_magic(aTHX_ self);
        kept = mg->mg_obj;
        d.kept = kept;
        d.value = NULL;
        d.len = 0;
        rc = sl_share_fetch((sl_share *)mg->mg_ptr, kept && SvPOK(kept) ? 1 : 0, kept ? kept_room(kept) : 0,
            fetch_dest, &d, &plan);
        if (rc != SL_OK && d.value && d.value != kept)
            SvREFCNT_dec(d.value);
    } while (INTERRUPTED(rc));
    if (rc != SL_OK)
        croak_core(aTHX_ "fetch()");
    if (plan == SL_FETCH_UNCHANGED || plan == SL_FETCH_FILL_KEPT) {
        if (plan == SL_FETCH_FILL_KEPT) {
            SvCUR_set(kept, d.len);
            *SvEND(kept) = '\0';
        }
        d.value = newSV(0);
        sv_setsv_flags(d.value, kept, COW_FLAGS);
    } else {
        SvCUR_set(d.value, d.len);
        *SvEND(d.value) = '\0';
        if (kept) {
            if (plan == SL_FETCH_FILL_NEW_KEEP)
                sv_setsv_flags(kept, d.value, COW_FLAGS);
            else if (SvOK(kept))
                sv_setsv(kept, &PL_sv_undef);
        }
    }
    mXPUSHs(d.value);

void
lock(self, flags = &PL_sv_undef, timeout = &PL_sv_undef)
    SV *self
    SV *flags
    SV *timeout
  PREINIT:
    dXSTARG;
    int64_t timeout_ns = -1;
    int rc;
  PPCODE:
    if (SvOK(timeout)) {
        NV t = SvNV(timeout);
        timeout_ns = t <= 0 ? 0 : t >= 9.2e9 ? INT64_MAX : (int64_t)(t * 1e9);
    }
    do
        rc = sl_share_lock(handle_of(self), SvOK(flags) ? (int)SvIV(flags) : 0, timeout_ns);
    while (INTERRUPTED(rc));
    if (rc != SL_OK && rc != SL_WOULD_BLOCK) {
        CORE_ERRNO();
        XSRETURN_UNDEF;
    }
    PUSHi(rc == SL_OK ? 1 : 0);

void
unlock(share, ...)
    sl_share *share
  PREINIT:
    dXSTARG;
  PPCODE:
    if (sl_share_unlock(share) != SL_OK) {
        CORE_ERRNO();
        XSRETURN_UNDEF;
    }
    PUSHi(1);

void
version(share)
    sl_share *share
  PREINIT:
    dXSTARG;
    uint32_t version = 0;
  PPCODE:
    if (sl_share_version(share, &version) != SL_OK) {
        CORE_ERRNO();
        XSRETURN_UNDEF;
    }
    PUSHu(version);

void
num_segments(self)
    SV *self
  PREINIT:
    dXSTARG;
    size_t count = 0;
    int rc;
  PPCODE:
    do
        rc = sl_share_num_segments(handle_of(self), &count);
    while (INTERRUPTED(rc));
    if (rc != SL_OK) {
        CORE_ERRNO();
        XSRETURN_UNDEF;
    }
    PUSHu(count);

SV *
_look(key)
    IV key
  PREINIT:
    struct fields f;
  CODE:
    /* What the key holds, seen from outside (the core decides; sharelite
     * list and stat show it). Croaks only on a failure of the call itself. */
    f = new_fields(aTHX);
    if (sl_look((key_t)key, field, &f) != SL_OK)
        croak_core(aTHX_ "look");
    RETVAL = newRV_inc((SV *)f.hv);
  OUTPUT:
    RETVAL

SV *
_orphan(shmid)
    int shmid
  PREINIT:
    struct fields f;
    int found = 0;
  CODE:
    /* The orphan that segment shmid is, or undef (the core's rules). */
    f = new_fields(aTHX);
    if (sl_orphan(shmid, field, &f, &found) != SL_OK)
        croak_core(aTHX_ "orphan");
    RETVAL = found ? newRV_inc((SV *)f.hv) : &PL_sv_undef;
  OUTPUT:
    RETVAL

int
_remove_orphan(shmid, head, cpid)
    int shmid
    int head
    int cpid
  CODE:
    /* 1 when removed; 0 with the reason in _last_error() and $!. */
    RETVAL = sl_remove_orphan(shmid, head, cpid) == SL_OK;
    if (!RETVAL)
        CORE_ERRNO();
  OUTPUT:
    RETVAL

