/* The C ABI of the Rust core (ffi/src/lib.rs). Every function returns
 * SL_OK, SL_WOULD_BLOCK (lock only) or SL_ERROR with errno set and a message
 * for sl_last_error(). Out parameters are written only on success. */
#ifndef SHARELITE_H
#define SHARELITE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* key_t: 32 bits on Linux, macOS, Solaris; 64 on the BSDs */

#define SL_OK 0
#define SL_WOULD_BLOCK 1
#define SL_ERROR (-1)

/* A fetch's plan (sl_share_fetch_begin's out_plan), decided by the core
 * (rust-core/src/fetch_cache.rs) from the facts the caller reports. */
#define SL_FETCH_UNCHANGED 0     /* hand out the kept copy; finish with buf NULL */
#define SL_FETCH_FILL_KEPT 1     /* copy into the kept buffer (len <= kept_room) */
#define SL_FETCH_FILL_NEW 2      /* copy into a new buffer; drop the kept copy */
#define SL_FETCH_FILL_NEW_KEEP 3 /* copy into a new buffer; keep it as the copy */

typedef struct sl_share sl_share;

int sl_share_open(key_t key, size_t size, int flags, sl_share **out_share);
int sl_share_clone(sl_share *share, sl_share **out_share);
void sl_share_free(sl_share *share);
int sl_share_remove(sl_share *share);
int sl_share_store(sl_share *share, const uint8_t *data, size_t len);
int sl_share_fetch_begin(sl_share *share, int have_copy, size_t kept_room, size_t *out_len, int *out_plan);
int sl_share_fetch_finish(sl_share *share, uint8_t *buf, size_t len);
int sl_share_lock(sl_share *share, int flags, int64_t timeout_ns);
int sl_share_unlock(sl_share *share);
int sl_share_version(sl_share *share, uint32_t *out_version);
int sl_share_num_segments(sl_share *share, size_t *out_count);
int sl_share_segment_size(sl_share *share, size_t *out_size);
size_t sl_last_error(char *buf, size_t cap);

#endif
