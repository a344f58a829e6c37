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

/* A blocking wait interrupted by a signal: run Perl's handler for it (which
 * may die: no lock is held and no Rust frame is on the stack here), then let
 * the caller try again. */
static int
interrupted(pTHX_ int rc)
{
    if (rc != SL_ERROR || errno != EINTR)
        return 0;
    PERL_ASYNC_CHECK();
    return 1;
}
#define INTERRUPTED(rc) interrupted(aTHX_ (rc))

/* The one error path: "IPC::ShareLite <what> error: <reason>", $! kept. */
static void
croak_core(pTHX_ const char *what)
{
    char msg[512];
    int e = errno;
    sl_last_error(msg, sizeof msg);
    SETERRNO(e, 0);
    croak("IPC::ShareLite %s error: %s", what, msg);
}

/* The object's handle rides on the object itself, as extension magic: found
 * in a few instructions, where a hash lookup would cost a key hash each call.
 * The magic's object slot keeps the last large value fetched (see fetch). */
static MGVTBL handle_vtbl;

static MAGIC *
handle_magic(pTHX_ SV *self)
{
    if (!SvROK(self) || SvTYPE(SvRV(self)) != SVt_PVHV)
        croak("IPC::ShareLite: method called without an object");
    return SvRMAGICAL(SvRV(self)) ? mg_findext(SvRV(self), PERL_MAGIC_ext, &handle_vtbl) : NULL;
}

/* The one handle check. */
static MAGIC *
open_magic(pTHX_ SV *self)
{
    MAGIC *mg = handle_magic(aTHX_ self);
    if (!mg || !mg->mg_ptr)
        croak("IPC::ShareLite: the object has no open share");
    return mg;
}
#define handle_of(self) ((sl_share *)open_magic(aTHX_ (self))->mg_ptr)

MODULE = IPC::ShareLite    PACKAGE = IPC::ShareLite

PROTOTYPES: DISABLE

IV
_open(key, size, flags)
    IV key
    UV size
    IV flags
  PREINIT:
    sl_share *share = NULL;
  CODE:
    /* 0 on failure, with $! set: the caller croaks (from the user's line). */
    int rc;
    /* A size beyond size_t (a 32-bit system) goes to the kernel as the
     * largest one, which it refuses, rather than wrapped to a small one. */
    size_t sz = size > (UV)SIZE_MAX ? SIZE_MAX : (size_t)size;
    do
        rc = sl_share_open((key_t)key, sz, (int)flags, &share);
    while (INTERRUPTED(rc));
    RETVAL = rc == SL_OK ? PTR2IV(share) : 0;
  OUTPUT:
    RETVAL

SV *
_last_error()
  PREINIT:
    char msg[512];
    int e = errno;
  CODE:
    sl_last_error(msg, sizeof msg);
    RETVAL = newSVpv(msg, 0);
    SETERRNO(e, 0);
  OUTPUT:
    RETVAL

IV
_clone(self)
    SV *self
  PREINIT:
    sl_share *copy = NULL;
  CODE:
    if (sl_share_clone(handle_of(self), &copy) != SL_OK)
        croak_core(aTHX_ "clone");
    RETVAL = PTR2IV(copy);
  OUTPUT:
    RETVAL

void
_free(handle)
    IV handle
  CODE:
    sl_share_free(INT2PTR(sl_share *, handle));

void
_attach(self, handle)
    SV *self
    IV handle
  PREINIT:
    MAGIC *mg;
  CODE:
    mg = handle_magic(aTHX_ self);
    if (mg) {
        mg->mg_ptr = INT2PTR(char *, handle);
    } else {
        SV *fetched = newSV(0);
        mg = sv_magicext(SvRV(self), fetched, PERL_MAGIC_ext, &handle_vtbl, INT2PTR(char *, handle), 0);
        mg->mg_flags |= MGf_REFCOUNTED;  /* sv_magicext took its own reference */
        SvREFCNT_dec(fetched);
    }

IV
_detach(self)
    SV *self
  PREINIT:
    MAGIC *mg;
  CODE:
    mg = handle_magic(aTHX_ self);
    RETVAL = mg ? PTR2IV(mg->mg_ptr) : 0;
    if (mg)
        mg->mg_ptr = NULL;
  OUTPUT:
    RETVAL

IV
_attached(self)
    SV *self
  PREINIT:
    MAGIC *mg;
  CODE:
    mg = handle_magic(aTHX_ self);
    RETVAL = mg && mg->mg_ptr ? 1 : 0;
  OUTPUT:
    RETVAL

IV
remove(self)
    SV *self
  CODE:
    if (sl_share_remove(handle_of(self)) != SL_OK)
        croak_core(aTHX_ "remove()");
    RETVAL = 1;
  OUTPUT:
    RETVAL

UV
_segment_size(self)
    SV *self
  PREINIT:
    size_t size = 0;
  CODE:
    if (sl_share_segment_size(handle_of(self), &size) != SL_OK)
        croak_core(aTHX_ "size()");
    RETVAL = size;
  OUTPUT:
    RETVAL

IV
store(self, value = &PL_sv_undef)
    SV *self
    SV *value
  PREINIT:
    sl_share *share;
    const char *bytes = "";
    STRLEN len = 0;
    int rc;
  CODE:
    share = handle_of(self);
    if (SvOK(value)) {
        if (SvUTF8(value)) {
            value = sv_mortalcopy(value);
            if (!sv_utf8_downgrade(value, TRUE)) {
                SETERRNO(EILSEQ, 0);
                croak("IPC::ShareLite store() error: Wide character in store");
            }
        }
        bytes = SvPV_const(value, len);
    }
    do
        rc = sl_share_store(share, (const uint8_t *)bytes, len);
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
    sl_share *share;
    SV *cache;
    SV *value;
    size_t len = 0;
    int plan = SL_FETCH_FILL_NEW;
    int rc;
  PPCODE:
    mg = open_magic(aTHX_ self);
    share = (sl_share *)mg->mg_ptr;
    /* The value of the last fetch may be kept here and handed out again as a
     * copy-on-write copy: the core decides, from what is kept (read afresh on
     * every try, as a signal handler may have fetched through this object). */
    cache = mg->mg_obj;
    do
        rc = sl_share_fetch_begin(share, cache && SvPOK(cache) ? 1 : 0, cache ? kept_room(cache) : 0, &len, &plan);
    while (INTERRUPTED(rc));
    if (rc != SL_OK)
        croak_core(aTHX_ "fetch()");
    if (plan == SL_FETCH_UNCHANGED) {
        sl_share_fetch_finish(share, NULL, 0);
        value = newSV(0);
        sv_setsv_flags(value, cache, COW_FLAGS);
    } else if (plan == SL_FETCH_FILL_KEPT) {
        /* Fill the kept buffer in place (no allocation; len <= its room) and
         * hand out a copy-on-write copy of it. */
        sl_share_fetch_finish(share, (uint8_t *)SvPVX(cache), len);
        SvCUR_set(cache, len);
        *SvEND(cache) = '\0';
        value = newSV(0);
        sv_setsv_flags(value, cache, COW_FLAGS);
    } else {
        /* Two spare bytes: the NUL, and room for a copy-on-write count. */
        value = newSV(len + 2);
        SvPOK_only(value);
        sl_share_fetch_finish(share, (uint8_t *)SvPVX(value), len);
        SvCUR_set(value, len);
        *SvEND(value) = '\0';
        if (cache) {
            if (plan == SL_FETCH_FILL_NEW_KEEP)
                sv_setsv_flags(cache, value, COW_FLAGS);
            else if (SvOK(cache))
                sv_setsv(cache, &PL_sv_undef);
        }
    }
    mXPUSHs(value);

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
    if (rc == SL_ERROR)
        XSRETURN_UNDEF;
    PUSHi(rc == SL_OK ? 1 : 0);

void
unlock(self, ...)
    SV *self
  PREINIT:
    dXSTARG;
  PPCODE:
    if (sl_share_unlock(handle_of(self)) != SL_OK)
        XSRETURN_UNDEF;
    PUSHi(1);

void
version(self)
    SV *self
  PREINIT:
    dXSTARG;
    uint32_t version = 0;
  PPCODE:
    if (sl_share_version(handle_of(self), &version) != SL_OK)
        XSRETURN_UNDEF;
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
    if (rc != SL_OK)
        XSRETURN_UNDEF;
    PUSHu(count);
