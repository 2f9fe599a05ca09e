/* Placement arithmetic over the container counters: optimistic atomic reservations, no locks. */
#include "core.h"

#define RLX __ATOMIC_RELAXED

static void update_peak(uint64_t *peak, uint64_t v) {
  uint64_t cur = __atomic_load_n(peak, RLX);
  while (v > cur && !__atomic_compare_exchange_n(peak, &cur, v, 1, RLX, RLX)) {
  }
}

static void sub_sat(uint64_t *p, uint64_t v) {
  uint64_t old = __atomic_load_n(p, RLX);
  for (;;) {
    uint64_t nv = old > v ? old - v : 0;
    if (__atomic_compare_exchange_n(p, &old, nv, 1, RLX, RLX)) return;
  }
}

int emuv_reserve_total(struct emuv_budget *b, uint64_t n) {
  uint64_t old = __atomic_fetch_add(&b->tot->total_used, n, RLX);
  if (old + n > b->cfg->limit || old + n < old) {
    __atomic_fetch_sub(&b->tot->total_used, n, RLX);
    return 0;
  }
  return 1;
}

void emuv_unreserve_total(struct emuv_budget *b, uint64_t n) { sub_sat(&b->tot->total_used, n); }

uint64_t emuv_reserve_vram(struct emuv_budget *b, uint64_t n, int allow_split) {
  const struct emuv_config *c = b->cfg;
  uint64_t cap = c->spill ? c->vram_share - c->headroom : c->vram_share;
  if (n < c->large_threshold || !c->spill || allow_split == EMUV_RESERVE_FULL)
    cap = c->vram_share; /* headroom is only kept from large ones that could go elsewhere */
  if (allow_split == EMUV_RESERVE_FULL) allow_split = 0;
  if (!allow_split || n < c->large_threshold) {
    uint64_t old = __atomic_fetch_add(&b->tot->vram_used, n, RLX);
    if (old + n <= cap && old + n >= old) return n;
    __atomic_fetch_sub(&b->tot->vram_used, n, RLX);
    return 0;
  }
  uint64_t cur = __atomic_load_n(&b->tot->vram_used, RLX);
  for (;;) {
    uint64_t avail = cap > cur ? cap - cur : 0;
    uint64_t take = avail >= n ? n : avail / EMUV_SPLIT_GRANULE * EMUV_SPLIT_GRANULE;
    if (take == 0) return 0;
    if (__atomic_compare_exchange_n(&b->tot->vram_used, &cur, cur + take, 1, RLX, RLX)) return take;
  }
}

void emuv_unreserve_vram(struct emuv_budget *b, uint64_t n) { sub_sat(&b->tot->vram_used, n); }

/* Multi-writer seqlock on the slot: the low 16 bits of seq count updates in progress, the upper bits
 * count finished updates. A reader accepts a slot when (seq & 0xffff) == 0 and seq did not change. */
#define SEQ_BEGIN(s) __atomic_fetch_add(&(s)->seq, 1, __ATOMIC_ACQ_REL)
#define SEQ_END(s) __atomic_fetch_add(&(s)->seq, 0xffff, __ATOMIC_RELEASE)

void emuv_commit(struct emuv_budget *b, uint64_t vram, uint64_t host) {
  if (host) {
    uint64_t h = __atomic_add_fetch(&b->tot->host_used, host, RLX);
    update_peak(&b->tot->host_peak, h);
  }
  if (vram) update_peak(&b->tot->vram_peak, __atomic_load_n(&b->tot->vram_used, RLX));
  struct emuv_stats_slot *s = b->slot;
  if (s == NULL) return;
  SEQ_BEGIN(s);
  if (vram) __atomic_fetch_add(&s->dev[0].vram, vram, RLX);
  if (host) __atomic_fetch_add(&s->dev[0].host, host, RLX);
  __atomic_fetch_add(&s->dev[0].allocs, 1, RLX);
  SEQ_END(s);
}

void emuv_release(struct emuv_budget *b, uint64_t vram, uint64_t host) {
  if (vram) sub_sat(&b->tot->vram_used, vram);
  if (host) sub_sat(&b->tot->host_used, host);
  sub_sat(&b->tot->total_used, vram + host);
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
