/*
 * libemuv-cuda.so: SONAME libcuda.so.1, DT_NEEDED libemuv-real-cuda.so (the real driver under a private
 * name). Exports only the hooks of hooks.def (plus emuv_shim_report for the NVML shim); every other name
 * resolves to the real driver through this library's dependency scope. Hooks are thin: they check
 * arguments, guard re-entrancy, forward, and keep the allocation table; where memory goes is decided in
 * placement.c (over budget.c's counters). No constructors: init is lazy, under pthread_once.
 */
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <cudaTypedefs.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core.h"
#include "placement.h"

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
} G = {.once = PTHREAD_ONCE_INIT};

/* Placement (placement.c): its driver is the real one, its budget the container's. Its locks are valid
 * from the start: the fork handlers take them in pass-through processes too. */
static struct emuv_place P = {.mu = PTHREAD_MUTEX_INITIALIZER, .range_lock = PTHREAD_RWLOCK_INITIALIZER,
                              .host_vmm = -1, .retry_auto = -1};

static __thread int tl_depth;         /* re-entrancy guard */
static __thread int tl_capture_mode;  /* last mode set through cuThreadExchangeStreamCaptureMode */

static const char *env_get(const char *n) { return getenv(n); }

static void atfork_prepare(void) {
  if (G.table) emuv_table_lock_all(G.table);
  emuv_place_lock(&P);
}
static void atfork_parent(void) {
  emuv_place_unlock(&P);
  if (G.table) emuv_table_unlock_all(G.table);
}
static void atfork_child(void) {
  emuv_place_after_fork(&P);
  if (G.table) emuv_table_reset_after_fork(G.table);
  if (G.pools) emuv_table_reset_after_fork(G.pools);
  G.pid = (uint32_t)getpid();
  if (G.active) {
    G.budget.slot = NULL; /* the parent's slot stays the parent's */
    G.slot_pending = 1;
  }
}

/* For placement's slow path: give back what dead processes of the container still hold. */
static int reap_dead(void) { return G.stats.shared && emuv_stats_reap(G.stats.hdr, G.pid) > 0; }

static void place_setup(void) {
#define D(name) P.drv.name = real.name;
  D(cuMemAlloc_v2) D(cuMemFree_v2) D(cuMemAllocPitch_v2) D(cuArrayCreate_v2) D(cuArray3DCreate_v2)
  D(cuMemCreate) D(cuMemRelease) D(cuMemAddressReserve) D(cuMemAddressFree) D(cuMemMap) D(cuMemUnmap)
  D(cuMemSetAccess) D(cuMemHostAlloc) D(cuMemHostGetDevicePointer_v2) D(cuMemFreeHost) D(cuMemAllocManaged)
  D(cuMemAdvise) D(cuMemAdvise_v2) D(cuMemAllocAsync) D(cuMemAllocAsync_ptsz) D(cuMemAllocFromPoolAsync)
  D(cuMemAllocFromPoolAsync_ptsz) D(cuMemPoolCreate) D(cuMemPoolSetAccess) D(cuCtxGetDevice)
  D(cuDeviceGetAttribute)
#undef D
  P.cfg = &G.cfg;
  P.budget = &G.budget;
  P.reap = reap_dead;
  emuv_place_init(&P);
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
      place_setup();
      G.active = 1;
      static const char *const backends[] = {"auto", "pinned", "managed"};
      emuv_log(EMUV_LOG_INFO, "active: share %llu, limit %llu, headroom %llu, spill backend %s, stats %s",
               (unsigned long long)G.cfg.vram_share, (unsigned long long)G.cfg.limit,
               (unsigned long long)G.cfg.headroom, backends[G.cfg.spill_backend],
               G.stats.shared ? G.cfg.stats_path : "(per process)");
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

/* The calling thread is in relaxed capture mode (see placement.h for what placement does differently). */
static inline int capturing(void) { return tl_capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED; }

static void track(const struct emuv_alloc *a) {
  if (emuv_table_insert(G.table, a) != 0) emuv_log(EMUV_LOG_ERROR, "allocation table full (out of memory)");
}

/* Gives back what a tracked allocation held: budget bytes, or the visibility counters of the application's
 * own managed and pinned memory. */
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
  struct emuv_alloc a;
  CUresult r;
  if (dptr == NULL || bytesize == 0) {
    r = real.cuMemAlloc_v2(dptr, bytesize);
  } else {
    r = emuv_place_alloc(&P, dptr, bytesize, capturing(), &a);
    if (r == CUDA_SUCCESS) track(&a);
  }
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t w, size_t h, unsigned int esz) {
  if (!enter()) return FORWARD(cuMemAllocPitch_v2, dptr, pitch, w, h, esz);
  struct emuv_alloc a;
  CUresult r = emuv_place_pitch(&P, dptr, pitch, w, h, esz, &a);
  if (r == CUDA_SUCCESS) track(&a);
  leave();
  return r;
}

EXPORT CUresult CUDAAPI cuMemFree_v2(CUdeviceptr dptr) {
  if (!enter()) return FORWARD(cuMemFree_v2, dptr);
  struct emuv_alloc a;
  CUresult r = CUDA_SUCCESS;
  if (dptr != 0 && emuv_table_remove(G.table, dptr, &a)) {
    r = emuv_place_free(&P, &a);
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

/* Stream-ordered allocation. Never redirected while the stream is capturing (the allocation becomes a
 * graph node the driver places later): passed through untracked. */
static CUresult alloc_async(int ptsz, CUdeviceptr *dptr, size_t n, CUmemoryPool pool, CUstream s) {
  if (dptr == NULL || n == 0 || stream_capturing(s, ptsz)) {
    if (pool) return (ptsz ? real.cuMemAllocFromPoolAsync_ptsz : real.cuMemAllocFromPoolAsync)(dptr, n, pool, s);
    return (ptsz ? real.cuMemAllocAsync_ptsz : real.cuMemAllocAsync)(dptr, n, s);
  }
  int user_host = pool != NULL && emuv_table_get(G.pools, (uint64_t)(uintptr_t)pool, NULL);
  struct emuv_alloc a;
  CUresult r = emuv_place_async(&P, ptsz, dptr, n, pool, user_host, s, capturing(), &a);
  if (r == CUDA_SUCCESS) track(&a);
  return r;
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

/* cuMemCreate (expandable segments, NCCL, ggml): DEVICE handles are placed (placement.c); other
 * locations are the application's own choice and pass through. */
EXPORT CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle *handle, size_t n, const CUmemAllocationProp *prop,
                                    unsigned long long flags) {
  if (!enter()) return FORWARD(cuMemCreate, handle, n, prop, flags);
  CUresult r;
  if (handle == NULL || prop == NULL || n == 0 || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
    r = real.cuMemCreate(handle, n, prop, flags);
  } else {
    struct emuv_alloc a;
    r = emuv_place_handle(&P, handle, n, prop, flags, capturing(), &a);
    if (r == CUDA_SUCCESS) track(&a);
  }
  leave();
  return r;
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

EXPORT CUresult CUDAAPI cuArrayCreate_v2(CUarray *arr, const CUDA_ARRAY_DESCRIPTOR *d) {
  if (!enter()) return FORWARD(cuArrayCreate_v2, arr, d);
  struct emuv_alloc a;
  CUresult r;
  if (arr == NULL || d == NULL) {
    r = real.cuArrayCreate_v2(arr, d);
  } else {
    r = emuv_place_array(&P, arr, d, NULL, &a);
    if (r == CUDA_SUCCESS) track(&a);
  }
  leave();
  return r;
}
EXPORT CUresult CUDAAPI cuArray3DCreate_v2(CUarray *arr, const CUDA_ARRAY3D_DESCRIPTOR *d) {
  if (!enter()) return FORWARD(cuArray3DCreate_v2, arr, d);
  struct emuv_alloc a;
  CUresult r;
  if (arr == NULL || d == NULL) {
    r = real.cuArray3DCreate_v2(arr, d);
  } else {
    r = emuv_place_array(&P, arr, NULL, d, &a);
    if (r == CUDA_SUCCESS) track(&a);
  }
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
  if (emuv_table_get(G.table, d, &a) && emuv_kind_spilled(a.kind))
    r = CUDA_ERROR_NOT_SUPPORTED; /* spilled memory is not legacy-IPC capable */
  else r = real.cuIpcGetMemHandle(h, d);
  leave();
  return r;
}

static void drop_record(const struct emuv_alloc *a, void *arg) {
  (void)arg;
  emuv_place_forget(&P, a);
  release_record(a);
}

/* The context and everything in it is gone: drop the accounting and emuv's own pools. */
static void context_gone(void) {
  emuv_table_drain(G.table, drop_record, NULL);
  emuv_place_context_gone(&P);
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
  struct emuv_range rg;
  CUresult r;
  if (emuv_place_range_find(&P, d, &rg)) {
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
  struct emuv_range rg;
  CUresult r;
  if (data != NULL && emuv_place_range_find(&P, p, &rg)) {
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
  if (!emuv_place_has_ranges(&P) || !enter()) return FORWARD(cuPointerGetAttributes, n, attrs, data, p);
  struct emuv_range rg;
  CUresult r;
  if (attrs == NULL || data == NULL || !emuv_place_range_find(&P, p, &rg)) {
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
