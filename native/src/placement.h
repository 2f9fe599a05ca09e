/*
 * Placement: where an allocation goes (VRAM within the share; beyond it split VRAM|host, zero-copy pinned
 * or managed host memory by EMUV_SPILL_BACKEND; deny-once; capture; the card being full) and the driver
 * calls that put it there. The hooks (emuv_cuda.c) check arguments, guard re-entrancy, forward and keep
 * the allocation table; they call these functions for the decision and get back a record to track.
 *
 * The driver is injected: struct emuv_driver holds the entry points placement calls, filled from the real
 * driver by the shim and from a recording fake by tests/test_placement.c, so every decision and every
 * failure path can be checked without a driver. Budget reservations (budget.c) are made and committed
 * here; on any failure everything reserved is given back before returning.
 */
#ifndef EMUV_PLACEMENT_H
#define EMUV_PLACEMENT_H

#ifndef __CUDA_API_VERSION_INTERNAL
#error "define __CUDA_API_VERSION_INTERNAL before including cuda.h: the members below are the exports' own names"
#endif
#include <cuda.h>
#include <cudaTypedefs.h>
#include <pthread.h>

#include "core.h"

struct emuv_driver {
  PFN_cuMemAlloc_v3020 cuMemAlloc_v2;
  PFN_cuMemFree_v3020 cuMemFree_v2;
  PFN_cuMemAllocPitch_v3020 cuMemAllocPitch_v2;
  PFN_cuArrayCreate_v3020 cuArrayCreate_v2;
  PFN_cuArray3DCreate_v3020 cuArray3DCreate_v2;
  PFN_cuMemCreate_v10020 cuMemCreate;
  PFN_cuMemRelease_v10020 cuMemRelease;
  PFN_cuMemAddressReserve_v10020 cuMemAddressReserve;
  PFN_cuMemAddressFree_v10020 cuMemAddressFree;
  PFN_cuMemMap_v10020 cuMemMap;
  PFN_cuMemUnmap_v10020 cuMemUnmap;
  PFN_cuMemSetAccess_v10020 cuMemSetAccess;
  PFN_cuMemHostAlloc_v2020 cuMemHostAlloc;
  PFN_cuMemHostGetDevicePointer_v3020 cuMemHostGetDevicePointer_v2;
  PFN_cuMemFreeHost_v2000 cuMemFreeHost;
  PFN_cuMemAllocManaged_v6000 cuMemAllocManaged;
  PFN_cuMemAdvise_v8000 cuMemAdvise;       /* takes a CUdevice (CU_DEVICE_CPU for the host) */
  PFN_cuMemAdvise_v12020 cuMemAdvise_v2;   /* takes a CUmemLocation; drivers from 12.2; preferred when present */
  PFN_cuMemAllocAsync_v11020 cuMemAllocAsync;
  PFN_cuMemAllocAsync_v11020_ptsz cuMemAllocAsync_ptsz;
  PFN_cuMemAllocFromPoolAsync_v11020 cuMemAllocFromPoolAsync;
  PFN_cuMemAllocFromPoolAsync_v11020_ptsz cuMemAllocFromPoolAsync_ptsz;
  PFN_cuMemPoolCreate_v11020 cuMemPoolCreate;
  PFN_cuMemPoolSetAccess_v11020 cuMemPoolSetAccess;
  PFN_cuCtxGetDevice_v2000 cuCtxGetDevice;
  PFN_cuDeviceGetAttribute_v2000 cuDeviceGetAttribute;
};

/* An allocation whose interior pointers emuv answers for (split: several mappings; zero-copy: a device
 * alias of host memory): range queries resolve any pointer inside it to the whole allocation. */
struct emuv_range {
  uint64_t base, size;
};

struct emuv_place {
  /* injected (emuv_place_init leaves them alone) */
  struct emuv_driver drv;
  const struct emuv_config *cfg;
  struct emuv_budget *budget;
  /* Reclaims the counters of the container's dead processes; 1 when anything was reclaimed. Called on the
   * slow path only (a reservation fell short), at most every 50 ms. NULL: nothing to reclaim. */
  int (*reap)(void);

  /* state */
  pthread_mutex_t mu;   /* guards the host VMM probe and the host pool */
  int host_vmm;         /* -1 unknown, 0 none, CU_MEM_LOCATION_TYPE_HOST_NUMA or _HOST */
  int host_numa_id;     /* the NUMA node closest to the GPU (CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID), else 0 */
  CUmemoryPool host_pool;
  uint64_t last_deny_ns, last_reap_ns;
  int retry_auto;       /* EMUV_OOM_RETRY=auto resolved: -1 unknown, 1 yes (re-checked while unknown) */
  int managed_warned;
  pthread_rwlock_t range_lock;
  struct emuv_range *ranges; /* sorted by base */
  size_t range_count, range_cap;
};

/* Sets the state up (not the injected fields). */
EMUV_HIDDEN void emuv_place_init(struct emuv_place *P);
/* fork(): the lock is held across it so the child never inherits it mid-update; in the child the parent's
 * host pool and ranges are not the child's (the probe result still holds). */
EMUV_HIDDEN void emuv_place_lock(struct emuv_place *P);
EMUV_HIDDEN void emuv_place_unlock(struct emuv_place *P);
EMUV_HIDDEN void emuv_place_after_fork(struct emuv_place *P);

/* `capture` in every call below is 1 when the calling thread is in relaxed stream-capture mode (as set
 * through cuThreadExchangeStreamCaptureMode): cuMemAlloc and cuMemCreate requests are then neither split
 * nor spilled, and no request is denied (the caching allocator cannot free its cache while capturing).
 * Every function returns the CUresult for the application; on success *rec describes the allocation
 * (already committed to the budget; the caller tracks it), on failure nothing stays reserved. */

/* Only auto splits one allocation between VRAM and RAM (and never while capturing): pinned and managed
 * keep a request whole. */
static inline int emuv_place_may_split(const struct emuv_place *P, int capture) {
  return P->cfg->spill && !capture && P->cfg->spill_backend == EMUV_SPILL_AUTO;
}

/* emuv_place_alloc's slow path, entered where the fast path stopped (stage: nothing reserved; the total
 * and v bytes of VRAM reserved, v < n; the total and all n reserved and the driver's cuMemAlloc answered r). */
enum { EMUV_PLACE_NO_TOTAL, EMUV_PLACE_SHORT, EMUV_PLACE_DRIVER_FAILED };
EMUV_HIDDEN CUresult emuv_place_alloc_rest(struct emuv_place *P, CUdeviceptr *dptr, uint64_t n, int capture,
                                           int stage, uint64_t v, CUresult r, struct emuv_alloc *rec);

/* cuMemAlloc_v2, n > 0. The all-VRAM case (the total and the share have room, the driver allocates) is
 * here, inline in the hook, so the fast path costs no call more than before placement had its own file;
 * everything else is emuv_place_alloc_rest. */
static inline CUresult emuv_place_alloc(struct emuv_place *P, CUdeviceptr *dptr, uint64_t n, int capture,
                                        struct emuv_alloc *rec) {
  struct emuv_budget *b = P->budget;
  if (__builtin_expect(!emuv_reserve_total(b, n), 0))
    return emuv_place_alloc_rest(P, dptr, n, capture, EMUV_PLACE_NO_TOTAL, 0, CUDA_SUCCESS, rec);
  uint64_t v = emuv_reserve_vram(b, n, emuv_place_may_split(P, capture));
  if (__builtin_expect(v != n, 0))
    return emuv_place_alloc_rest(P, dptr, n, capture, EMUV_PLACE_SHORT, v, CUDA_SUCCESS, rec);
  CUresult r = P->drv.cuMemAlloc_v2(dptr, n);
  if (__builtin_expect(r != CUDA_SUCCESS, 0))
    return emuv_place_alloc_rest(P, dptr, n, capture, EMUV_PLACE_DRIVER_FAILED, v, r, rec);
  *rec = (struct emuv_alloc){.key = *dptr, .size = n, .vram = n, .kind = EMUV_KIND_VRAM};
  emuv_commit(b, n, 0);
  return CUDA_SUCCESS;
}
/* cuMemAllocPitch_v2: made by the driver first (the pitch decides the size), kept only within the share. */
EMUV_HIDDEN CUresult emuv_place_pitch(struct emuv_place *P, CUdeviceptr *dptr, size_t *pitch, size_t w, size_t h,
                                      unsigned esz, struct emuv_alloc *rec);
/* cuArrayCreate_v2 (d3 == NULL) or cuArray3DCreate_v2 (d2 == NULL): VRAM only, against the full share. */
EMUV_HIDDEN CUresult emuv_place_array(struct emuv_place *P, CUarray *arr, const CUDA_ARRAY_DESCRIPTOR *d2,
                                      const CUDA_ARRAY3D_DESCRIPTOR *d3, struct emuv_alloc *rec);
/* cuMemCreate of a DEVICE-located handle, n > 0. */
EMUV_HIDDEN CUresult emuv_place_handle(struct emuv_place *P, CUmemGenericAllocationHandle *h, size_t n,
                                       const CUmemAllocationProp *prop, unsigned long long flags, int capture,
                                       struct emuv_alloc *rec);
/* cuMemAllocAsync (pool NULL) / cuMemAllocFromPoolAsync, _ptsz when ptsz, on a stream that is not
 * capturing, n > 0. user_host_pool: `pool` is one the application created with a host location. */
EMUV_HIDDEN CUresult emuv_place_async(struct emuv_place *P, int ptsz, CUdeviceptr *dptr, size_t n, CUmemoryPool pool,
                                      int user_host_pool, CUstream s, int capture, struct emuv_alloc *rec);

/* Frees what cuMemFree_v2 frees for a record emuv_place_alloc or emuv_place_pitch made (or any other
 * record keyed by a device pointer: plain cuMemFree). The budget is the caller's to release (emuv_release)
 * on success; on failure the allocation still exists. VRAM records inline (the fast path), the rest in
 * emuv_place_free_rest. */
EMUV_HIDDEN CUresult emuv_place_free_rest(struct emuv_place *P, const struct emuv_alloc *a);
static inline CUresult emuv_place_free(struct emuv_place *P, const struct emuv_alloc *a) {
  if (__builtin_expect(a->kind == EMUV_KIND_VRAM, 1)) return P->drv.cuMemFree_v2(a->key);
  return emuv_place_free_rest(P, a);
}
/* The driver freed the allocation itself (context reset): forget its range. */
EMUV_HIDDEN void emuv_place_forget(struct emuv_place *P, const struct emuv_alloc *a);
/* The context is gone: so is emuv's host pool. */
EMUV_HIDDEN void emuv_place_context_gone(struct emuv_place *P);

/* The whole allocation around p when it is one emuv answers range queries for. */
EMUV_HIDDEN int emuv_place_range_find(struct emuv_place *P, uint64_t p, struct emuv_range *out);
static inline int emuv_place_has_ranges(struct emuv_place *P) {
  return __atomic_load_n(&P->range_count, __ATOMIC_ACQUIRE) != 0;
}

/* Kinds whose memory is (at least partly) host memory emuv chose: not legacy-IPC capable. */
static inline int emuv_kind_spilled(uint32_t kind) {
  return kind == EMUV_KIND_SPLIT || kind == EMUV_KIND_ZEROCOPY || kind == EMUV_KIND_ASYNC_HOST ||
         kind == EMUV_KIND_MANAGED_SPILL;
}

#endif
