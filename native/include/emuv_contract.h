/*
 * emuv interposer contract, version 1: the EMUV_* environment and the stats file v1 layout.
 *
 * Mirrors common/contracts/interposer.ts (test/contract/interposer-env.test.ts keeps them in step; that
 * test parses the EMUV_ENV_* and EMUV_CONTRACT_VERSION lines below, so keep one definition per line).
 * The stats file layout is pinned by native/tests/test_unit.c ("stats file v1 layout is pinned") and read by
 * plugin/stats/stats-reader.ts.
 */
#ifndef EMUV_CONTRACT_H
#define EMUV_CONTRACT_H

#include <stdint.h>

/* ---- environment contract ---------------------------------------------------------------------- */

#define EMUV_CONTRACT_VERSION 1

#define EMUV_ENV_CONTRACT_VERSION "EMUV_CONTRACT_VERSION"
#define EMUV_ENV_LIMIT_BYTES "EMUV_LIMIT_BYTES"
#define EMUV_ENV_VRAM_SHARE "EMUV_VRAM_SHARE"
#define EMUV_ENV_VRAM_MODE "EMUV_VRAM_MODE"
#define EMUV_ENV_GPU "EMUV_GPU"
#define EMUV_ENV_STATS_FILE "EMUV_STATS_FILE"
#define EMUV_ENV_LOG_LEVEL "EMUV_LOG_LEVEL"
#define EMUV_ENV_HEADROOM "EMUV_HEADROOM"
#define EMUV_ENV_LARGE_THRESHOLD "EMUV_LARGE_THRESHOLD"
#define EMUV_ENV_OOM_RETRY "EMUV_OOM_RETRY"
#define EMUV_ENV_SPILL_BACKEND "EMUV_SPILL_BACKEND"

/* EMUV_SPILL_BACKEND values, in this order (auto when unset or invalid): where spilled cuMemAlloc memory
 * lives. auto: VMM host memory (split VRAM|host), zero-copy pinned memory without host VMM; pinned: always
 * zero-copy pinned memory, whole; managed: CUDA managed memory advised to stay in host RAM, whole.
 * An optional variable added within contract version 1: an interposer that does not know it ignores it
 * and behaves as auto, so writers send it to any version-1 interposer and the version does not change. */
#define EMUV_SPILL_BACKENDS "auto|pinned|managed"

/* Largest size either side accepts: 2^63 - 1 bytes. */
#define EMUV_MAX_SIZE_BYTES 0x7fffffffffffffffULL

/* ---- stats file v1 ----------------------------------------------------------------------------- */
/*
 * One file per container (EMUV_STATS_FILE, default /run/emuv/stats.bin), 65536 bytes, little-endian,
 * created and initialised by the first interposer process under a short flock (the kernel drops it if
 * that process dies); afterwards every update is a lock-free atomic on a MAP_SHARED mapping.
 *
 *   [0, 4096)                 header: identity, per-device config, per-device container totals
 *   [4096 + i*256, +256)      slot i (i < max_slots): one live process
 *
 * Readers must check magic, ver_major (reject other majors; accept any minor), hdr_size, slot_size,
 * max_slots, max_devs and init_state == EMUV_INIT_READY, and use the slot seqlock: the threads of one
 * process update its slot concurrently, so seq is a multi-writer seqlock whose low 16 bits count updates in
 * progress and whose upper 48 bits count finished ones; a slot read is consistent when (seq & 0xffff) == 0
 * and seq is unchanged around the read. Container totals are single atomics: read them twice until equal.
 *
 * Minor 1 (additive; a minor-0 reader ignores it): a slot whose flags has EMUV_SLOT_F_HELD set keeps
 * held_total, held_vram and held_host: every byte this process has added to tot[0].total_used, vram_used and
 * host_used and not yet taken back, in-flight reservations included (a held counter is raised before the
 * total and lowered after it). A reaper subtracts the held counters of such a slot; for a slot without the
 * flag (a minor-0 writer) it subtracts dev[0].vram and dev[0].host as before. held_total - vram - host is the
 * process's in-flight reservation. The held counters are single atomics outside the seqlock.
 */
#define EMUV_STATS_MAGIC 0x56554D45u /* bytes "EMUV" */
#define EMUV_STATS_VER_MAJOR 1
#define EMUV_STATS_VER_MINOR 1
#define EMUV_STATS_HDR_SIZE 4096
#define EMUV_STATS_SLOT_SIZE 256
#define EMUV_STATS_MAX_SLOTS 240
#define EMUV_STATS_MAX_DEVS 4
#define EMUV_SEQ_BUSY_MASK 0xffffull
#define EMUV_STATS_FILE_SIZE (EMUV_STATS_HDR_SIZE + EMUV_STATS_MAX_SLOTS * EMUV_STATS_SLOT_SIZE)

#define EMUV_INIT_NONE 0
#define EMUV_INIT_BUSY 1
#define EMUV_INIT_READY 2

#define EMUV_SLOT_FREE 0
#define EMUV_SLOT_CLAIMING 1
#define EMUV_SLOT_LIVE 2
#define EMUV_SLOT_REAPING 3

#define EMUV_SLOT_F_HELD 1u /* slot flags bit 0: held_total/held_vram/held_host are kept (minor 1) */

#define EMUV_MODE_FILL 0
#define EMUV_MODE_FIXED 1

/* Written once at initialisation; read-only afterwards. 64 bytes. */
struct emuv_devcfg {
  uint64_t vram_share;      /* bytes of VRAM before spilling (EMUV_VRAM_SHARE) */
  uint64_t limit_bytes;     /* virtual total (EMUV_LIMIT_BYTES); 0 = not set: no spill, share caps VRAM */
  uint64_t host_share;      /* limit_bytes - vram_share (0 when no limit) */
  uint64_t headroom;        /* VRAM kept for allocations below large_threshold */
  uint64_t large_threshold; /* allocations of at least this size are split */
  uint64_t reserved[3];
};

/* Container-wide totals, updated by every process with atomics. 128 bytes (two cache lines). */
struct emuv_devtot {
  uint64_t vram_used;      /* bytes placed in VRAM */
  uint64_t host_used;      /* bytes spilled to host RAM */
  uint64_t total_used;     /* vram_used + host_used: the reservation counter checked against limit */
  uint64_t vram_peak;
  uint64_t host_peak;
  uint64_t spill_events;   /* allocations that were (partly) placed in host RAM */
  uint64_t oom_events;     /* allocations refused because the virtual total was exhausted */
  uint64_t denied_retries; /* deny-once refusals (the caller was expected to free its cache) */
  uint64_t overhead;       /* written by the agent: driver memory outside the hooks (contexts, modules) */
  uint64_t reserved[7];
};

struct emuv_stats_hdr {
  uint32_t magic;       /* 0   EMUV_STATS_MAGIC */
  uint16_t ver_major;   /* 4 */
  uint16_t ver_minor;   /* 6 */
  uint32_t hdr_size;    /* 8   4096 */
  uint32_t slot_size;   /* 12  256 */
  uint32_t max_slots;   /* 16  240 */
  uint32_t max_devs;    /* 20  4 */
  uint32_t init_state;  /* 24  EMUV_INIT_* (READY is stored last, with release order) */
  uint32_t ndevs;       /* 28  devices in use (1 in contract v1) */
  uint64_t generation;  /* 32  bumped whenever the file is (re)initialised */
  uint64_t created_ns;  /* 40  CLOCK_REALTIME at initialisation */
  uint32_t vram_mode;   /* 48  EMUV_MODE_* */
  uint32_t contract_version; /* 52 EMUV_CONTRACT_VERSION of the initialising process */
  char gpu[72];         /* 56  EMUV_GPU, NUL-terminated (UUID "GPU-..." or PCI address) */
  struct emuv_devcfg cfg[EMUV_STATS_MAX_DEVS]; /* 128 .. 384 */
  uint8_t pad0[128];                           /* 384 .. 512 */
  struct emuv_devtot tot[EMUV_STATS_MAX_DEVS]; /* 512 .. 1024 */
  uint8_t pad1[EMUV_STATS_HDR_SIZE - 1024];
};

/* Per-device counters of one process. 48 bytes. */
struct emuv_slotdev {
  uint64_t vram;        /* bytes this process placed in VRAM */
  uint64_t host;        /* bytes this process spilled to host RAM */
  uint64_t managed;     /* cuMemAllocManaged bytes (not charged against the limit) */
  uint64_t pinned_host; /* cuMemHostAlloc/AllocHost/HostRegister bytes (visibility only) */
  uint64_t allocs;      /* successful hooked allocations */
  uint64_t frees;       /* hooked frees of tracked allocations */
};

struct emuv_stats_slot {
  uint32_t state;          /* 0   EMUV_SLOT_* (CAS transitions: FREE->CLAIMING->LIVE->REAPING->FREE) */
  uint32_t pid;            /* 4   pid in the container's pid namespace */
  uint32_t host_pid;       /* 8   written by the agent */
  uint32_t flags;          /* 12  EMUV_SLOT_F_* (minor 1; 0 from a minor-0 writer) */
  uint64_t seq;            /* 16  seqlock: low 16 bits = updates in progress (see above) */
  uint64_t start_time;     /* 24  /proc/<pid>/stat starttime (clock ticks): guards against pid reuse */
  uint64_t last_update_ns; /* 32  CLOCK_REALTIME when the slot was claimed */
  struct emuv_slotdev dev[EMUV_STATS_MAX_DEVS]; /* 40 .. 232 */
  /* minor 1, device 0 (contract v1 has one device): bytes this process holds in tot[0] (see above) */
  uint64_t held_total;     /* 232 in tot[0].total_used: committed + in-flight reservations */
  uint64_t held_vram;      /* 240 in tot[0].vram_used */
  uint64_t held_host;      /* 248 in tot[0].host_used */
};

_Static_assert(sizeof(struct emuv_devcfg) == 64, "devcfg size");
_Static_assert(sizeof(struct emuv_devtot) == 128, "devtot size");
_Static_assert(sizeof(struct emuv_stats_hdr) == EMUV_STATS_HDR_SIZE, "header size");
_Static_assert(sizeof(struct emuv_stats_slot) == EMUV_STATS_SLOT_SIZE, "slot size");

#endif
