/* Placement policy v1 and the spill backends (docs/interposer.md §2). See placement.h for the contract
 * with the hooks; every budget reservation made here is undone on every failure path. */
#define __CUDA_API_VERSION_INTERNAL 1
#include "placement.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Deny-once: the deadline of this thread's served retry (slow path only). */
static __thread uint64_t tl_retry_deadline;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void emuv_place_init(struct emuv_place *P) {
  pthread_mutex_init(&P->mu, NULL);
  pthread_rwlock_init(&P->range_lock, NULL);
  P->host_vmm = -1;
  P->host_numa_id = 0;
  P->host_pool = NULL;
  P->last_deny_ns = P->last_reap_ns = 0;
  P->retry_auto = -1;
  P->managed_warned = 0;
  P->ranges = NULL;
  P->range_count = P->range_cap = 0;
}

void emuv_place_lock(struct emuv_place *P) { pthread_mutex_lock(&P->mu); }
void emuv_place_unlock(struct emuv_place *P) { pthread_mutex_unlock(&P->mu); }
void emuv_place_after_fork(struct emuv_place *P) {
  pthread_mutex_init(&P->mu, NULL);
  pthread_rwlock_init(&P->range_lock, NULL);
  P->range_count = 0;
  P->host_pool = NULL;
}

/* ---- ranges: allocations whose interior pointers emuv resolves --------------------------------------- */

/* Sorted by base; cold path, and only consulted while at least one such allocation exists. */
static void range_add(struct emuv_place *P, uint64_t base, uint64_t size) {
  pthread_rwlock_wrlock(&P->range_lock);
  if (P->range_count == P->range_cap) {
    size_t ncap = P->range_cap ? P->range_cap * 2 : 64;
    struct emuv_range *n = realloc(P->ranges, ncap * sizeof *n);
    if (n == NULL) { /* the allocation still works; only interior-pointer queries fall to the driver */
      pthread_rwlock_unlock(&P->range_lock);
      return;
    }
    P->ranges = n;
    P->range_cap = ncap;
  }
  size_t i = P->range_count;
  while (i > 0 && P->ranges[i - 1].base > base) {
    P->ranges[i] = P->ranges[i - 1];
    i--;
  }
  P->ranges[i] = (struct emuv_range){base, size};
  __atomic_store_n(&P->range_count, P->range_count + 1, __ATOMIC_RELEASE);
  pthread_rwlock_unlock(&P->range_lock);
}

static void range_del(struct emuv_place *P, uint64_t base) {
  pthread_rwlock_wrlock(&P->range_lock);
  for (size_t i = 0; i < P->range_count; i++)
    if (P->ranges[i].base == base) {
      memmove(&P->ranges[i], &P->ranges[i + 1], (P->range_count - i - 1) * sizeof *P->ranges);
      __atomic_store_n(&P->range_count, P->range_count - 1, __ATOMIC_RELEASE);
      break;
    }
  pthread_rwlock_unlock(&P->range_lock);
}

int emuv_place_range_find(struct emuv_place *P, uint64_t p, struct emuv_range *out) {
  if (!emuv_place_has_ranges(P)) return 0;
  int found = 0;
  pthread_rwlock_rdlock(&P->range_lock);
  size_t lo = 0, hi = P->range_count;
  while (lo < hi) { /* last range with base <= p */
    size_t mid = (lo + hi) / 2;
    if (P->ranges[mid].base <= p) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && p < P->ranges[lo - 1].base + P->ranges[lo - 1].size) {
    *out = P->ranges[lo - 1];
    found = 1;
  }
  pthread_rwlock_unlock(&P->range_lock);
  return found;
}

static int has_range(uint32_t kind) { return kind == EMUV_KIND_SPLIT || kind == EMUV_KIND_ZEROCOPY; }

void emuv_place_forget(struct emuv_place *P, const struct emuv_alloc *a) {
  if (has_range(a->kind)) range_del(P, a->key);
}

void emuv_place_context_gone(struct emuv_place *P) {
  pthread_mutex_lock(&P->mu);
  P->host_pool = NULL;
  pthread_mutex_unlock(&P->mu);
}

/* ---- policy helpers -------------------------------------------------------------------------------- */

static int retry_enabled(struct emuv_place *P) {
  if (P->cfg->oom_retry == EMUV_RETRY_ON) return 1;
  if (P->cfg->oom_retry == EMUV_RETRY_OFF) return 0;
  if (__atomic_load_n(&P->retry_auto, __ATOMIC_RELAXED) == 1) return 1;
  /* auto: PyTorch's caching allocator is the one that frees its cache on OUT_OF_MEMORY; it may be loaded
   * after the first allocation, so "no" is asked again next time */
  void *c10 = dlopen("libc10_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
  if (c10 != NULL) {
    dlclose(c10);
    __atomic_store_n(&P->retry_auto, 1, __ATOMIC_RELAXED);
    return 1;
  }
  return 0;
}

/* Deny-once: the first request of a thread that would spill gets OUT_OF_MEMORY so a caching allocator
 * (PyTorch) frees its cache and retries; the retry within 2 s is served. At most one denial per 5 s per
 * process, and never while the thread is in relaxed capture mode (PyTorch cannot free during capture). */
static int should_deny(struct emuv_place *P, int capture) {
  if (capture || !retry_enabled(P)) return 0;
  uint64_t now = mono_ns();
  if (tl_retry_deadline != 0 && now <= tl_retry_deadline) {
    tl_retry_deadline = 0;
    return 0;
  }
  uint64_t last = __atomic_load_n(&P->last_deny_ns, __ATOMIC_RELAXED);
  if (last != 0 && now - last < 5000000000ull) return 0;
  if (!__atomic_compare_exchange_n(&P->last_deny_ns, &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 0;
  tl_retry_deadline = now + 2000000000ull;
  emuv_count_event(P->budget, EMUV_EV_DENIED);
  return 1;
}

/* Slow path only (a reservation fell short): reclaim the counters of dead processes of the container
 * so a long-running process does not wait for the next process start or the agent. At most every 50 ms. */
static int reap_now(struct emuv_place *P) {
  if (P->reap == NULL) return 0;
  uint64_t now = mono_ns(), prev = __atomic_load_n(&P->last_reap_ns, __ATOMIC_RELAXED);
  if (prev != 0 && now - prev < 50000000ull) return 0;
  if (!__atomic_compare_exchange_n(&P->last_reap_ns, &prev, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 0;
  return P->reap();
}

static CUdevice current_device(struct emuv_place *P) {
  CUdevice d = 0;
  if (P->drv.cuCtxGetDevice == NULL || P->drv.cuCtxGetDevice(&d) != CUDA_SUCCESS) d = 0;
  return d;
}

/* Which host location VMM can use: attributes first, then a one-granule probe (as NCCL does). */
static int host_vmm_type(struct emuv_place *P, CUdevice dev) {
  int t = __atomic_load_n(&P->host_vmm, __ATOMIC_ACQUIRE);
  if (t >= 0) return t;
  const struct emuv_driver *D = &P->drv;
  pthread_mutex_lock(&P->mu);
  t = P->host_vmm;
  if (t < 0) {
    t = 0;
    int numa = -1;
    if (D->cuDeviceGetAttribute == NULL ||
        D->cuDeviceGetAttribute(&numa, CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, dev) != CUDA_SUCCESS || numa < 0)
      numa = 0;
    P->host_numa_id = numa;
    static const struct {
      CUdevice_attribute attr;
      CUmemLocationType loc;
    } cand[] = {{CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, CU_MEM_LOCATION_TYPE_HOST_NUMA},
                {CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, CU_MEM_LOCATION_TYPE_HOST}};
    for (unsigned i = 0; i < 2 && t == 0; i++) {
      int v = 0;
      CUresult r = D->cuDeviceGetAttribute ? D->cuDeviceGetAttribute(&v, cand[i].attr, dev) : CUDA_ERROR_NOT_FOUND;
      if (r == CUDA_SUCCESS && v == 0) continue; /* the driver says no */
      CUmemAllocationProp p = {0};
      p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
      p.location.type = cand[i].loc;
      p.location.id = cand[i].loc == CU_MEM_LOCATION_TYPE_HOST_NUMA ? P->host_numa_id : 0;
      CUmemGenericAllocationHandle h;
      if (D->cuMemCreate != NULL && D->cuMemCreate(&h, EMUV_SPLIT_GRANULE, &p, 0) == CUDA_SUCCESS) {
        D->cuMemRelease(h);
        t = (int)cand[i].loc;
      }
    }
    if (t == 0) emuv_log(EMUV_LOG_WARN, "host VMM unavailable; spilling whole allocations to zero-copy pinned memory");
    __atomic_store_n(&P->host_vmm, t, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&P->mu);
  return t;
}

static uint64_t round_up(uint64_t v, uint64_t g) { return (v + g - 1) / g * g; }

/* ---- the spill backends ----------------------------------------------------------------------------- */

/* Zero-copy: the whole allocation in pinned host memory the device reads over the bus. */
static CUresult zerocopy_alloc(struct emuv_place *P, CUdeviceptr *dptr, uint64_t n, struct emuv_alloc *rec) {
  const struct emuv_driver *D = &P->drv;
  if (D->cuMemHostAlloc == NULL || D->cuMemHostGetDevicePointer_v2 == NULL) return CUDA_ERROR_NOT_SUPPORTED;
  void *hp = NULL;
  CUresult r = D->cuMemHostAlloc(&hp, n, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
  if (r != CUDA_SUCCESS) return r;
  CUdeviceptr d = 0;
  r = D->cuMemHostGetDevicePointer_v2(&d, hp, 0);
  if (r != CUDA_SUCCESS) {
    D->cuMemFreeHost(hp);
    return r;
  }
  *rec = (struct emuv_alloc){.key = d, .size = n, .host = n, .h_host = (uint64_t)(uintptr_t)hp,
                             .kind = EMUV_KIND_ZEROCOPY};
  *dptr = d;
  return CUDA_SUCCESS;
}

/* Managed memory kept in host RAM: preferred location the CPU, mapped for the device so its accesses are
 * served over the bus instead of migrating pages into VRAM (which would fill the card behind the
 * share's back). Without both pieces of advice the allocation is not safe to hand out: it is freed. */
static CUresult advise_host(struct emuv_place *P, CUdeviceptr d, uint64_t n, CUdevice dev) {
  const struct emuv_driver *D = &P->drv;
  CUresult r;
  if (D->cuMemAdvise_v2 != NULL) {
    CUmemLocation cpu = {.type = CU_MEM_LOCATION_TYPE_HOST, .id = 0};
    CUmemLocation gpu = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev};
    r = D->cuMemAdvise_v2(d, n, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, cpu);
    if (r == CUDA_SUCCESS) r = D->cuMemAdvise_v2(d, n, CU_MEM_ADVISE_SET_ACCESSED_BY, gpu);
  } else if (D->cuMemAdvise != NULL) { /* drivers before 12.2 */
    r = D->cuMemAdvise(d, n, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, CU_DEVICE_CPU);
    if (r == CUDA_SUCCESS) r = D->cuMemAdvise(d, n, CU_MEM_ADVISE_SET_ACCESSED_BY, dev);
  } else {
    r = CUDA_ERROR_NOT_SUPPORTED;
  }
  if (r != CUDA_SUCCESS && !__atomic_exchange_n(&P->managed_warned, 1, __ATOMIC_RELAXED))
    emuv_log(EMUV_LOG_WARN, "%s=managed: cuMemAdvise failed (error %d); managed spills are refused", EMUV_ENV_SPILL_BACKEND,
             (int)r);
  return r;
}

static CUresult managed_alloc(struct emuv_place *P, CUdevice dev, CUdeviceptr *dptr, uint64_t n, struct emuv_alloc *rec) {
  const struct emuv_driver *D = &P->drv;
  if (D->cuMemAllocManaged == NULL) return CUDA_ERROR_NOT_SUPPORTED;
  CUdeviceptr d = 0;
  CUresult r = D->cuMemAllocManaged(&d, n, CU_MEM_ATTACH_GLOBAL);
  if (r != CUDA_SUCCESS) return r;
  r = advise_host(P, d, n, dev);
  if (r != CUDA_SUCCESS) {
    D->cuMemFree_v2(d);
    return r;
  }
  /* one driver allocation: the driver itself answers range queries on interior pointers */
  *rec = (struct emuv_alloc){.key = d, .size = n, .host = n, .kind = EMUV_KIND_MANAGED_SPILL};
  *dptr = d;
  return CUDA_SUCCESS;
}

/* Auto: `n` bytes as one contiguous device range: `*vram` bytes (a 2 MiB multiple, may be 0) from a device
 * handle, the rest from a host handle, both mapped into one VA reservation. Zero-copy when host VMM is
 * unavailable. A device handle failing with OUT_OF_MEMORY (the card is full) is retried with everything
 * in RAM; *vram is then 0 and its reservation given back. */
static CUresult split_alloc(struct emuv_place *P, CUdevice dev, CUdeviceptr *dptr, uint64_t n, uint64_t *vram,
                            struct emuv_alloc *rec) {
  const struct emuv_driver *D = &P->drv;
  int loc = host_vmm_type(P, dev);
  if (loc == 0) {
    if (*vram) emuv_unreserve_vram(P->budget, *vram);
    *vram = 0;
    return zerocopy_alloc(P, dptr, n, rec);
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    uint64_t va_size = round_up(n, EMUV_SPLIT_GRANULE);
    uint64_t v = *vram, hsz = va_size - v;
    CUdeviceptr va = 0;
    CUmemGenericAllocationHandle hd = 0, hh = 0;
    int mapped_d = 0, mapped_h = 0;
    CUresult r = D->cuMemAddressReserve ? D->cuMemAddressReserve(&va, va_size, EMUV_SPLIT_GRANULE, 0, 0)
                                        : CUDA_ERROR_NOT_SUPPORTED;
    if (r != CUDA_SUCCESS) return r;
    CUmemAllocationProp p = {0};
    p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    if (v) {
      p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      p.location.id = dev;
      r = D->cuMemCreate(&hd, v, &p, 0);
      if (r == CUDA_SUCCESS) r = D->cuMemMap(va, v, 0, hd, 0);
      mapped_d = r == CUDA_SUCCESS;
    }
    if (r == CUDA_SUCCESS && hsz) {
      p.location.type = (CUmemLocationType)loc;
      p.location.id = loc == CU_MEM_LOCATION_TYPE_HOST_NUMA ? P->host_numa_id : 0;
      r = D->cuMemCreate(&hh, hsz, &p, 0);
      if (r == CUDA_SUCCESS) r = D->cuMemMap(va + v, hsz, 0, hh, 0);
      mapped_h = r == CUDA_SUCCESS;
    }
    if (r == CUDA_SUCCESS) {
      CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev},
                             .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
      r = D->cuMemSetAccess(va, va_size, &acc, 1);
    }
    if (r == CUDA_SUCCESS) {
      *rec = (struct emuv_alloc){.key = va, .size = n, .vram = v, .host = n - v, .h_dev = hd, .h_host = hh,
                                 .va_size = va_size, .kind = EMUV_KIND_SPLIT};
      *dptr = va;
      return CUDA_SUCCESS;
    }
    if (mapped_h) D->cuMemUnmap(va + v, hsz);
    if (mapped_d) D->cuMemUnmap(va, v);
    if (hh) D->cuMemRelease(hh);
    if (hd) D->cuMemRelease(hd);
    D->cuMemAddressFree(va, va_size);
    if (v == 0 || r != CUDA_ERROR_OUT_OF_MEMORY) return r;
    /* the card itself is full: retry with everything in RAM */
    emuv_unreserve_vram(P->budget, v);
    *vram = 0;
  }
  return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Places the part of the request beyond VRAM by the spill backend. pinned and managed never split (the
 * caller reserved all or nothing), so *vram is 0 for them. */
static CUresult spill_alloc(struct emuv_place *P, CUdeviceptr *dptr, uint64_t n, uint64_t *vram, struct emuv_alloc *rec) {
  CUdevice dev = current_device(P);
  memset(rec, 0, sizeof *rec);
  switch (P->cfg->spill_backend) {
    case EMUV_SPILL_PINNED: return zerocopy_alloc(P, dptr, n, rec);
    case EMUV_SPILL_MANAGED: return managed_alloc(P, dev, dptr, n, rec);
    default: return split_alloc(P, dev, dptr, n, vram, rec);
  }
}

static void free_split(struct emuv_place *P, const struct emuv_alloc *a) {
  const struct emuv_driver *D = &P->drv;
  if (a->h_dev) D->cuMemUnmap(a->key, a->vram);
  if (a->h_host) D->cuMemUnmap(a->key + a->vram, a->va_size - a->vram);
  if (a->h_dev) D->cuMemRelease(a->h_dev);
  if (a->h_host) D->cuMemRelease(a->h_host);
  D->cuMemAddressFree(a->key, a->va_size);
  range_del(P, a->key);
}

CUresult emuv_place_free_rest(struct emuv_place *P, const struct emuv_alloc *a) {
  switch (a->kind) {
    case EMUV_KIND_SPLIT: free_split(P, a); return CUDA_SUCCESS;
    case EMUV_KIND_ZEROCOPY: {
      CUresult r = P->drv.cuMemFreeHost((void *)(uintptr_t)a->h_host);
      if (r == CUDA_SUCCESS) range_del(P, a->key);
      return r;
    }
    default: return P->drv.cuMemFree_v2(a->key); /* managed spill, and what cuMemFree frees anyway */
  }
}

/* Gives back the total reserved for a request that is refused; counts an OOM event when asked. */
static CUresult refuse(struct emuv_budget *b, uint64_t n, int count_oom) {
  emuv_unreserve_total(b, n);
  if (count_oom) emuv_count_event(b, EMUV_EV_OOM);
  return CUDA_ERROR_OUT_OF_MEMORY;
}

/* Books a request placed whole in host memory (its total was reserved) and returns its record. */
static CUresult spilled_whole(struct emuv_budget *b, struct emuv_alloc *rec, struct emuv_alloc a) {
  *rec = a;
  emuv_commit(b, 0, a.size);
  emuv_count_event(b, EMUV_EV_SPILL);
  return CUDA_SUCCESS;
}

/* ---- cuMemAlloc_v2 ---------------------------------------------------------------------------------- */

/* VRAM within the share; beyond it (auto) split or zero-copy, (pinned) zero-copy, (managed) managed
 * memory; the virtual total never exceeded. Continues emuv_place_alloc (placement.h) where its fast path
 * stopped: `stage` says what is reserved (nothing; the total and `v` bytes of VRAM; the total and all of
 * it, the driver having answered `r`). */
CUresult emuv_place_alloc_rest(struct emuv_place *P, CUdeviceptr *dptr, uint64_t n, int capture, int stage, uint64_t v,
                               CUresult r, struct emuv_alloc *rec) {
  struct emuv_budget *b = P->budget;
  const struct emuv_config *cfg = P->cfg;
  int split = emuv_place_may_split(P, capture);
  if (stage == EMUV_PLACE_NO_TOTAL) {
    if (!(reap_now(P) && emuv_reserve_total(b, n))) {
      emuv_count_event(b, EMUV_EV_OOM);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    v = emuv_reserve_vram(b, n, split);
  }
  if (stage != EMUV_PLACE_DRIVER_FAILED) {
    if (v < n && reap_now(P)) { /* dead processes may be holding VRAM: retry once */
      if (v) emuv_unreserve_vram(b, v);
      v = emuv_reserve_vram(b, n, split);
    }
    if (v == n) {
      r = P->drv.cuMemAlloc_v2(dptr, n);
      if (r == CUDA_SUCCESS) {
        *rec = (struct emuv_alloc){.key = *dptr, .size = n, .vram = n, .kind = EMUV_KIND_VRAM};
        emuv_commit(b, n, 0);
        return r;
      }
    }
  }
  if (v == n) { /* the driver refused what the share allows */
    emuv_unreserve_vram(b, v);
    v = 0;
    if (r != CUDA_ERROR_OUT_OF_MEMORY || !cfg->spill || capture) {
      emuv_unreserve_total(b, n);
      return r;
    }
    /* the physical card is full (other tenants, driver overhead): spill the whole request */
  }
  if (!cfg->spill || capture || should_deny(P, capture)) {
    if (v) emuv_unreserve_vram(b, v);
    return refuse(b, n, !cfg->spill);
  }
  r = spill_alloc(P, dptr, n, &v, rec);
  if (r != CUDA_SUCCESS) {
    if (v) emuv_unreserve_vram(b, v);
    return refuse(b, n, 1);
  }
  if (has_range(rec->kind)) range_add(P, rec->key, rec->size);
  emuv_commit(b, v, n - v);
  emuv_count_event(b, EMUV_EV_SPILL);
  return CUDA_SUCCESS;
}

/* ---- VRAM-only memory ------------------------------------------------------------------------------- */

CUresult emuv_place_pitch(struct emuv_place *P, CUdeviceptr *dptr, size_t *pitch, size_t w, size_t h, unsigned esz,
                          struct emuv_alloc *rec) {
  struct emuv_budget *b = P->budget;
  CUresult r = P->drv.cuMemAllocPitch_v2(dptr, pitch, w, h, esz);
  if (r != CUDA_SUCCESS) return r;
  uint64_t n = (uint64_t)*pitch * h;
  if (!emuv_reserve_total(b, n)) {
    P->drv.cuMemFree_v2(*dptr);
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (emuv_reserve_vram(b, n, 0) != n) { /* pitched memory is never split or spilled */
    P->drv.cuMemFree_v2(*dptr);
    emuv_unreserve_total(b, n);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *rec = (struct emuv_alloc){.key = *dptr, .size = n, .vram = n, .kind = EMUV_KIND_VRAM};
  emuv_commit(b, n, 0);
  return CUDA_SUCCESS;
}

/* Arrays are charged against the full share from a size estimate and live in VRAM only: no spill. */
CUresult emuv_place_array(struct emuv_place *P, CUarray *arr, const CUDA_ARRAY_DESCRIPTOR *d2,
                          const CUDA_ARRAY3D_DESCRIPTOR *d3, struct emuv_alloc *rec) {
  struct emuv_budget *b = P->budget;
  uint64_t n = d2 ? emuv_array_bytes(d2->Width, d2->Height, 1, d2->Format, d2->NumChannels)
                  : emuv_array_bytes(d3->Width, d3->Height, d3->Depth, d3->Format, d3->NumChannels);
  if (!emuv_reserve_total(b, n)) {
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (emuv_reserve_vram(b, n, EMUV_RESERVE_FULL) != n) return refuse(b, n, 1);
  CUresult r = d2 ? P->drv.cuArrayCreate_v2(arr, d2) : P->drv.cuArray3DCreate_v2(arr, d3);
  if (r != CUDA_SUCCESS) {
    emuv_unreserve_vram(b, n);
    emuv_unreserve_total(b, n);
    return r;
  }
  *rec = (struct emuv_alloc){.key = (uint64_t)(uintptr_t)*arr, .size = n, .vram = n, .kind = EMUV_KIND_ARRAY};
  emuv_commit(b, n, 0);
  return CUDA_SUCCESS;
}

/* The end of an all-VRAM attempt of `n` bytes whose VRAM and total were reserved: on success commits it;
 * on failure gives the VRAM back, and the total too unless the card was merely full and spill is allowed
 * (then the caller goes on to spill). Returns 1 when the caller is done and returns r. */
static int vram_attempt_settled(struct emuv_budget *b, const struct emuv_config *cfg, uint64_t n, CUresult r) {
  if (r == CUDA_SUCCESS) {
    emuv_commit(b, n, 0);
    return 1;
  }
  emuv_unreserve_vram(b, n);
  if (r == CUDA_ERROR_OUT_OF_MEMORY && cfg->spill) return 0;
  emuv_unreserve_total(b, n);
  return 1;
}

/* ---- cuMemCreate ------------------------------------------------------------------------------------ */
/* A DEVICE handle stays in VRAM while the share allows (handles of at least the large threshold leave the
 * headroom free); beyond it the handle is created in host memory instead (HOST_NUMA keeps the requested
 * shareable handle types; HOST must drop them). A VMM handle can only be VMM memory, so this is the same
 * under every spill backend (a host handle is pinned host memory); without host VMM: OUT_OF_MEMORY. */
CUresult emuv_place_handle(struct emuv_place *P, CUmemGenericAllocationHandle *handle, size_t n,
                           const CUmemAllocationProp *prop, unsigned long long flags, int capture,
                           struct emuv_alloc *rec) {
  const struct emuv_driver *D = &P->drv;
  struct emuv_budget *b = P->budget;
  const struct emuv_config *cfg = P->cfg;
  CUresult r;
  if (!emuv_reserve_total(b, n)) {
    emuv_count_event(b, EMUV_EV_OOM);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  uint64_t v = emuv_reserve_vram(b, n, 0);
  if (v == n) {
    r = D->cuMemCreate(handle, n, prop, flags);
    if (r == CUDA_SUCCESS) *rec = (struct emuv_alloc){.key = *handle, .size = n, .vram = n, .kind = EMUV_KIND_HANDLE};
    if (vram_attempt_settled(b, cfg, n, r)) return r;
  }
  if (!cfg->spill || capture || should_deny(P, capture) || host_vmm_type(P, prop->location.id) == 0) {
    return refuse(b, n, !cfg->spill);
  }
  CUmemAllocationProp hp = *prop;
  hp.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
  hp.location.id = P->host_numa_id;
  r = D->cuMemCreate(handle, n, &hp, flags);
  if (r != CUDA_SUCCESS && r != CUDA_ERROR_OUT_OF_MEMORY) {
    hp.location.type = CU_MEM_LOCATION_TYPE_HOST;
    hp.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
    r = D->cuMemCreate(handle, n, &hp, flags);
  }
  if (r != CUDA_SUCCESS) return refuse(b, n, 1);
  return spilled_whole(b, rec, (struct emuv_alloc){.key = *handle, .size = n, .host = n, .kind = EMUV_KIND_HANDLE});
}

/* ---- stream-ordered allocation ---------------------------------------------------------------------- */

/* emuv's own host pool (HOST_NUMA, else HOST location; device access RW), created on first use. Pool
 * memory is pinned host memory, so this serves every spill backend. */
static CUresult host_pool(struct emuv_place *P, CUmemoryPool *out) {
  const struct emuv_driver *D = &P->drv;
  CUdevice dev = current_device(P);
  host_vmm_type(P, dev); /* resolves host_numa_id; takes the lock itself, so before locking */
  pthread_mutex_lock(&P->mu);
  CUresult r = CUDA_SUCCESS;
  if (P->host_pool == NULL) {
    CUmemPoolProps pp = {0};
    pp.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    pp.handleTypes = CU_MEM_HANDLE_TYPE_NONE;
    pp.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
    pp.location.id = P->host_numa_id;
    CUmemoryPool p = NULL;
    r = D->cuMemPoolCreate ? D->cuMemPoolCreate(&p, &pp) : CUDA_ERROR_NOT_SUPPORTED;
    if (r != CUDA_SUCCESS && D->cuMemPoolCreate) {
      pp.location.type = CU_MEM_LOCATION_TYPE_HOST;
      r = D->cuMemPoolCreate(&p, &pp);
    }
    if (r == CUDA_SUCCESS) {
      CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev},
                             .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
      r = D->cuMemPoolSetAccess ? D->cuMemPoolSetAccess(p, &acc, 1) : CUDA_ERROR_NOT_SUPPORTED;
      if (r == CUDA_SUCCESS) P->host_pool = p;
    }
  }
  *out = P->host_pool;
  pthread_mutex_unlock(&P->mu);
  return r;
}

/* VRAM within the share, else emuv's host pool. The caller's own host-located pools are host memory by
 * request, charged against the total only. */
CUresult emuv_place_async(struct emuv_place *P, int ptsz, CUdeviceptr *dptr, size_t n, CUmemoryPool pool,
                          int user_host_pool, CUstream s, int capture, struct emuv_alloc *rec) {
  PFN_cuMemAllocAsync_v11020 plain = ptsz ? P->drv.cuMemAllocAsync_ptsz : P->drv.cuMemAllocAsync;
  PFN_cuMemAllocFromPoolAsync_v11020 frompool = ptsz ? P->drv.cuMemAllocFromPoolAsync_ptsz : P->drv.cuMemAllocFromPoolAsync;
  struct emuv_budget *b = P->budget;
  const struct emuv_config *cfg = P->cfg;
  if (user_host_pool) {
    if (!emuv_reserve_total(b, n)) {
      emuv_count_event(b, EMUV_EV_OOM);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CUresult r = frompool(dptr, n, pool, s);
    if (r != CUDA_SUCCESS) {
      emuv_unreserve_total(b, n);
      return r;
    }
    *rec = (struct emuv_alloc){.key = *dptr, .size = n, .host = n, .kind = EMUV_KIND_ASYNC_HOST};
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
    if (r == CUDA_SUCCESS) *rec = (struct emuv_alloc){.key = *dptr, .size = n, .vram = n, .kind = EMUV_KIND_ASYNC_VRAM};
    if (vram_attempt_settled(b, cfg, n, r)) return r;
  }
  CUmemoryPool hp = NULL;
  if (!cfg->spill || should_deny(P, capture) || host_pool(P, &hp) != CUDA_SUCCESS) {
    return refuse(b, n, !cfg->spill);
  }
  CUresult r = frompool(dptr, n, hp, s);
  if (r != CUDA_SUCCESS) return refuse(b, n, 1);
  return spilled_whole(b, rec, (struct emuv_alloc){.key = *dptr, .size = n, .host = n, .kind = EMUV_KIND_ASYNC_HOST});
}
