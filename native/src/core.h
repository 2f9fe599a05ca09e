/* emuv core: configuration, budget decisions, allocation table and stats file. No CUDA types here. */
#ifndef EMUV_CORE_H
#define EMUV_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "emuv_contract.h"

#define EMUV_HIDDEN __attribute__((visibility("hidden")))
#define EMUV_MIB (1ULL << 20)
#define EMUV_GIB (1ULL << 30)
#define EMUV_SPLIT_GRANULE (2 * EMUV_MIB)

enum { EMUV_LOG_ERROR = 0, EMUV_LOG_WARN = 1, EMUV_LOG_INFO = 2, EMUV_LOG_DEBUG = 3 };
enum { EMUV_RETRY_OFF = 0, EMUV_RETRY_ON = 1, EMUV_RETRY_AUTO = 2 };
/* EMUV_SPILL_BACKEND, in the order of EMUV_SPILL_BACKENDS */
enum { EMUV_SPILL_AUTO = 0, EMUV_SPILL_PINNED = 1, EMUV_SPILL_MANAGED = 2 };

struct emuv_config {
  int passthrough;          /* 1: do nothing but forward (no EMUV_* at all, or a broken contract) */
  int contract_version;
  uint64_t vram_share;      /* effective VRAM share (bytes) */
  uint64_t limit;           /* virtual total; == vram_share when EMUV_LIMIT_BYTES is missing or invalid */
  int spill;                /* 1 when limit > vram_share: spill to host RAM is allowed */
  uint64_t headroom;
  uint64_t large_threshold;
  int mode;                 /* EMUV_MODE_* */
  int oom_retry;            /* EMUV_RETRY_* */
  int spill_backend;        /* EMUV_SPILL_* */
  int log_level;
  char gpu[72];
  char stats_path[1024];    /* empty: process-local accounting */
};

/* config.c */
EMUV_HIDDEN int emuv_parse_size(const char *text, uint64_t *out);
typedef const char *(*emuv_getenv_fn)(const char *name);
EMUV_HIDDEN void emuv_config_load(struct emuv_config *c, emuv_getenv_fn getenv_fn);
/* s for a message: at most max bytes, non-printable bytes as \xNN, "..." when cut; returns buf */
EMUV_HIDDEN const char *emuv_quote(const char *s, size_t max, char *buf, size_t cap);
EMUV_HIDDEN void emuv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
EMUV_HIDDEN extern int emuv_log_level;
EMUV_HIDDEN extern int emuv_log_quiet; /* set by the NVML shim when the CUDA shim already reports */

/* stats.c: the container's shared counters (or a process-local copy of the same layout) */
struct emuv_stats {
  struct emuv_stats_hdr *hdr;
  struct emuv_stats_slot *slot; /* this process's slot, or NULL when all slots are taken */
  int shared;                   /* 1 when hdr maps the stats file */
  uint32_t pid;
};
EMUV_HIDDEN void emuv_stats_format(struct emuv_stats_hdr *h, const struct emuv_config *c, uint64_t created_ns,
                                   uint64_t generation);
EMUV_HIDDEN int emuv_stats_open(struct emuv_stats *s, const struct emuv_config *c, uint32_t pid);
EMUV_HIDDEN struct emuv_stats_slot *emuv_stats_claim(struct emuv_stats_hdr *h, uint32_t pid, uint64_t start_time,
                                                     uint64_t now_ns);
EMUV_HIDDEN unsigned emuv_stats_reap(struct emuv_stats_hdr *h, uint32_t self_pid);
EMUV_HIDDEN void emuv_stats_release_slot(struct emuv_stats_hdr *h, struct emuv_stats_slot *slot);
EMUV_HIDDEN uint64_t emuv_proc_start_time(uint32_t pid);
EMUV_HIDDEN void emuv_stats_close(struct emuv_stats *s);
/* SIGBUS guard of stats mappings (any process of the container can truncate the file under them): a
 * fault inside a guarded mapping replaces it with private zeroed memory and the access is retried there;
 * other SIGBUS go to the handler that was installed before. `path` names the file in the one "emuv:"
 * line. Returns 0, or -1 when no guard slot is free (the mapping is then used unguarded). */
EMUV_HIDDEN int emuv_stats_guard(void *base, size_t len, int writable, const char *path);
EMUV_HIDDEN void emuv_stats_unguard(void *base);
/* Writable guarded mappings lost and not yet recovered by budget.c (hot-path check: one relaxed load). */
EMUV_HIDDEN extern int emuv_stats_lost_pending;
/* 1 exactly once for a lost writable mapping that contains addr (the caller then restores its counters). */
EMUV_HIDDEN int emuv_stats_take_lost(const void *addr);

/* budget.c: placement decisions over the counters; dev 0 only in contract v1 */
struct emuv_budget {
  const struct emuv_config *cfg;
  struct emuv_devtot *tot;
  struct emuv_stats_slot *slot; /* may be NULL */
};
/* What this process has committed (device 0), also kept in process memory: its slot says the same, but
 * the slot is lost with the mapping if the file is truncated. Zeroed in a forked child (stats.c), whose
 * allocation table starts empty. */
struct emuv_own {
  uint64_t vram, host;
} __attribute__((aligned(64)));
EMUV_HIDDEN extern struct emuv_own emuv_own;
EMUV_HIDDEN int emuv_reserve_total(struct emuv_budget *b, uint64_t bytes);
EMUV_HIDDEN void emuv_unreserve_total(struct emuv_budget *b, uint64_t bytes);
/* Reserves VRAM for a request: small requests get all or nothing against the share; large requests
 * (>= large_threshold, split allowed) get the largest 2 MiB multiple that fits under share - headroom. */
EMUV_HIDDEN uint64_t emuv_reserve_vram(struct emuv_budget *b, uint64_t bytes, int allow_split);
#define EMUV_RESERVE_FULL 2 /* allow_split value for memory that cannot live elsewhere: all or nothing, full share */
EMUV_HIDDEN void emuv_unreserve_vram(struct emuv_budget *b, uint64_t bytes);
/* Books an allocation that succeeded: vram was reserved by emuv_reserve_vram, host is added here. */
EMUV_HIDDEN void emuv_commit(struct emuv_budget *b, uint64_t vram, uint64_t host);
/* Undoes emuv_commit and both reservations when a tracked allocation is freed. */
EMUV_HIDDEN void emuv_release(struct emuv_budget *b, uint64_t vram, uint64_t host);
EMUV_HIDDEN void emuv_count_event(struct emuv_budget *b, int which);
EMUV_HIDDEN void emuv_slot_add(struct emuv_budget *b, int field, int64_t delta);
enum { EMUV_EV_SPILL, EMUV_EV_OOM, EMUV_EV_DENIED };
enum { EMUV_SLOT_MANAGED, EMUV_SLOT_PINNED };
/* Bytes of a CUDA array: width x max(height,1) x max(depth,1) x texel size (format code, channels);
 * formats without a fixed texel size (video, block-compressed) are estimated at 4 bytes per texel. */
EMUV_HIDDEN uint64_t emuv_array_bytes(uint64_t w, uint64_t h, uint64_t d, unsigned format, unsigned channels);
EMUV_HIDDEN void emuv_report(const struct emuv_budget *b, uint64_t *free_out, uint64_t *total_out,
                             uint64_t *used_out);

/* table.c: live allocations keyed by device pointer or handle; striped, open addressing */
enum { EMUV_KIND_VRAM = 1, EMUV_KIND_SPLIT, EMUV_KIND_ZEROCOPY, EMUV_KIND_ASYNC_VRAM, EMUV_KIND_ASYNC_HOST,
       EMUV_KIND_HANDLE, EMUV_KIND_MANAGED, EMUV_KIND_PINNED, EMUV_KIND_ARRAY,
       EMUV_KIND_MANAGED_SPILL /* spilled to managed memory (EMUV_SPILL_BACKEND=managed): host bytes */ };
struct emuv_alloc {
  uint64_t key;     /* device pointer or handle; 0 = empty */
  uint64_t size;    /* bytes the caller asked for */
  uint64_t vram;    /* bytes charged to VRAM */
  uint64_t host;    /* bytes charged to host */
  uint64_t h_dev;   /* split: VRAM handle */
  uint64_t h_host;  /* split: host handle; zero-copy: the host pointer to free */
  uint64_t va_size; /* split: reserved VA size */
  uint32_t kind;
  uint32_t pad;
};
struct emuv_table;
EMUV_HIDDEN struct emuv_table *emuv_table_new(void);
EMUV_HIDDEN int emuv_table_insert(struct emuv_table *t, const struct emuv_alloc *a);
EMUV_HIDDEN int emuv_table_remove(struct emuv_table *t, uint64_t key, struct emuv_alloc *out);
EMUV_HIDDEN int emuv_table_get(struct emuv_table *t, uint64_t key, struct emuv_alloc *out);
EMUV_HIDDEN size_t emuv_table_count(struct emuv_table *t);
EMUV_HIDDEN void emuv_table_lock_all(struct emuv_table *t);
EMUV_HIDDEN void emuv_table_unlock_all(struct emuv_table *t);
EMUV_HIDDEN void emuv_table_reset_after_fork(struct emuv_table *t);
/* Calls fn for every entry and empties the table (used when a context reset frees everything). */
EMUV_HIDDEN void emuv_table_drain(struct emuv_table *t, void (*fn)(const struct emuv_alloc *, void *), void *arg);

#endif
