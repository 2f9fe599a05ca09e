/*
 * libemuv-cuda.so: SONAME libcuda.so.1, DT_NEEDED libemuv-real-cuda.so (the real driver under a private
 * name). Exports only the hooks of hooks.def (plus emuv_shim_report for the NVML shim); every other name
 * resolves to the real driver through this library's dependency scope. Hooks are thin: the decisions
 * are in budget.c/table.c/stats.c. No constructors: init is lazy, under pthread_once.
 */
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <cudaTypedefs.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define REAL_NAME "libemuv-real-cuda.so"

/* ---- tables expanded from hooks.def ------------------------------------------------------------- */

static struct {
#define EMUV_HOOK(name, pfn) pfn name;
#define EMUV_REAL(name, pfn) pfn name;
#include "hooks.def"
} real;

#define EMUV_HOOK(name, pfn) \
  _Static_assert(__builtin_types_compatible_p(__typeof__(&name), pfn), #name " does not match " #pfn);
#include "hooks.def"

struct route {
  void *real_fn;
  void *hook_fn;
};
enum {
#define EMUV_HOOK(name, pfn) HOOK_IDX_##name,
#include "hooks.def"
  HOOK_COUNT
};
static struct route routes[HOOK_COUNT];
static int route_count;

/* ---- process state ------------------------------------------------------------------------------ */

static struct {
  pthread_once_t once;
  int ready;   /* init finished */
  int active;  /* not pass-through */
  struct emuv_config cfg;
  struct emuv_stats stats;
  struct emuv_budget budget;
  struct emuv_table *table;
  struct emuv_table *pools; /* user-created pools with a host location: handle -> location */
  uint32_t pid;          /* cached; refreshed in the fork child */
  int slot_pending;      /* fork child: claim a slot on the next hooked call */
  int host_vmm;          /* -1 unknown, 0 none, CU_MEM_LOCATION_TYPE_HOST_NUMA or _HOST */
  int host_numa_id;      /* the NUMA node closest to the GPU (CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID), else 0 */
  CUmemoryPool host_pool;
  pthread_mutex_t spill_mu; /* guards host_vmm probe, host pool creation and the split-range array */
  uint64_t last_deny_ns;
  int retry_auto;        /* EMUV_OOM_RETRY=auto resolved: -1 unknown, 0 no, 1 yes */
} G = {.once = PTHREAD_ONCE_INIT, .host_vmm = -1, .spill_mu = PTHREAD_MUTEX_INITIALIZER, .retry_auto = -1};

/* Split allocations, sorted by base, for interior-pointer range queries (cold path, only consulted
 * when at least one split allocation exists). */
struct range {
  uint64_t base, size;
};
static struct range *splits;
static size_t split_count, split_cap;
static pthread_rwlock_t split_lock = PTHREAD_RWLOCK_INITIALIZER;

static __thread int tl_depth;         /* re-entrancy guard */
static __thread int tl_capture_mode;  /* last mode set through cuThreadExchangeStreamCaptureMode */
static __thread uint64_t tl_retry_deadline;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *env_get(const char *n) { return getenv(n); }

static void atfork_prepare(void) {
  if (G.table) emuv_table_lock_all(G.table);
  pthread_mutex_lock(&G.spill_mu);
}
static void atfork_parent(void) {
  pthread_mutex_unlock(&G.spill_mu);
  if (G.table) emuv_table_unlock_all(G.table);
}
static void atfork_child(void) {
  pthread_mutex_init(&G.spill_mu, NULL);
  if (G.table) emuv_table_reset_after_fork(G.table);
  if (G.pools) emuv_table_reset_after_fork(G.pools);
  pthread_rwlock_init(&split_lock, NULL);
  split_count = 0;
  G.host_pool = NULL;
  G.pid = (uint32_t)getpid();
  if (G.active) {
    G.budget.slot = NULL; /* the parent's slot stays the parent's */
    G.slot_pending = 1;
  }
}

static void init_once(void) {
  emuv_config_load(&G.cfg, env_get);
  void *h = dlopen(REAL_NAME, RTLD_NOW | RTLD_NOLOAD);
  if (h == NULL) h = dlopen(REAL_NAME, RTLD_NOW);
  if (h == NULL) {
    emuv_log(EMUV_LOG_ERROR, "cannot find %s (the real driver); CUDA calls will fail", REAL_NAME);
    return;
  }
#define EMUV_HOOK(name, pfn) real.name = (pfn)dlsym(h, #name);
#define EMUV_REAL(name, pfn) real.name = (pfn)dlsym(h, #name);
#include "hooks.def"
  /* pointer-identity routes: the real export of each hooked name -> our hook of the same ABI */
#define EMUV_HOOK(name, pfn)                                       \
  if (real.name != NULL) {                                         \
    routes[route_count].real_fn = (void *)real.name;               \
    routes[route_count].hook_fn = (void *)&name;                   \
    route_count++;                                                 \
  }
#include "hooks.def"
  for (int i = 1; i < route_count; i++) /* insertion sort: ~30 entries, once */
    for (int j = i; j > 0 && (uintptr_t)routes[j - 1].real_fn > (uintptr_t)routes[j].real_fn; j--) {
      struct route t = routes[j];
      routes[j] = routes[j - 1];
      routes[j - 1] = t;
    }
  G.pid = (uint32_t)getpid();
  if (!G.cfg.passthrough) {
    G.table = emuv_table_new();
    G.pools = emuv_table_new();
    if (G.table != NULL && G.pools != NULL && emuv_stats_open(&G.stats, &G.cfg, G.pid) == 0) {
      G.budget.cfg = &G.cfg;
      G.budget.tot = &G.stats.hdr->tot[0];
      G.budget.slot = G.stats.slot;
      G.active = 1;
      emuv_log(EMUV_LOG_INFO, "active: share %llu, limit %llu, headroom %llu, stats %s",
               (unsigned long long)G.cfg.vram_share, (unsigned long long)G.cfg.limit,
               (unsigned long long)G.cfg.headroom, G.stats.shared ? G.cfg.stats_path : "(per process)");
    } else {
      emuv_log(EMUV_LOG_ERROR, "internal initialisation failed; passing through");
    }
  }
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  __atomic_store_n(&G.ready, 1, __ATOMIC_RELEASE);
}

static void claim_slot_after_fork(void) {
  int one = 1;
  if (!__atomic_compare_exchange_n(&G.slot_pending, &one, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
  struct emuv_stats_slot *s = NULL;
  if (G.stats.shared) s = emuv_stats_claim(G.stats.hdr, G.pid, emuv_proc_start_time(G.pid), 0);
  __atomic_store_n(&G.budget.slot, s, __ATOMIC_RELEASE);
}

/* Returns 1 when the caller should run emuv logic, 0 for a straight forward to the real driver. */
static inline int enter(void) {
  if (UNLIKELY(!__atomic_load_n(&G.ready, __ATOMIC_ACQUIRE))) pthread_once(&G.once, init_once);
  if (UNLIKELY(tl_depth > 0) || !G.active) return 0;
  if (UNLIKELY(__atomic_load_n(&G.slot_pending, __ATOMIC_RELAXED))) claim_slot_after_fork();
  tl_depth++;
  return 1;
}
static inline void leave(void) { tl_depth--; }

#define FORWARD(name, ...) \
  (real.name != NULL ? real.name(__VA_ARGS__) : CUDA_ERROR_NOT_INITIALIZED)

/* ---- placement helpers --------------------------------------------------------------------------- */

static int retry_enabled(void) {
  if (G.cfg.oom_retry == EMUV_RETRY_ON) return 1;
  if (G.cfg.oom_retry == EMUV_RETRY_OFF) return 0;
  if (__atomic_load_n(&G.retry_auto, __ATOMIC_RELAXED) == 1) return 1;
  void *c10 = dlopen("libc10_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
  if (c10 != NULL) {
    dlclose(c10);
    __atomic_store_n(&G.retry_auto, 1, __ATOMIC_RELAXED);
    return 1;
  }
  return 0;
}

/* Deny-once: the first request of a thread that would spill gets OUT_OF_MEMORY so a caching allocator
 * (PyTorch) frees its cache and retries; the retry within 2 s is served. At most one denial per 5 s per
 * process, and never while the thread is in relaxed capture mode (PyTorch cannot free during capture). */
static int should_deny(void) {
  if (!retry_enabled() || tl_capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED) return 0;
  uint64_t now = mono_ns();
  if (tl_retry_deadline != 0 && now <= tl_retry_deadline) {
    tl_retry_deadline = 0;
    return 0;
  }
  uint64_t last = __atomic_load_n(&G.last_deny_ns, __ATOMIC_RELAXED);
  if (last != 0 && now - last < 5000000000ull) return 0;
  if (!__atomic_compare_exchange_n(&G.last_deny_ns, &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 0;
  tl_retry_deadline = now + 2000000000ull;
  emuv_count_event(&G.budget, EMUV_EV_DENIED);
  return 1;
}

static CUdevice current_device(void) {
  CUdevice d = 0;
  if (real.cuCtxGetDevice == NULL || real.cuCtxGetDevice(&d) != CUDA_SUCCESS) d = 0;
  return d;
}

/* Which host location VMM can use: attributes first, then a one-granule probe (as NCCL does). */
static int host_vmm_type(CUdevice dev) {
  int t = __atomic_load_n(&G.host_vmm, __ATOMIC_ACQUIRE);
  if (t >= 0) return t;
  pthread_mutex_lock(&G.spill_mu);
  t = G.host_vmm;
  if (t < 0) {
    t = 0;
    int numa = -1;
    if (real.cuDeviceGetAttribute == NULL ||
        real.cuDeviceGetAttribute(&numa, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, dev) != CUDA_SUCCESS || numa < 0)
      numa = 0;
    G.host_numa_id = numa;
    static const struct {
      CUdevice_attribute attr;
      CUmemLocationType loc;
    } cand[] = {{CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, CU_MEM_LOCATION_TYPE_HOST_NUMA},
                {CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, CU_MEM_LOCATION_TYPE_HOST}};
    for (unsigned i = 0; i < 2 && t == 0; i++) {
      int v = 0;
      CUresult r = real.cuDeviceGetAttribute ? real.cuDeviceGetAttribute(&v, cand[i].attr, dev) : CUDA_ERROR_NOT_FOUND;
      if (r == CUDA_SUCCESS && v == 0) continue; /* the driver says no */
      CUmemAllocationProp p = {0};
      p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
      p.location.type = cand[i].loc;
      p.location.id = cand[i].loc == CU_MEM_LOCATION_TYPE_HOST_NUMA ? G.host_numa_id : 0;
      CUmemGenericAllocationHandle h;
      if (real.cuMemCreate(&h, EMUV_SPLIT_GRANULE, &p, 0) == CUDA_SUCCESS) {
        real.cuMemRelease(h);
        t = (int)cand[i].loc;
      }
    }
    if (t == 0) emuv_log(EMUV_LOG_WARN, "host VMM unavailable; spilling whole allocations to zero-copy pinned memory");
    __atomic_store_n(&G.host_vmm, t, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&G.spill_mu);
  return t;
}

static void split_add(uint64_t base, uint64_t size) {
  pthread_rwlock_wrlock(&split_lock);
  if (split_count == split_cap) {
    size_t ncap = split_cap ? split_cap * 2 : 64;
    struct range *n = realloc(splits, ncap * sizeof *n);
    if (n == NULL) {
      pthread_rwlock_unlock(&split_lock);
      return;
    }
    splits = n;
    split_cap = ncap;
  }
  size_t i = split_count;
  while (i > 0 && splits[i - 1].base > base) {
    splits[i] = splits[i - 1];
    i--;
  }
  splits[i] = (struct range){base, size};
  __atomic_store_n(&split_count, split_count + 1, __ATOMIC_RELEASE);
  pthread_rwlock_unlock(&split_lock);
}

static void split_del(uint64_t base) {
  pthread_rwlock_wrlock(&split_lock);
  for (size_t i = 0; i < split_count; i++)
    if (splits[i].base == base) {
      memmove(&splits[i], &splits[i + 1], (split_count - i - 1) * sizeof *splits);
      __atomic_store_n(&split_count, split_count - 1, __ATOMIC_RELEASE);
      break;
    }
  pthread_rwlock_unlock(&split_lock);
}

static int split_find(uint64_t p, struct range *out) {
  if (__atomic_load_n(&split_count, __ATOMIC_ACQUIRE) == 0) return 0;
  int found = 0;
  pthread_rwlock_rdlock(&split_lock);
  size_t lo = 0, hi = split_count;
  while (lo < hi) { /* last range with base <= p */
    size_t mid = (lo + hi) / 2;
    if (splits[mid].base <= p) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && p < splits[lo - 1].base + splits[lo - 1].size) {
    *out = splits[lo - 1];
    found = 1;
  }
  pthread_rwlock_unlock(&split_lock);
  return found;
}

static uint64_t round_up(uint64_t v, uint64_t g) { return (v + g - 1) / g * g; }

/* Slow path only (a reservation fell short): reclaim the counters of dead processes of the container
 * so a long-running process does not wait for the next process start or the agent. At most every 50 ms. */
static int reap_now(void) {
  static uint64_t last;
  if (!G.stats.shared) return 0;
  uint64_t now = mono_ns(), prev = __atomic_load_n(&last, __ATOMIC_RELAXED);
  if (prev != 0 && now - prev < 50000000ull) return 0;
  if (!__atomic_compare_exchange_n(&last, &prev, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 0;
  return emuv_stats_reap(G.stats.hdr, G.pid) > 0;
}

/* Places `n` bytes as one contiguous device range: `vram` bytes (a 2 MiB multiple, may be 0) from a
 * device handle, the rest from a host handle, both mapped into one VA reservation. Falls back to
 * zero-copy pinned memory (whole allocation in RAM) when host VMM is unavailable. */
static CUresult spill_alloc(CUdeviceptr *dptr, uint64_t n, uint64_t *vram, struct emuv_alloc *rec) {
  CUdevice dev = current_device();
  int loc = host_vmm_type(dev);
  memset(rec, 0, sizeof *rec);
  if (loc == 0) {
    if (*vram) emuv_unreserve_vram(&G.budget, *vram);
    *vram = 0;
    void *hp = NULL;
    CUresult r = FORWARD(cuMemHostAlloc, &hp, n, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
    if (r != CUDA_SUCCESS) return r;
    CUdeviceptr d = 0;
    r = FORWARD(cuMemHostGetDevicePointer_v2, &d, hp, 0);
    if (r != CUDA_SUCCESS) {
      real.cuMemFreeHost(hp);
      return r;
    }
    *rec = (struct emuv_alloc){.key = d, .size = n, .host = n, .h_host = (uint64_t)(uintptr_t)hp,
                               .kind = EMUV_KIND_ZEROCOPY};
    *dptr = d;
    return CUDA_SUCCESS;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    uint64_t va_size = round_up(n, EMUV_SPLIT_GRANULE);
    uint64_t v = *vram, hsz = va_size - v;
    CUdeviceptr va = 0;
    CUmemGenericAllocationHandle hd = 0, hh = 0;
    int mapped_d = 0, mapped_h = 0;
    CUresult r = FORWARD(cuMemAddressReserve, &va, va_size, EMUV_SPLIT_GRANULE, 0, 0);
    if (r != CUDA_SUCCESS) return r;
    CUmemAllocationProp p = {0};
    p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    if (v) {
      p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      p.location.id = dev;
      r = real.cuMemCreate(&hd, v, &p, 0);
      if (r == CUDA_SUCCESS) r = FORWARD(cuMemMap, va, v, 0, hd, 0);
      mapped_d = r == CUDA_SUCCESS;
    }
    if (r == CUDA_SUCCESS && hsz) {
      p.location.type = (CUmemLocationType)loc;
      p.location.id = loc == CU_MEM_LOCATION_TYPE_HOST_NUMA ? G.host_numa_id : 0;
      r = real.cuMemCreate(&hh, hsz, &p, 0);
      if (r == CUDA_SUCCESS) r = FORWARD(cuMemMap, va + v, hsz, 0, hh, 0);
      mapped_h = r == CUDA_SUCCESS;
    }
    if (r == CUDA_SUCCESS) {
      CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev},
                             .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
      r = FORWARD(cuMemSetAccess, va, va_size, &acc, 1);
    }
    if (r == CUDA_SUCCESS) {
      *rec = (struct emuv_alloc){.key = va, .size = n, .vram = v, .host = n - v, .h_dev = hd, .h_host = hh,
                                 .va_size = va_size, .kind = EMUV_KIND_SPLIT};
      *dptr = va;
      return CUDA_SUCCESS;
    }
    if (mapped_h) real.cuMemUnmap(va + v, hsz);
    if (mapped_d) real.cuMemUnmap(va, v);
    if (hh) real.cuMemRelease(hh);
    if (hd) real.cuMemRelease(hd);
    real.cuMemAddressFree(va, va_size);
    if (v == 0 || r != CUDA_ERROR_OUT_OF_MEMORY) return r;
    /* the card itself is full: retry with everything in RAM */
    emuv_unreserve_vram(&G.budget, v);
    *vram = 0;
  }
  return CUDA_ERROR_OUT_OF_MEMORY;
}

static void free_split(const struct emuv_alloc *a) {
  if (a->h_dev) real.cuMemUnmap(a->key, a->vram);
  if (a->h_host) real.cuMemUnmap(a->key + a->vram, a->va_size - a->vram);
  if (a->h_dev) real.cuMemRelease(a->h_dev);
  if (a->h_host) real.cuMemRelease(a->h_host);
  real.cuMemAddressFree(a->key, a->va_size);
  split_del(a->key);
}

static void track(const struct emuv_alloc *a) {
  if (emuv_table_insert(G.table, a) != 0) emuv_log(EMUV_LOG_ERROR, "allocation table full (out of memory)");
}

/* cuMemAlloc placement (policy v1): VRAM within the share, split or zero-copy spill beyond it, the
 * virtual total never exceeded. */
static CUresult place_alloc(CUdeviceptr *dptr, size_t n) {
  if (dptr == NULL || n == 0) return real.cuMemAlloc_v2(dptr, n);
  struct emuv_budget *b = &G.budget;
  if (!emuv_reserve_total(b, n) && !(reap_now() && emuv_reserve_total(b, n))) {
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  int capturing = tl_capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED;
  uint64_t v = emuv_reserve_vram(b, n, G.cfg.spill && !capturing);
  if (v < n && reap_now()) { /* dead processes may be holding VRAM: retry once */
    if (v) emuv_unreserve_vram(b, v);
    v = emuv_reserve_vram(b, n, G.cfg.spill && !capturing);
  }
  if (v == n) {
    CUresult r = real.cuMemAlloc_v2(dptr, n);
    if (r == CUDA_SUCCESS) {
      struct emuv_alloc a = {.key = *dptr, .size = n, .vram = n, .kind = EMUV_KIND_VRAM};
      track(&a);
      emuv_commit(b, n, 0);
      return r;
    }
    emuv_unreserve_vram(b, v);
    v = 0;
    if (r != CUDA_ERROR_OUT_OF_MEMORY || !G.cfg.spill || capturing) {
      emuv_unreserve_total(b, n);
      return r;
    }
    /* the physical card is full (other tenants, driver overhead): spill the whole request */
  }
  if (!G.cfg.spill || capturing || should_deny()) {
    if (v) emuv_unreserve_vram(b, v);
    emuv_unreserve_total(b, n);
    if (!G.cfg.spill) emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  struct emuv_alloc a;
  CUresult r = spill_alloc(dptr, n, &v, &a);
  if (r != CUDA_SUCCESS) {
    if (v) emuv_unreserve_vram(b, v);
    emuv_unreserve_total(b, n);
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  split_add(a.key, a.size); /* split and zero-copy: interior pointers resolve to the whole allocation */
  track(&a);
  emuv_commit(b, v, n - v);
  emuv_count_event(b, EMUV_EV_SPILL);
  return CUDA_SUCCESS;
}

static void release_record(const struct emuv_alloc *a) {
  switch (a->kind) {
    case EMUV_KIND_MANAGED: emuv_slot_add(&G.budget, EMUV_SLOT_MANAGED, -(int64_t)a->size); break;
    case EMUV_KIND_PINNED: emuv_slot_add(&G.budget, EMUV_SLOT_PINNED, -(int64_t)a->size); break;
    default: emuv_release(&G.budget, a->vram, a->host); break;
  }
}

/* ---- exported hooks ------------------------------------------------------------------------------ */

static void *route(void *p) {
  int lo = 0, hi = route_count - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if ((uintptr_t)routes[mid].real_fn == (uintptr_t)p) return routes[mid].hook_fn;
    if ((uintptr_t)routes[mid].real_fn < (uintptr_t)p) lo = mid + 1;
    else hi = mid - 1;
  }
  return p;
}

EXPORT CUresult CUDAAPI cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                            CUdriverProcAddressQueryResult *symbolStatus) {
  if (UNLIKELY(!__atomic_load_n(&G.ready, __ATOMIC_ACQUIRE))) pthread_once(&G.once, init_once);
  CUresult r = FORWARD(cuGetProcAddress_v2, symbol, pfn, cudaVersion, flags, symbolStatus);
  if (r == CUDA_SUCCESS && pfn != NULL && *pfn != NULL) *pfn = route(*pfn);
  return r;
}

EXPORT CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
  if (UNLIKELY(!__atomic_load_n(&G.ready, __ATOMIC_ACQUIRE))) pthread_once(&G.once, init_once);
  CUresult r = FORWARD(cuGetProcAddress, symbol, pfn, cudaVersion, flags);
  if (r == CUDA_SUCCESS && pfn != NULL && *pfn != NULL) *pfn = route(*pfn);
  return r;
}

EXPORT CUresult CUDAAPI cuInit(unsigned int flags) {
  if (UNLIKELY(!__atomic_load_n(&G.ready, __ATOMIC_ACQUIRE))) pthread_once(&G.once, init_once);
  return FORWARD(cuInit, flags);
}

EXPORT CUresult CUDAAPI cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
  if (!enter()) return FORWARD(cuMemAlloc_v2, dptr, bytesize);
  CUresult r = place_alloc(dptr, bytesize);
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t w, size_t h, unsigned int esz) {
  if (!enter()) return FORWARD(cuMemAllocPitch_v2, dptr, pitch, w, h, esz);
  CUresult r = real.cuMemAllocPitch_v2(dptr, pitch, w, h, esz);
  if (r == CUDA_SUCCESS) {
    uint64_t n = (uint64_t)*pitch * h;
    if (!emuv_reserve_total(&G.budget, n)) {
      real.cuMemFree_v2(*dptr);
      emuv_count_event(&G.budget, EMUV_EV_OOM);
      r = CUDA_ERROR_OUT_OF_MEMORY;
    } else if (emuv_reserve_vram(&G.budget, n, 0) != n) {
      real.cuMemFree_v2(*dptr);
      emuv_unreserve_total(&G.budget, n);
      r = CUDA_ERROR_OUT_OF_MEMORY; /* pitched memory is never split or spilled */
    } else {
      struct emuv_alloc a = {.key = *dptr, .size = n, .vram = n, .kind = EMUV_KIND_VRAM};
      track(&a);
      emuv_commit(&G.budget, n, 0);
    }
  }
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuMemFree_v2(CUdeviceptr dptr) {
  if (!enter()) return FORWARD(cuMemFree_v2, dptr);
  struct emuv_alloc a;
  CUresult r = CUDA_SUCCESS;
  if (dptr != 0 && emuv_table_remove(G.table, dptr, &a)) {
    if (a.kind == EMUV_KIND_SPLIT) free_split(&a);
    else if (a.kind == EMUV_KIND_ZEROCOPY) {
      r = real.cuMemFreeHost((void *)(uintptr_t)a.h_host);
      if (r == CUDA_SUCCESS) split_del(a.key);
    }
    else r = real.cuMemFree_v2(dptr);
    if (r == CUDA_SUCCESS) release_record(&a);
    else track(&a);
  } else {
    r = real.cuMemFree_v2(dptr);
  }
  leave();
  return r;
}

static int stream_capturing(CUstream s, int ptsz) {
  CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
  PFN_cuStreamIsCapturing_v10000 f = ptsz ? real.cuStreamIsCapturing_ptsz : real.cuStreamIsCapturing;
  if (f == NULL || f(s, &st) != CUDA_SUCCESS) return 0;
  return st != CU_STREAM_CAPTURE_STATUS_NONE;
}

static CUresult host_pool(CUmemoryPool *out) {
  host_vmm_type(current_device()); /* resolves host_numa_id; takes spill_mu itself, so before locking */
  pthread_mutex_lock(&G.spill_mu);
  CUresult r = CUDA_SUCCESS;
  if (G.host_pool == NULL) {
    CUdevice dev = current_device();
    CUmemPoolProps pp = {0};
    pp.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    pp.handleTypes = CU_MEM_HANDLE_TYPE_NONE;
    pp.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
    pp.location.id = G.host_numa_id;
    CUmemoryPool p = NULL;
    r = FORWARD(cuMemPoolCreate, &p, &pp);
    if (r != CUDA_SUCCESS) {
      pp.location.type = CU_MEM_LOCATION_TYPE_HOST;
      r = FORWARD(cuMemPoolCreate, &p, &pp);
    }
    if (r == CUDA_SUCCESS) {
      CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev},
                             .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
      r = FORWARD(cuMemPoolSetAccess, p, &acc, 1);
      if (r == CUDA_SUCCESS) G.host_pool = p;
    }
  }
  *out = G.host_pool;
  pthread_mutex_unlock(&G.spill_mu);
  return r;
}

/* Stream-ordered allocation: VRAM within the share, else the emuv host pool. Never redirected while
 * the stream is capturing (the allocation becomes a graph node the driver places later). */
static CUresult alloc_async(int ptsz, CUdeviceptr *dptr, size_t n, CUmemoryPool pool, CUstream s) {
  PFN_cuMemAllocAsync_v11020 plain = ptsz ? real.cuMemAllocAsync_ptsz : real.cuMemAllocAsync;
  PFN_cuMemAllocFromPoolAsync_v11020 frompool = ptsz ? real.cuMemAllocFromPoolAsync_ptsz : real.cuMemAllocFromPoolAsync;
  if (dptr == NULL || n == 0 || stream_capturing(s, ptsz))
    return pool ? frompool(dptr, n, pool, s) : plain(dptr, n, s);
  struct emuv_budget *b = &G.budget;
  if (pool != NULL && emuv_table_get(G.pools, (uint64_t)(uintptr_t)pool, NULL)) {
    /* the caller's own host-located pool: host memory by request, charged against the total only */
    if (!emuv_reserve_total(b, n)) {
      emuv_count_event(b, EMUV_EV_OOM);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CUresult r = frompool(dptr, n, pool, s);
    if (r != CUDA_SUCCESS) {
      emuv_unreserve_total(b, n);
      return r;
    }
    struct emuv_alloc a = {.key = *dptr, .size = n, .host = n, .kind = EMUV_KIND_ASYNC_HOST};
    track(&a);
    emuv_commit(b, 0, n);
    return r;
  }
  if (!emuv_reserve_total(b, n)) {
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  uint64_t v = emuv_reserve_vram(b, n, 0);
  if (v == n) {
    CUresult r = pool ? frompool(dptr, n, pool, s) : plain(dptr, n, s);
    if (r == CUDA_SUCCESS) {
      struct emuv_alloc a = {.key = *dptr, .size = n, .vram = n, .kind = EMUV_KIND_ASYNC_VRAM};
      track(&a);
      emuv_commit(b, n, 0);
      return r;
    }
    emuv_unreserve_vram(b, v);
    if (r != CUDA_ERROR_OUT_OF_MEMORY || !G.cfg.spill) {
      emuv_unreserve_total(b, n);
      return r;
    }
  }
  CUmemoryPool hp = NULL;
  if (!G.cfg.spill || should_deny() || host_pool(&hp) != CUDA_SUCCESS) {
    emuv_unreserve_total(b, n);
    if (!G.cfg.spill) emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  CUresult r = frompool(dptr, n, hp, s);
  if (r != CUDA_SUCCESS) {
    emuv_unreserve_total(b, n);
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  struct emuv_alloc a = {.key = *dptr, .size = n, .host = n, .kind = EMUV_KIND_ASYNC_HOST};
  track(&a);
  emuv_commit(b, 0, n);
  emuv_count_event(b, EMUV_EV_SPILL);
  return CUDA_SUCCESS;
}

EXPORT CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr *dptr, size_t n, CUstream s) {
  if (!enter()) return FORWARD(cuMemAllocAsync, dptr, n, s);
  CUresult r = alloc_async(0, dptr, n, NULL, s);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t n, CUstream s) {
  if (!enter()) return FORWARD(cuMemAllocAsync_ptsz, dptr, n, s);
  CUresult r = alloc_async(1, dptr, n, NULL, s);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t n, CUmemoryPool pool, CUstream s) {
  if (!enter()) return FORWARD(cuMemAllocFromPoolAsync, dptr, n, pool, s);
  CUresult r = alloc_async(0, dptr, n, pool, s);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t n, CUmemoryPool pool, CUstream s) {
  if (!enter()) return FORWARD(cuMemAllocFromPoolAsync_ptsz, dptr, n, pool, s);
  CUresult r = alloc_async(1, dptr, n, pool, s);
  leave();
  return r;
}

static CUresult free_async(PFN_cuMemFreeAsync_v11020 f, CUdeviceptr d, CUstream s) {
  struct emuv_alloc a;
  int tracked = d != 0 && emuv_table_remove(G.table, d, &a);
  CUresult r = f(d, s);
  if (tracked) {
    if (r == CUDA_SUCCESS) release_record(&a);
    else track(&a);
  }
  return r;
}
EXPORT CUresult CUDAAPI cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props) {
  if (!enter()) return FORWARD(cuMemPoolCreate, pool, props);
  CUresult r = real.cuMemPoolCreate(pool, props);
  if (r == CUDA_SUCCESS && props != NULL && props->location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
    struct emuv_alloc a = {.key = (uint64_t)(uintptr_t)*pool, .kind = (uint32_t)props->location.type};
    emuv_table_insert(G.pools, &a);
  }
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemPoolDestroy(CUmemoryPool pool) {
  if (!enter()) return FORWARD(cuMemPoolDestroy, pool);
  CUresult r = real.cuMemPoolDestroy(pool);
  if (r == CUDA_SUCCESS) emuv_table_remove(G.pools, (uint64_t)(uintptr_t)pool, NULL);
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr d, CUstream s) {
  if (!enter()) return FORWARD(cuMemFreeAsync, d, s);
  CUresult r = free_async(real.cuMemFreeAsync, d, s);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr d, CUstream s) {
  if (!enter()) return FORWARD(cuMemFreeAsync_ptsz, d, s);
  CUresult r = free_async(real.cuMemFreeAsync_ptsz, d, s);
  leave();
  return r;
}

/* cuMemCreate (expandable segments, NCCL, ggml): a DEVICE handle stays in VRAM while the share allows
 * (handles of at least the large threshold leave the headroom free); beyond it the handle is created
 * in host memory instead (HOST_NUMA keeps the requested shareable handle types; HOST must drop them). */
EXPORT CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle *handle, size_t n, const CUmemAllocationProp *prop,
                                    unsigned long long flags) {
  if (!enter()) return FORWARD(cuMemCreate, handle, n, prop, flags);
  CUresult r;
  if (handle == NULL || prop == NULL || n == 0 || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
    r = real.cuMemCreate(handle, n, prop, flags);
    leave();
    return r;
  }
  struct emuv_budget *b = &G.budget;
  if (!emuv_reserve_total(b, n)) {
    emuv_count_event(b, EMUV_EV_OOM);
    leave();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  uint64_t v = emuv_reserve_vram(b, n, 0);
  if (v == n) {
    r = real.cuMemCreate(handle, n, prop, flags);
    if (r == CUDA_SUCCESS) {
      struct emuv_alloc a = {.key = *handle, .size = n, .vram = n, .kind = EMUV_KIND_HANDLE};
      track(&a);
      emuv_commit(b, n, 0);
      leave();
      return r;
    }
    emuv_unreserve_vram(b, v);
    if (r != CUDA_ERROR_OUT_OF_MEMORY || !G.cfg.spill) {
      emuv_unreserve_total(b, n);
      leave();
      return r;
    }
  }
  int capturing = tl_capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED;
  if (!G.cfg.spill || capturing || should_deny() || host_vmm_type(prop->location.id) == 0) {
    emuv_unreserve_total(b, n);
    if (!G.cfg.spill) emuv_count_event(b, EMUV_EV_OOM);
    leave();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  CUmemAllocationProp hp = *prop;
  hp.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
  hp.location.id = G.host_numa_id;
  r = real.cuMemCreate(handle, n, &hp, flags);
  if (r != CUDA_SUCCESS && r != CUDA_ERROR_OUT_OF_MEMORY) {
    hp.location.type = CU_MEM_LOCATION_TYPE_HOST;
    hp.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
    r = real.cuMemCreate(handle, n, &hp, flags);
  }
  if (r != CUDA_SUCCESS) {
    emuv_unreserve_total(b, n);
    emuv_count_event(b, EMUV_EV_OOM);
    leave();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  struct emuv_alloc a = {.key = *handle, .size = n, .host = n, .kind = EMUV_KIND_HANDLE};
  track(&a);
  emuv_commit(b, 0, n);
  emuv_count_event(b, EMUV_EV_SPILL);
  leave();
  return CUDA_SUCCESS;
}

EXPORT CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle h) {
  if (!enter()) return FORWARD(cuMemRelease, h);
  struct emuv_alloc a;
  int tracked = emuv_table_remove(G.table, h, &a);
  CUresult r = real.cuMemRelease(h);
  if (tracked) {
    if (r == CUDA_SUCCESS) release_record(&a);
    else track(&a);
  }
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuMemAllocManaged(CUdeviceptr *dptr, size_t n, unsigned int flags) {
  if (!enter()) return FORWARD(cuMemAllocManaged, dptr, n, flags);
  CUresult r = real.cuMemAllocManaged(dptr, n, flags);
  if (r == CUDA_SUCCESS) {
    struct emuv_alloc a = {.key = *dptr, .size = n, .kind = EMUV_KIND_MANAGED};
    track(&a);
    emuv_slot_add(&G.budget, EMUV_SLOT_MANAGED, (int64_t)n);
  }
  leave();
  return r;
}

static void track_pinned(void *p, size_t n) {
  struct emuv_alloc a = {.key = (uint64_t)(uintptr_t)p, .size = n, .kind = EMUV_KIND_PINNED};
  track(&a);
  emuv_slot_add(&G.budget, EMUV_SLOT_PINNED, (int64_t)n);
}
static void untrack_pinned(void *p) {
  struct emuv_alloc a;
  if (p != NULL && emuv_table_remove(G.table, (uint64_t)(uintptr_t)p, &a)) release_record(&a);
}

EXPORT CUresult CUDAAPI cuMemHostAlloc(void **pp, size_t n, unsigned int flags) {
  if (!enter()) return FORWARD(cuMemHostAlloc, pp, n, flags);
  CUresult r = real.cuMemHostAlloc(pp, n, flags);
  if (r == CUDA_SUCCESS) track_pinned(*pp, n);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemAllocHost_v2(void **pp, size_t n) {
  if (!enter()) return FORWARD(cuMemAllocHost_v2, pp, n);
  CUresult r = real.cuMemAllocHost_v2(pp, n);
  if (r == CUDA_SUCCESS) track_pinned(*pp, n);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemFreeHost(void *p) {
  if (!enter()) return FORWARD(cuMemFreeHost, p);
  CUresult r = real.cuMemFreeHost(p);
  if (r == CUDA_SUCCESS) untrack_pinned(p);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemHostRegister_v2(void *p, size_t n, unsigned int flags) {
  if (!enter()) return FORWARD(cuMemHostRegister_v2, p, n, flags);
  CUresult r = real.cuMemHostRegister_v2(p, n, flags);
  if (r == CUDA_SUCCESS) track_pinned(p, n);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemHostRegister(void *p, size_t n, unsigned int flags) { /* the 4000 ABI */
  if (!enter()) return FORWARD(cuMemHostRegister, p, n, flags);
  CUresult r = real.cuMemHostRegister(p, n, flags);
  if (r == CUDA_SUCCESS) track_pinned(p, n);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuMemHostUnregister(void *p) {
  if (!enter()) return FORWARD(cuMemHostUnregister, p);
  CUresult r = real.cuMemHostUnregister(p);
  if (r == CUDA_SUCCESS) untrack_pinned(p);
  leave();
  return r;
}

static CUresult array_create(CUarray *arr, uint64_t n, CUresult (*create)(CUarray *, const void *), const void *desc) {
  struct emuv_budget *b = &G.budget;
  if (!emuv_reserve_total(b, n)) {
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (emuv_reserve_vram(b, n, EMUV_RESERVE_FULL) != n) { /* arrays live in VRAM only: no spill */
    emuv_unreserve_total(b, n);
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  CUresult r = create(arr, desc);
  if (r != CUDA_SUCCESS) {
    emuv_unreserve_vram(b, n);
    emuv_unreserve_total(b, n);
    return r;
  }
  struct emuv_alloc a = {.key = (uint64_t)(uintptr_t)*arr, .size = n, .vram = n, .kind = EMUV_KIND_ARRAY};
  track(&a);
  emuv_commit(b, n, 0);
  return r;
}
static CUresult create2d(CUarray *a, const void *d) { return real.cuArrayCreate_v2(a, d); }
static CUresult create3d(CUarray *a, const void *d) { return real.cuArray3DCreate_v2(a, d); }

EXPORT CUresult CUDAAPI cuArrayCreate_v2(CUarray *arr, const CUDA_ARRAY_DESCRIPTOR *d) {
  if (!enter()) return FORWARD(cuArrayCreate_v2, arr, d);
  CUresult r = arr == NULL || d == NULL
                   ? real.cuArrayCreate_v2(arr, d)
                   : array_create(arr, emuv_array_bytes(d->Width, d->Height, 1, d->Format, d->NumChannels), create2d, d);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuArray3DCreate_v2(CUarray *arr, const CUDA_ARRAY3D_DESCRIPTOR *d) {
  if (!enter()) return FORWARD(cuArray3DCreate_v2, arr, d);
  CUresult r = arr == NULL || d == NULL
                   ? real.cuArray3DCreate_v2(arr, d)
                   : array_create(arr, emuv_array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels), create3d, d);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuArrayDestroy(CUarray arr) {
  if (!enter()) return FORWARD(cuArrayDestroy, arr);
  struct emuv_alloc a;
  int tracked = arr != NULL && emuv_table_remove(G.table, (uint64_t)(uintptr_t)arr, &a);
  CUresult r = real.cuArrayDestroy(arr);
  if (tracked) {
    if (r == CUDA_SUCCESS) release_record(&a);
    else track(&a);
  }
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr d) {
  if (!enter()) return FORWARD(cuIpcGetMemHandle, h, d);
  struct emuv_alloc a;
  CUresult r;
  if (emuv_table_get(G.table, d, &a) && (a.kind == EMUV_KIND_SPLIT || a.kind == EMUV_KIND_ZEROCOPY ||
                                          a.kind == EMUV_KIND_ASYNC_HOST))
    r = CUDA_ERROR_NOT_SUPPORTED; /* spilled memory is not legacy-IPC capable */
  else r = real.cuIpcGetMemHandle(h, d);
  leave();
  return r;
}

static void drop_record(const struct emuv_alloc *a, void *arg) {
  (void)arg;
  if (a->kind == EMUV_KIND_SPLIT || a->kind == EMUV_KIND_ZEROCOPY) split_del(a->key);
  release_record(a);
}

/* The context and everything in it is gone: drop the accounting and emuv's own pools. */
static void context_gone(void) {
  emuv_table_drain(G.table, drop_record, NULL);
  pthread_mutex_lock(&G.spill_mu);
  G.host_pool = NULL;
  pthread_mutex_unlock(&G.spill_mu);
}

/* cudart asks cuGetProcAddress for the 7000 ABIs of Reset and Release (cudaDeviceReset, its teardown),
 * others for the 11000 ones: both pairs take the same arguments and both end the context. */
static CUresult primary_reset(PFN_cuDevicePrimaryCtxReset_v11000 fn, CUdevice dev) {
  CUresult r = fn != NULL ? fn(dev) : CUDA_ERROR_NOT_INITIALIZED;
  if (r == CUDA_SUCCESS) context_gone(); /* the driver freed it all */
  return r;
}

/* The primary context dies with its last release, and the driver frees its memory with it. */
static CUresult primary_release(PFN_cuDevicePrimaryCtxRelease_v11000 fn, CUdevice dev) {
  CUresult r = fn != NULL ? fn(dev) : CUDA_ERROR_NOT_INITIALIZED;
  unsigned flags = 0;
  int active = 1;
  if (r == CUDA_SUCCESS && real.cuDevicePrimaryCtxGetState != NULL &&
      real.cuDevicePrimaryCtxGetState(dev, &flags, &active) == CUDA_SUCCESS && !active)
    context_gone();
  return r;
}

EXPORT CUresult CUDAAPI cuDevicePrimaryCtxReset_v2(CUdevice dev) {
  if (!enter()) return FORWARD(cuDevicePrimaryCtxReset_v2, dev);
  CUresult r = primary_reset(real.cuDevicePrimaryCtxReset_v2, dev);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuDevicePrimaryCtxReset(CUdevice dev) {
  if (!enter()) return FORWARD(cuDevicePrimaryCtxReset, dev);
  CUresult r = primary_reset(real.cuDevicePrimaryCtxReset, dev);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  if (!enter()) return FORWARD(cuDevicePrimaryCtxRelease_v2, dev);
  CUresult r = primary_release(real.cuDevicePrimaryCtxRelease_v2, dev);
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev) {
  if (!enter()) return FORWARD(cuDevicePrimaryCtxRelease, dev);
  CUresult r = primary_release(real.cuDevicePrimaryCtxRelease, dev);
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode) {
  if (UNLIKELY(!__atomic_load_n(&G.ready, __ATOMIC_ACQUIRE))) pthread_once(&G.once, init_once);
  CUstreamCaptureMode want = mode ? *mode : CU_STREAM_CAPTURE_MODE_GLOBAL;
  CUresult r = FORWARD(cuThreadExchangeStreamCaptureMode, mode);
  if (r == CUDA_SUCCESS) tl_capture_mode = (int)want;
  return r;
}

EXPORT CUresult CUDAAPI cuMemGetInfo_v2(size_t *free_b, size_t *total_b) {
  if (!enter()) return FORWARD(cuMemGetInfo_v2, free_b, total_b);
  CUresult r = real.cuMemGetInfo_v2(free_b, total_b);
  if (r == CUDA_SUCCESS) {
    uint64_t f, t;
    emuv_report(&G.budget, &f, &t, NULL);
    if (free_b) *free_b = f;
    if (total_b) *total_b = t;
  }
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  if (!enter()) return FORWARD(cuDeviceTotalMem_v2, bytes, dev);
  CUresult r = real.cuDeviceTotalMem_v2(bytes, dev);
  if (r == CUDA_SUCCESS && bytes) *bytes = G.cfg.limit;
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr d) {
  if (!enter()) return FORWARD(cuMemGetAddressRange_v2, base, size, d);
  struct range rg;
  CUresult r;
  if (split_find(d, &rg)) {
    if (base) *base = rg.base;
    if (size) *size = rg.size;
    r = CUDA_SUCCESS;
  } else {
    r = real.cuMemGetAddressRange_v2(base, size, d);
  }
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuPointerGetAttribute(void *data, CUpointer_attribute attr, CUdeviceptr p) {
  if ((attr != CU_POINTER_ATTRIBUTE_RANGE_START_ADDR && attr != CU_POINTER_ATTRIBUTE_RANGE_SIZE) || !enter())
    return FORWARD(cuPointerGetAttribute, data, attr, p);
  struct range rg;
  CUresult r;
  if (data != NULL && split_find(p, &rg)) {
    if (attr == CU_POINTER_ATTRIBUTE_RANGE_START_ADDR) *(CUdeviceptr *)data = rg.base;
    else *(size_t *)data = rg.size;
    r = CUDA_SUCCESS;
  } else {
    r = real.cuPointerGetAttribute(data, attr, p);
  }
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuPointerGetAttributes(unsigned int n, CUpointer_attribute *attrs, void **data, CUdeviceptr p) {
  if (__atomic_load_n(&split_count, __ATOMIC_ACQUIRE) == 0 || !enter()) return FORWARD(cuPointerGetAttributes, n, attrs, data, p);
  struct range rg;
  CUresult r;
  if (attrs == NULL || data == NULL || !split_find(p, &rg)) {
    r = real.cuPointerGetAttributes(n, attrs, data, p);
  } else { /* inside a split or zero-copy allocation: ranges are ours, the rest the driver's */
    r = CUDA_SUCCESS;
    for (unsigned i = 0; i < n && r == CUDA_SUCCESS; i++) {
      if (data[i] == NULL) continue;
      if (attrs[i] == CU_POINTER_ATTRIBUTE_RANGE_START_ADDR) *(CUdeviceptr *)data[i] = rg.base;
      else if (attrs[i] == CU_POINTER_ATTRIBUTE_RANGE_SIZE) *(size_t *)data[i] = rg.size;
      else r = real.cuPointerGetAttributes(1, &attrs[i], &data[i], p);
    }
  }
  leave();
  return r;
}

/* For libemuv-nvml.so in the same process: the numbers cuMemGetInfo_v2 reports. Returns 0 when emuv is
 * passing through (the caller then reports the real values). */
EXPORT int emuv_shim_report(uint64_t *free_b, uint64_t *total_b, uint64_t *used_b) {
  if (UNLIKELY(!__atomic_load_n(&G.ready, __ATOMIC_ACQUIRE))) pthread_once(&G.once, init_once);
  if (!G.active) return 0;
  emuv_report(&G.budget, free_b, total_b, used_b);
  return 1;
}
