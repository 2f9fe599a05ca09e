/* Placement arithmetic over the container counters: optimistic atomic reservations, no locks.
 *
 * SIGKILL can end a process between any two instructions, and the reaper (stats.c) can give back only
 * what the dead process's slot says it held. So every byte a process adds to a container total is first
 * added to the matching held counter of its slot (held_total, held_vram, held_host), and every byte it
 * takes back is taken from the total first and from the held counter after: the slot never holds less
 * than the process has in the totals, in flight or committed. The one residual window is the gap between
 * the two atomic instructions of a pair (the held update and the total update right after it, or the
 * total update and the held update right after it): a process killed exactly there is reaped for up to
 * that one request more than it held, at most one request per thread, and the total saturates at 0 (an
 * under-count, gone when the container's usage next falls to that size; never a permanent loss).
 * ACQ_REL on the total update keeps compiler and CPU from moving the held update across it.
 *
 * What this process has committed is also kept in process memory (emuv_own, updated with the committed
 * counters only, off the reservation path): when the shared mapping is lost (another process truncated the
 * stats file; stats.c replaces the mapping with private memory) accounting restarts per process from it
 * instead of from zero. */
#include "core.h"

#define RLX __ATOMIC_RELAXED
#define ORD __ATOMIC_ACQ_REL

struct emuv_own emuv_own;

static void update_peak(uint64_t *peak, uint64_t v) {
  uint64_t cur = __atomic_load_n(peak, RLX);
  while (v > cur && !__atomic_compare_exchange_n(peak, &cur, v, 1, RLX, RLX)) {
  }
}

static void sub_sat(uint64_t *p, uint64_t v) {
  uint64_t old = __atomic_load_n(p, RLX);
  for (;;) {
    uint64_t nv = old > v ? old - v : 0;
    if (__atomic_compare_exchange_n(p, &old, nv, 1, ORD, RLX)) return;
  }
}

enum { H_TOTAL, H_VRAM, H_HOST };

static uint64_t *held_of(struct emuv_stats_slot *s, int k) {
  return k == H_TOTAL ? &s->held_total : k == H_VRAM ? &s->held_vram : &s->held_host;
}

/* Right before a total goes up. */
static void hold(struct emuv_budget *b, int k, uint64_t n) {
  struct emuv_stats_slot *s = __atomic_load_n(&b->slot, RLX);
  if (s != NULL) __atomic_fetch_add(held_of(s, k), n, ORD);
}
/* Right after a total went down. */
static void unhold(struct emuv_budget *b, int k, uint64_t n) {
  struct emuv_stats_slot *s = __atomic_load_n(&b->slot, RLX);
  if (s != NULL) sub_sat(held_of(s, k), n);
}

/* The stats mapping was lost (stats.c): the budget's counters now live in private zeroed memory. Put back
 * what this process has committed, so accounting continues per process where it was. A request in flight
 * in another thread at this instant is counted once too many or too few until it is freed (at most one
 * request per thread; a total never wraps). */
static void recover(const struct emuv_budget *b) {
  if (!emuv_stats_take_lost(b->tot)) return;
  uint64_t v = __atomic_load_n(&emuv_own.vram, RLX), h = __atomic_load_n(&emuv_own.host, RLX), t = v + h;
  __atomic_store_n(&b->tot->total_used, t, RLX);
  __atomic_store_n(&b->tot->vram_used, v, RLX);
  __atomic_store_n(&b->tot->host_used, h, RLX);
  update_peak(&b->tot->vram_peak, v);
  update_peak(&b->tot->host_peak, h);
  struct emuv_stats_slot *s = __atomic_load_n(&b->slot, RLX);
  if (s != NULL) {
    __atomic_store_n(&s->held_total, t, RLX);
    __atomic_store_n(&s->held_vram, v, RLX);
    __atomic_store_n(&s->held_host, h, RLX);
  }
}
#define CHECK_LOST(b)                                                                      \
  do {                                                                                     \
    if (__builtin_expect(__atomic_load_n(&emuv_stats_lost_pending, RLX) != 0, 0)) recover(b); \
  } while (0)

int emuv_reserve_total(struct emuv_budget *b, uint64_t n) {
  CHECK_LOST(b);
  hold(b, H_TOTAL, n);
  uint64_t old = __atomic_fetch_add(&b->tot->total_used, n, ORD);
  if (old + n > b->cfg->limit || old + n < old) {
    sub_sat(&b->tot->total_used, n);
    unhold(b, H_TOTAL, n);
    return 0;
  }
  return 1;
}

void emuv_unreserve_total(struct emuv_budget *b, uint64_t n) {
  sub_sat(&b->tot->total_used, n);
  unhold(b, H_TOTAL, n);
}

uint64_t emuv_reserve_vram(struct emuv_budget *b, uint64_t n, int allow_split) {
  const struct emuv_config *c = b->cfg;
  uint64_t cap = c->spill ? c->vram_share - c->headroom : c->vram_share;
  if (n < c->large_threshold || !c->spill || allow_split == EMUV_RESERVE_FULL)
    cap = c->vram_share; /* headroom is only kept from large ones that could go elsewhere */
  if (allow_split == EMUV_RESERVE_FULL) allow_split = 0;
  if (!allow_split || n < c->large_threshold) {
    hold(b, H_VRAM, n);
    uint64_t old = __atomic_fetch_add(&b->tot->vram_used, n, ORD);
    if (old + n <= cap && old + n >= old) return n;
    sub_sat(&b->tot->vram_used, n);
    unhold(b, H_VRAM, n);
    return 0;
  }
  uint64_t cur = __atomic_load_n(&b->tot->vram_used, RLX);
  for (;;) {
    uint64_t avail = cap > cur ? cap - cur : 0;
    uint64_t take = avail >= n ? n : avail / EMUV_SPLIT_GRANULE * EMUV_SPLIT_GRANULE;
    if (take == 0) return 0;
    hold(b, H_VRAM, take);
    if (__atomic_compare_exchange_n(&b->tot->vram_used, &cur, cur + take, 1, ORD, RLX)) return take;
    unhold(b, H_VRAM, take); /* lost the race: nothing was added; cur is the fresh value */
  }
}

void emuv_unreserve_vram(struct emuv_budget *b, uint64_t n) {
  sub_sat(&b->tot->vram_used, n);
  unhold(b, H_VRAM, n);
}

/* Multi-writer seqlock on the slot: the low 16 bits of seq count updates in progress, the upper bits
 * count finished updates. A reader accepts a slot when (seq & 0xffff) == 0 and seq did not change. */
#define SEQ_BEGIN(s) __atomic_fetch_add(&(s)->seq, 1, __ATOMIC_ACQ_REL)
#define SEQ_END(s) __atomic_fetch_add(&(s)->seq, 0xffff, __ATOMIC_RELEASE)

void emuv_commit(struct emuv_budget *b, uint64_t vram, uint64_t host) {
  if (host) {
    hold(b, H_HOST, host);
    uint64_t h = __atomic_add_fetch(&b->tot->host_used, host, ORD);
    update_peak(&b->tot->host_peak, h);
  }
  if (vram) update_peak(&b->tot->vram_peak, __atomic_load_n(&b->tot->vram_used, RLX));
  if (vram) __atomic_fetch_add(&emuv_own.vram, vram, RLX);
  if (host) __atomic_fetch_add(&emuv_own.host, host, RLX);
  struct emuv_stats_slot *s = b->slot;
  if (s == NULL) return;
  SEQ_BEGIN(s);
  if (vram) __atomic_fetch_add(&s->dev[0].vram, vram, RLX);
  if (host) __atomic_fetch_add(&s->dev[0].host, host, RLX);
  __atomic_fetch_add(&s->dev[0].allocs, 1, RLX);
  SEQ_END(s);
}

void emuv_release(struct emuv_budget *b, uint64_t vram, uint64_t host) {
  CHECK_LOST(b);
  if (vram) {
    sub_sat(&b->tot->vram_used, vram);
    unhold(b, H_VRAM, vram);
  }
  if (host) {
    sub_sat(&b->tot->host_used, host);
    unhold(b, H_HOST, host);
  }
  sub_sat(&b->tot->total_used, vram + host);
  unhold(b, H_TOTAL, vram + host);
  if (vram) sub_sat(&emuv_own.vram, vram);
  if (host) sub_sat(&emuv_own.host, host);
  struct emuv_stats_slot *s = b->slot;
  if (s == NULL) return;
  SEQ_BEGIN(s);
  if (vram) sub_sat(&s->dev[0].vram, vram);
  if (host) sub_sat(&s->dev[0].host, host);
  __atomic_fetch_add(&s->dev[0].frees, 1, RLX);
  SEQ_END(s);
}

void emuv_count_event(struct emuv_budget *b, int which) {
  uint64_t *p = which == EMUV_EV_SPILL ? &b->tot->spill_events
                : which == EMUV_EV_OOM ? &b->tot->oom_events
                                       : &b->tot->denied_retries;
  __atomic_fetch_add(p, 1, RLX);
}

void emuv_slot_add(struct emuv_budget *b, int field, int64_t delta) {
  struct emuv_stats_slot *s = b->slot;
  if (s == NULL) return;
  uint64_t *p = field == EMUV_SLOT_MANAGED ? &s->dev[0].managed : &s->dev[0].pinned_host;
  if (delta >= 0) __atomic_fetch_add(p, (uint64_t)delta, RLX);
  else sub_sat(p, (uint64_t)(-delta));
}

void emuv_report(const struct emuv_budget *b, uint64_t *free_out, uint64_t *total_out, uint64_t *used_out) {
  CHECK_LOST(b);
  uint64_t total = b->cfg->limit;
  uint64_t used = __atomic_load_n(&b->tot->total_used, RLX);
  uint64_t ov = __atomic_load_n(&b->tot->overhead, RLX);
  used = used + ov < used ? UINT64_MAX : used + ov;
  if (total_out) *total_out = total;
  if (used_out) *used_out = used;
  if (free_out) *free_out = used >= total ? 0 : total - used;
}

uint64_t emuv_array_bytes(uint64_t w, uint64_t h, uint64_t d, unsigned format, unsigned channels) {
  uint64_t texel;
  switch (format) {
    case 0x01: case 0x08: texel = 1; break;             /* (UN)SIGNED_INT8 */
    case 0x02: case 0x09: case 0x10: texel = 2; break;  /* (UN)SIGNED_INT16, HALF */
    case 0x03: case 0x0a: case 0x20: texel = 4; break;  /* (UN)SIGNED_INT32, FLOAT */
    default: texel = 0;
  }
  if (texel) texel *= channels ? channels : 1;
  else if (format >= 0xc0 && format <= 0xcb) { /* UNORM/SNORM INT8/INT16 X1/X2/X4 */
    static const uint8_t sz[3][2] = {{1, 2}, {2, 4}, {4, 8}};
    unsigned k = (format - 0xc0) % 6;
    texel = sz[k % 3][k / 3];
  } else texel = 4;
  uint64_t n = w * (h ? h : 1);
  n *= d ? d : 1;
  return n * texel;
}
