/* Placement (src/placement.c) on its own: linked with the core, no shim, no driver. The driver is a
 * recording fake passed in struct emuv_driver, so each decision is checked by the calls it makes (what,
 * where, how large) and each failure path by failing one call at a time: the result, the budget counters
 * (container totals and the slot's held_* back where they were) and the fake's live objects (everything
 * created is released again). */
#include <stdarg.h>
#include "t.h"
#include "core.h"
#include "placement.h"

/* ---- the fake driver -------------------------------------------------------------------------------- */

static struct {
  char log[16384];        /* "name(args) " per call, in order */
  const char *fail_name;  /* the fail_nth-th call of this entry point fails with fail_err */
  int fail_nth, calls_of_fail;
  CUresult fail_err;
  int card_full;          /* DEVICE memory (cuMemAlloc, DEVICE handles, async) is out of memory */
  int host_numa, host_plain; /* host VMM locations the driver supports */
  int numa_id;
  uint64_t next_addr;
  /* live objects: everything created and not yet released */
  int reservations, handles, maps, host_allocs, managed, device, pools;
} F;

static void fake_reset(void) {
  memset(&F, 0, sizeof F);
  F.host_numa = F.host_plain = 1;
  F.numa_id = 1;
  F.next_addr = 0x7f0000000000ull;
}
static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
  size_t n = strlen(F.log);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(F.log + n, sizeof F.log - n, fmt, ap);
  va_end(ap);
  n = strlen(F.log);
  if (n + 1 < sizeof F.log) F.log[n] = ' ', F.log[n + 1] = '\0';
}
static CUresult injected(const char *name) {
  if (F.fail_name == NULL || strcmp(name, F.fail_name) != 0) return CUDA_SUCCESS;
  return ++F.calls_of_fail == F.fail_nth ? F.fail_err : CUDA_SUCCESS;
}
static uint64_t fresh(uint64_t n) {
  uint64_t a = F.next_addr;
  F.next_addr += (n + 0xfffff) & ~0xfffffull;
  return a;
}
static int logged(const char *s) { return strstr(F.log, s) != NULL; }
static int count_of(const char *s) {
  int k = 0;
  for (const char *p = F.log; (p = strstr(p, s)) != NULL; p++) k++;
  return k;
}
static int live(void) { return F.reservations + F.handles + F.maps + F.host_allocs + F.managed + F.device + F.pools; }

static const char *loc_name(int t) {
  return t == CU_MEM_LOCATION_TYPE_DEVICE ? "DEVICE" : t == CU_MEM_LOCATION_TYPE_HOST ? "HOST"
         : t == CU_MEM_LOCATION_TYPE_HOST_NUMA ? "HOST_NUMA" : "?";
}

static CUresult f_alloc(CUdeviceptr *d, size_t n) {
  logf_("cuMemAlloc(%zu)", n);
  CUresult r = injected("cuMemAlloc");
  if (r == CUDA_SUCCESS && F.card_full) r = CUDA_ERROR_OUT_OF_MEMORY;
  if (r != CUDA_SUCCESS) return r;
  *d = fresh(n);
  F.device++;
  return CUDA_SUCCESS;
}
static CUresult f_free(CUdeviceptr d) {
  logf_("cuMemFree");
  if (F.device + F.managed == 0) return CUDA_ERROR_INVALID_VALUE;
  if (F.managed) F.managed--; /* the fake does not tell them apart: tests use one kind at a time */
  else F.device--;
  return CUDA_SUCCESS;
}
static CUresult f_pitch(CUdeviceptr *d, size_t *pitch, size_t w, size_t h, unsigned esz) {
  logf_("cuMemAllocPitch(%zu,%zu)", w, h);
  *pitch = (w + 511) / 512 * 512;
  *d = fresh(*pitch * h);
  F.device++;
  return CUDA_SUCCESS;
}
static CUresult f_array(CUarray *a, const CUDA_ARRAY_DESCRIPTOR *d) {
  logf_("cuArrayCreate");
  *a = (CUarray)(uintptr_t)fresh(1);
  F.device++;
  return CUDA_SUCCESS;
}
static CUresult f_array3d(CUarray *a, const CUDA_ARRAY3D_DESCRIPTOR *d) {
  logf_("cuArray3DCreate");
  *a = (CUarray)(uintptr_t)fresh(1);
  F.device++;
  return CUDA_SUCCESS;
}
static CUresult f_create(CUmemGenericAllocationHandle *h, size_t n, const CUmemAllocationProp *p, unsigned long long fl) {
  logf_("cuMemCreate(%s:%d,%zu,types=%d)", loc_name(p->location.type), p->location.id, n, (int)p->requestedHandleTypes);
  CUresult r = injected("cuMemCreate");
  if (r != CUDA_SUCCESS) return r;
  if (p->location.type == CU_MEM_LOCATION_TYPE_DEVICE && F.card_full) return CUDA_ERROR_OUT_OF_MEMORY;
  if (p->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA && !F.host_numa) return CUDA_ERROR_NOT_SUPPORTED;
  if (p->location.type == CU_MEM_LOCATION_TYPE_HOST && !F.host_plain) return CUDA_ERROR_NOT_SUPPORTED;
  if (p->location.type == CU_MEM_LOCATION_TYPE_HOST && p->requestedHandleTypes != CU_MEM_HANDLE_TYPE_NONE)
    return CUDA_ERROR_INVALID_VALUE; /* cuda.h: HOST handles take no handle types */
  *h = fresh(1);
  F.handles++;
  return CUDA_SUCCESS;
}
static CUresult f_release(CUmemGenericAllocationHandle h) {
  logf_("cuMemRelease");
  F.handles--;
  return CUDA_SUCCESS;
}
static CUresult f_reserve(CUdeviceptr *p, size_t n, size_t align, CUdeviceptr addr, unsigned long long fl) {
  logf_("cuMemAddressReserve(%zu)", n);
  CUresult r = injected("cuMemAddressReserve");
  if (r != CUDA_SUCCESS) return r;
  *p = fresh(n);
  F.reservations++;
  return CUDA_SUCCESS;
}
static CUresult f_addrfree(CUdeviceptr p, size_t n) {
  logf_("cuMemAddressFree(%zu)", n);
  F.reservations--;
  return CUDA_SUCCESS;
}
static CUresult f_map(CUdeviceptr p, size_t n, size_t off, CUmemGenericAllocationHandle h, unsigned long long fl) {
  logf_("cuMemMap(%zu)", n);
  CUresult r = injected("cuMemMap");
  if (r != CUDA_SUCCESS) return r;
  F.maps++;
  return CUDA_SUCCESS;
}
static CUresult f_unmap(CUdeviceptr p, size_t n) {
  logf_("cuMemUnmap(%zu)", n);
  F.maps--;
  return CUDA_SUCCESS;
}
static CUresult f_access(CUdeviceptr p, size_t n, const CUmemAccessDesc *d, size_t count) {
  logf_("cuMemSetAccess(%zu,%s:%d)", n, loc_name(d->location.type), d->location.id);
  return injected("cuMemSetAccess");
}
static CUresult f_hostalloc(void **pp, size_t n, unsigned flags) {
  logf_("cuMemHostAlloc(%zu,flags=%u)", n, flags);
  CUresult r = injected("cuMemHostAlloc");
  if (r != CUDA_SUCCESS) return r;
  *pp = (void *)(uintptr_t)fresh(n);
  F.host_allocs++;
  return CUDA_SUCCESS;
}
static CUresult f_hostdevptr(CUdeviceptr *d, void *p, unsigned flags) {
  logf_("cuMemHostGetDevicePointer");
  CUresult r = injected("cuMemHostGetDevicePointer");
  if (r != CUDA_SUCCESS) return r;
  *d = (CUdeviceptr)(uintptr_t)p;
  return CUDA_SUCCESS;
}
static CUresult f_freehost(void *p) {
  logf_("cuMemFreeHost");
  F.host_allocs--;
  return CUDA_SUCCESS;
}
static CUresult f_managed(CUdeviceptr *d, size_t n, unsigned flags) {
  logf_("cuMemAllocManaged(%zu,flags=%u)", n, flags);
  CUresult r = injected("cuMemAllocManaged");
  if (r != CUDA_SUCCESS) return r;
  *d = fresh(n);
  F.managed++;
  return CUDA_SUCCESS;
}
static CUresult f_advise(CUdeviceptr d, size_t n, CUmem_advise a, CUdevice dev) {
  logf_("cuMemAdvise(%zu,%d,dev=%d)", n, (int)a, dev);
  return injected("cuMemAdvise");
}
static CUresult f_advise2(CUdeviceptr d, size_t n, CUmem_advise a, CUmemLocation l) {
  logf_("cuMemAdvise_v2(%zu,%d,%s:%d)", n, (int)a, loc_name(l.type), l.id);
  return injected("cuMemAdvise_v2");
}
static CUresult f_async(CUdeviceptr *d, size_t n, CUstream s) {
  logf_("cuMemAllocAsync(%zu)", n);
  if (F.card_full) return CUDA_ERROR_OUT_OF_MEMORY;
  *d = fresh(n);
  F.device++;
  return CUDA_SUCCESS;
}
static CUresult f_frompool(CUdeviceptr *d, size_t n, CUmemoryPool pool, CUstream s) {
  logf_("cuMemAllocFromPoolAsync(%zu,pool=%llx)", n, (unsigned long long)(uintptr_t)pool);
  CUresult r = injected("cuMemAllocFromPoolAsync");
  if (r != CUDA_SUCCESS) return r;
  *d = fresh(n);
  F.device++;
  return CUDA_SUCCESS;
}
static CUresult f_poolcreate(CUmemoryPool *p, const CUmemPoolProps *pp) {
  logf_("cuMemPoolCreate(%s:%d)", loc_name(pp->location.type), pp->location.id);
  if (pp->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA && !F.host_numa) return CUDA_ERROR_NOT_SUPPORTED;
  *p = (CUmemoryPool)(uintptr_t)fresh(1);
  F.pools++;
  return CUDA_SUCCESS;
}
static CUresult f_poolaccess(CUmemoryPool p, const CUmemAccessDesc *d, size_t n) {
  logf_("cuMemPoolSetAccess(%s:%d)", loc_name(d->location.type), d->location.id);
  return CUDA_SUCCESS;
}
static CUresult f_ctxdev(CUdevice *d) {
  *d = 0;
  return CUDA_SUCCESS;
}
static CUresult f_attr(int *v, CUdevice_attribute a, CUdevice dev) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID: *v = F.numa_id; return CUDA_SUCCESS;
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: *v = F.host_numa; return CUDA_SUCCESS;
    case CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: *v = F.host_plain; return CUDA_SUCCESS;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
}

static const struct emuv_driver FAKE = {
    .cuMemAlloc_v2 = f_alloc, .cuMemFree_v2 = f_free, .cuMemAllocPitch_v2 = f_pitch, .cuArrayCreate_v2 = f_array,
    .cuArray3DCreate_v2 = f_array3d, .cuMemCreate = f_create, .cuMemRelease = f_release,
    .cuMemAddressReserve = f_reserve, .cuMemAddressFree = f_addrfree, .cuMemMap = f_map, .cuMemUnmap = f_unmap,
    .cuMemSetAccess = f_access, .cuMemHostAlloc = f_hostalloc, .cuMemHostGetDevicePointer_v2 = f_hostdevptr,
    .cuMemFreeHost = f_freehost, .cuMemAllocManaged = f_managed, .cuMemAdvise = f_advise, .cuMemAdvise_v2 = f_advise2,
    .cuMemAllocAsync = f_async, .cuMemAllocAsync_ptsz = f_async, .cuMemAllocFromPoolAsync = f_frompool,
    .cuMemAllocFromPoolAsync_ptsz = f_frompool, .cuMemPoolCreate = f_poolcreate, .cuMemPoolSetAccess = f_poolaccess,
    .cuCtxGetDevice = f_ctxdev, .cuDeviceGetAttribute = f_attr};

/* ---- the placement under test, over a private budget ------------------------------------------------ */

static struct emuv_config cfg;
static struct emuv_stats_hdr hdr;
static struct emuv_stats_slot slot;
static struct emuv_budget bud;
static struct emuv_place P;

/* share 64 MiB, headroom 16 MiB, large threshold 8 MiB; limit 256 MiB unless 0 (then no spill) */
static void setup(int backend, uint64_t limit) {
  memset(&hdr, 0, sizeof hdr);
  memset(&slot, 0, sizeof slot);
  slot.flags = EMUV_SLOT_F_HELD;
  cfg = (struct emuv_config){.vram_share = 64 * MiB, .limit = limit ? limit : 64 * MiB, .headroom = 16 * MiB,
                             .large_threshold = 8 * MiB, .oom_retry = EMUV_RETRY_OFF, .spill_backend = backend};
  cfg.spill = cfg.limit > cfg.vram_share;
  bud = (struct emuv_budget){.cfg = &cfg, .tot = &hdr.tot[0], .slot = &slot};
  free(P.ranges);
  P.drv = FAKE;
  P.cfg = &cfg;
  P.budget = &bud;
  P.reap = NULL;
  emuv_place_init(&P);
  fake_reset();
}

/* What an earlier allocation holds: committed VRAM, so the next request sees less of the share. */
static void hold_vram(uint64_t n) {
  CHECK(emuv_reserve_total(&bud, n));
  CHECK_EQ_U64(emuv_reserve_vram(&bud, n, EMUV_RESERVE_FULL), n);
  emuv_commit(&bud, n, 0);
}

struct snap {
  uint64_t total, vram, host, held_total, held_vram, held_host;
};
static struct snap snap(void) {
  return (struct snap){hdr.tot[0].total_used, hdr.tot[0].vram_used, hdr.tot[0].host_used,
                       slot.held_total, slot.held_vram, slot.held_host};
}
#define CHECK_SNAP(s)                                  \
  do {                                                 \
    struct snap _n = snap();                           \
    CHECK_EQ_U64(_n.total, (s).total);                 \
    CHECK_EQ_U64(_n.vram, (s).vram);                   \
    CHECK_EQ_U64(_n.host, (s).host);                   \
    CHECK_EQ_U64(_n.held_total, (s).held_total);       \
    CHECK_EQ_U64(_n.held_vram, (s).held_vram);         \
    CHECK_EQ_U64(_n.held_host, (s).held_host);         \
  } while (0)

/* Frees a record the way the cuMemFree hook does. */
static void free_rec(const struct emuv_alloc *a) {
  CHECK(emuv_place_free(&P, a) == CUDA_SUCCESS);
  emuv_release(&bud, a->vram, a->host);
}

static int dead_reaped;
static struct emuv_budget dead; /* a dead process's holdings in the same totals */
static int reap_dead(void) {
  dead_reaped++;
  emuv_release(&dead, 64 * MiB, 0);
  return 1;
}

int main(void) {
  struct emuv_alloc a, b;
  CUdeviceptr d = 0;
  char want[200];
  const struct snap zero = {0};

  TEST("within the share: one cuMemAlloc, VRAM, nothing else; free gives it back") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    CHECK(emuv_place_alloc(&P, &d, 40 * MiB, 0, &a) == CUDA_SUCCESS);
    CHECK(strcmp(F.log, "cuMemAlloc(41943040) ") == 0);
    CHECK(a.kind == EMUV_KIND_VRAM && a.key == d && a.vram == 40 * MiB && a.host == 0);
    CHECK_EQ_U64(hdr.tot[0].vram_used, 40 * MiB);
    CHECK_EQ_U64(hdr.tot[0].total_used, 40 * MiB);
    CHECK_EQ_U64(slot.dev[0].vram, 40 * MiB);
    CHECK(!emuv_place_has_ranges(&P));
    free_rec(&a);
    CHECK_SNAP(zero);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("auto, beyond share - headroom: VRAM rounded down to 2 MiB, the rest host, one mapped range") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    hold_vram(43 * MiB); /* 48 - 43 = 5 MiB under share - headroom: 4 MiB of it, in 2 MiB granules */
    struct snap before = snap();
    uint64_t n = 20 * MiB + 1; /* not a granule multiple: the VA is 22 MiB */
    CHECK(emuv_place_alloc(&P, &d, n, 0, &a) == CUDA_SUCCESS);
    CHECK(a.kind == EMUV_KIND_SPLIT && a.key == d && a.size == n);
    CHECK_EQ_U64(a.vram, 4 * MiB);
    CHECK_EQ_U64(a.host, n - 4 * MiB);
    CHECK_EQ_U64(a.va_size, 22 * MiB);
    CHECK(logged("cuMemAddressReserve(23068672)"));
    CHECK(logged("cuMemCreate(DEVICE:0,4194304,types=0)"));
    CHECK(logged("cuMemCreate(HOST_NUMA:1,18874368,types=0)")); /* the GPU's NUMA node */
    CHECK_EQ_U64(count_of("cuMemMap("), 2);
    CHECK(logged("cuMemSetAccess(23068672,DEVICE:0)"));
    CHECK(!logged("cuMemAlloc("));
    CHECK_EQ_U64(hdr.tot[0].vram_used, before.vram + 4 * MiB);
    CHECK_EQ_U64(hdr.tot[0].host_used, n - 4 * MiB);
    CHECK_EQ_U64(hdr.tot[0].spill_events, 1);
    struct emuv_range rg;
    CHECK(emuv_place_range_find(&P, d + 20 * MiB, &rg) && rg.base == d && rg.size == n);
    CHECK(!emuv_place_range_find(&P, d + n, &rg));
    free_rec(&a);
    CHECK_SNAP(before);
    CHECK_EQ_U64(live(), 0);
    CHECK(!emuv_place_range_find(&P, d + 1, &rg));
  }
  TEST("auto without host VMM: the whole request in zero-copy pinned memory, its VRAM reservation given back") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    F.host_numa = F.host_plain = 0;
    hold_vram(43 * MiB);
    struct snap before = snap();
    CHECK(emuv_place_alloc(&P, &d, 20 * MiB, 0, &a) == CUDA_SUCCESS);
    snprintf(want, sizeof want, "cuMemHostAlloc(%llu,flags=%u)", 20 * MiB,
             CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
    CHECK(logged(want) && logged("cuMemHostGetDevicePointer"));
    CHECK(!logged("cuMemAddressReserve"));
    CHECK(a.kind == EMUV_KIND_ZEROCOPY && a.vram == 0 && a.host == 20 * MiB && a.h_host != 0);
    CHECK_EQ_U64(hdr.tot[0].vram_used, before.vram);
    CHECK_EQ_U64(hdr.tot[0].host_used, 20 * MiB);
    struct emuv_range rg;
    CHECK(emuv_place_range_find(&P, d + 19 * MiB, &rg) && rg.base == d);
    free_rec(&a);
    CHECK(logged("cuMemFreeHost"));
    CHECK_SNAP(before);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("auto, host VMM only as HOST (no NUMA): host part as a HOST handle") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    F.host_numa = 0;
    hold_vram(48 * MiB);
    CHECK(emuv_place_alloc(&P, &d, 20 * MiB, 0, &a) == CUDA_SUCCESS);
    CHECK(logged("cuMemCreate(HOST:0,20971520,types=0)"));
    CHECK(a.kind == EMUV_KIND_SPLIT && a.vram == 0);
    free_rec(&a);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("card full: the device handle's OUT_OF_MEMORY retries with everything in RAM") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    hold_vram(43 * MiB);
    struct snap before = snap();
    F.card_full = 1;
    CHECK(emuv_place_alloc(&P, &d, 20 * MiB, 0, &a) == CUDA_SUCCESS);
    CHECK_EQ_U64(count_of("cuMemAddressReserve("), 2);
    CHECK_EQ_U64(count_of("cuMemCreate(DEVICE"), 1);
    CHECK(logged("cuMemCreate(HOST_NUMA:1,20971520,types=0)"));
    CHECK(a.kind == EMUV_KIND_SPLIT && a.vram == 0 && a.host == 20 * MiB);
    CHECK_EQ_U64(hdr.tot[0].vram_used, before.vram); /* the first attempt's VRAM reservation is back */
    CHECK_EQ_U64(F.reservations, 1);                 /* and its VA */
    free_rec(&a);
    CHECK_SNAP(before);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("card full within the share: cuMemAlloc's OUT_OF_MEMORY spills the whole request") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    F.card_full = 1;
    CHECK(emuv_place_alloc(&P, &d, 4 * MiB, 0, &a) == CUDA_SUCCESS);
    CHECK(logged("cuMemAlloc(4194304)") && logged("cuMemCreate(HOST_NUMA:1,4194304"));
    CHECK(!logged("cuMemCreate(DEVICE"));
    CHECK(a.vram == 0 && a.host == 4 * MiB);
    CHECK_EQ_U64(hdr.tot[0].vram_used, 0);
    free_rec(&a);
    CHECK_SNAP(zero);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("relaxed capture: nothing split or spilled, no OOM event (the card-full case included)") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    hold_vram(43 * MiB);
    struct snap before = snap();
    CHECK(emuv_place_alloc(&P, &d, 20 * MiB, 1, &a) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK(F.log[0] == '\0'); /* no driver call at all */
    CHECK_SNAP(before);
    CHECK_EQ_U64(hdr.tot[0].oom_events, 0);
    CHECK(emuv_place_alloc(&P, &d, 4 * MiB, 1, &a) == CUDA_SUCCESS && a.kind == EMUV_KIND_VRAM);
    free_rec(&a);
    F.card_full = 1;
    CHECK(emuv_place_alloc(&P, &d, 4 * MiB, 1, &a) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_SNAP(before);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("spill disabled (limit = share): beyond the share is OUT_OF_MEMORY, counted, nothing held") {
    setup(EMUV_SPILL_AUTO, 0);
    CHECK(emuv_place_alloc(&P, &d, 65 * MiB, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(hdr.tot[0].oom_events, 1);
    CHECK(F.log[0] == '\0');
    hold_vram(60 * MiB);
    struct snap before = snap();
    CHECK(emuv_place_alloc(&P, &d, 8 * MiB, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY); /* total full first */
    CHECK(emuv_place_alloc(&P, &d, 2 * MiB, 0, &a) == CUDA_SUCCESS); /* small: may use the headroom */
    free_rec(&a);
    F.card_full = 1;
    CHECK(emuv_place_alloc(&P, &d, 2 * MiB, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY); /* the driver's answer */
    CHECK_SNAP(before);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("the virtual total is never exceeded; a shortfall reaps dead processes once and retries") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    CHECK(emuv_place_alloc(&P, &d, 257 * MiB, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(hdr.tot[0].oom_events, 1);
    CHECK_SNAP(zero);
    /* a dead process holds 64 MiB of VRAM: the reservation falls short, the reaper frees it, VRAM it is */
    dead = (struct emuv_budget){.cfg = &cfg, .tot = &hdr.tot[0], .slot = NULL};
    CHECK(emuv_reserve_total(&dead, 64 * MiB) && emuv_reserve_vram(&dead, 64 * MiB, EMUV_RESERVE_FULL) == 64 * MiB);
    emuv_commit(&dead, 64 * MiB, 0);
    P.reap = reap_dead;
    dead_reaped = 0;
    CHECK(emuv_place_alloc(&P, &d, 16 * MiB, 0, &a) == CUDA_SUCCESS);
    CHECK_EQ_U64(dead_reaped, 1);
    CHECK(a.kind == EMUV_KIND_VRAM);
    CHECK_EQ_U64(hdr.tot[0].vram_used, 16 * MiB);
    free_rec(&a);
    CHECK(emuv_place_alloc(&P, &d, 300 * MiB, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(dead_reaped, 1); /* at most every 50 ms */
    CHECK_SNAP(zero);
  }

  /* Every driver call of a spill path failing in turn: OUT_OF_MEMORY, the budget as before, nothing left. */
  struct { int backend, host_vmm; const char *name; CUresult err; } fails[] = {
      {EMUV_SPILL_AUTO, 1, "cuMemAddressReserve", CUDA_ERROR_OUT_OF_MEMORY},
      {EMUV_SPILL_AUTO, 1, "cuMemCreate", CUDA_ERROR_INVALID_VALUE}, /* probe ok (1st), the device handle */
      {EMUV_SPILL_AUTO, 1, "cuMemMap", CUDA_ERROR_INVALID_VALUE},
      {EMUV_SPILL_AUTO, 1, "cuMemSetAccess", CUDA_ERROR_INVALID_VALUE},
      {EMUV_SPILL_AUTO, 0, "cuMemHostAlloc", CUDA_ERROR_OUT_OF_MEMORY},
      {EMUV_SPILL_AUTO, 0, "cuMemHostGetDevicePointer", CUDA_ERROR_INVALID_VALUE},
      {EMUV_SPILL_PINNED, 1, "cuMemHostAlloc", CUDA_ERROR_OUT_OF_MEMORY},
      {EMUV_SPILL_PINNED, 1, "cuMemHostGetDevicePointer", CUDA_ERROR_INVALID_VALUE},
      {EMUV_SPILL_MANAGED, 1, "cuMemAllocManaged", CUDA_ERROR_OUT_OF_MEMORY},
      {EMUV_SPILL_MANAGED, 1, "cuMemAdvise_v2", CUDA_ERROR_INVALID_DEVICE},
  };
  for (unsigned i = 0; i < sizeof fails / sizeof *fails; i++) {
    static const char *const bn[] = {"auto", "pinned", "managed"};
    for (int nth = 1; nth <= 3; nth++) {
      char name[200];
      snprintf(name, sizeof name, "%s: call %d of %s failing: OUT_OF_MEMORY, every reservation and object given back",
               bn[fails[i].backend], nth, fails[i].name);
      setup(fails[i].backend, 256 * MiB);
      F.host_numa = F.host_plain = fails[i].host_vmm;
      hold_vram(43 * MiB);
      struct snap before = snap();
      /* cuMemCreate: call 1 is the host VMM probe, 2 the device handle, 3 the host handle */
      F.fail_name = fails[i].name;
      F.fail_nth = nth;
      F.fail_err = fails[i].err;
      CUresult r = emuv_place_alloc(&P, &d, 20 * MiB, 0, &a);
      if (F.calls_of_fail < nth) continue; /* the path makes fewer calls of it: nothing to test */
      TEST(name) {
        /* the HOST_NUMA probe failing leaves the HOST location, which works: served, host part HOST */
        if (strcmp(fails[i].name, "cuMemCreate") == 0 && nth == 1) {
          CHECK(r == CUDA_SUCCESS && a.kind == EMUV_KIND_SPLIT && logged("cuMemCreate(HOST:0,"));
          free_rec(&a);
        } else {
          CHECK(r == CUDA_ERROR_OUT_OF_MEMORY);
          CHECK_EQ_U64(hdr.tot[0].oom_events, 1);
          CHECK_EQ_U64(hdr.tot[0].spill_events, 0);
        }
        CHECK_SNAP(before);
        CHECK_EQ_U64(live(), 0);
        CHECK(!emuv_place_has_ranges(&P));
        if (!strcmp(fails[i].name, "cuMemAdvise_v2")) CHECK(logged("cuMemFree")); /* not handed out unadvised */
      }
    }
  }

  TEST("pinned: beyond the share the whole request is zero-copy, never split, host VMM never probed") {
    setup(EMUV_SPILL_PINNED, 256 * MiB);
    hold_vram(43 * MiB); /* 4 MiB would fit in VRAM under auto */
    struct snap before = snap();
    CHECK(emuv_place_alloc(&P, &d, 20 * MiB, 0, &a) == CUDA_SUCCESS);
    snprintf(want, sizeof want, "cuMemHostAlloc(%llu,flags=%u) cuMemHostGetDevicePointer ", 20 * MiB,
             CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
    CHECK(strcmp(F.log, want) == 0);
    CHECK(a.kind == EMUV_KIND_ZEROCOPY && a.vram == 0 && a.host == 20 * MiB);
    CHECK_EQ_U64(hdr.tot[0].vram_used, before.vram);
    CHECK_EQ_U64(hdr.tot[0].host_used, 20 * MiB);
    CHECK_EQ_U64(slot.dev[0].host, 20 * MiB);
    struct emuv_range rg;
    CHECK(emuv_place_range_find(&P, d + 7 * MiB, &rg) && rg.base == d && rg.size == 20 * MiB);
    CHECK(emuv_place_alloc(&P, &d, 2 * MiB, 0, &b) == CUDA_SUCCESS && b.kind == EMUV_KIND_VRAM); /* fits */
    free_rec(&b);
    free_rec(&a);
    CHECK_SNAP(before);
    CHECK_EQ_U64(live(), 0);
    CHECK(!emuv_place_has_ranges(&P));
  }
  TEST("pinned, card full within the share: the whole request zero-copy") {
    setup(EMUV_SPILL_PINNED, 256 * MiB);
    F.card_full = 1;
    CHECK(emuv_place_alloc(&P, &d, 4 * MiB, 0, &a) == CUDA_SUCCESS && a.kind == EMUV_KIND_ZEROCOPY);
    CHECK_EQ_U64(hdr.tot[0].vram_used, 0);
    free_rec(&a);
    CHECK_SNAP(zero);
  }
  TEST("managed: cuMemAllocManaged(GLOBAL) of the whole request, preferred on the host, accessed by the GPU") {
    setup(EMUV_SPILL_MANAGED, 256 * MiB);
    hold_vram(43 * MiB);
    struct snap before = snap();
    CHECK(emuv_place_alloc(&P, &d, 20 * MiB, 0, &a) == CUDA_SUCCESS);
    snprintf(want, sizeof want, "cuMemAllocManaged(%llu,flags=%u) cuMemAdvise_v2(%llu,%d,HOST:0) cuMemAdvise_v2(%llu,%d,DEVICE:0) ",
             20 * MiB, CU_MEM_ATTACH_GLOBAL, 20 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, 20 * MiB,
             CU_MEM_ADVISE_SET_ACCESSED_BY);
    CHECK(strcmp(F.log, want) == 0);
    CHECK(a.kind == EMUV_KIND_MANAGED_SPILL && a.key == d && a.vram == 0 && a.host == 20 * MiB);
    CHECK_EQ_U64(hdr.tot[0].host_used, 20 * MiB);
    CHECK_EQ_U64(slot.dev[0].host, 20 * MiB);
    CHECK_EQ_U64(slot.dev[0].managed, 0); /* not the application's own managed memory */
    CHECK(!emuv_place_has_ranges(&P));    /* one driver allocation: the driver answers range queries */
    CHECK(emuv_kind_spilled(a.kind));
    free_rec(&a);
    CHECK(logged("cuMemFree"));
    CHECK_SNAP(before);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("managed on a driver before 12.2: the CUdevice ABI of cuMemAdvise (CU_DEVICE_CPU, then the device)") {
    setup(EMUV_SPILL_MANAGED, 256 * MiB);
    P.drv.cuMemAdvise_v2 = NULL;
    hold_vram(60 * MiB);
    CHECK(emuv_place_alloc(&P, &d, 8 * MiB, 0, &a) == CUDA_SUCCESS);
    snprintf(want, sizeof want, "cuMemAdvise(%llu,%d,dev=%d) cuMemAdvise(%llu,%d,dev=0)", 8 * MiB,
             CU_MEM_ADVISE_SET_PREFERRED_LOCATION, CU_DEVICE_CPU, 8 * MiB, CU_MEM_ADVISE_SET_ACCESSED_BY);
    CHECK(logged(want));
    free_rec(&a);
    CHECK_EQ_U64(live(), 0);
  }
  TEST("deny-once: the first spilling request is refused and counted, the retry is served") {
    setup(EMUV_SPILL_MANAGED, 256 * MiB);
    cfg.oom_retry = EMUV_RETRY_ON;
    hold_vram(60 * MiB);
    struct snap before = snap();
    CHECK(emuv_place_alloc(&P, &d, 8 * MiB, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(hdr.tot[0].denied_retries, 1);
    CHECK_EQ_U64(hdr.tot[0].oom_events, 0);
    CHECK_SNAP(before);
    CHECK(F.log[0] == '\0');
    CHECK(emuv_place_alloc(&P, &d, 8 * MiB, 0, &a) == CUDA_SUCCESS && a.kind == EMUV_KIND_MANAGED_SPILL);
    CHECK_EQ_U64(hdr.tot[0].denied_retries, 1);
    free_rec(&a);
    CHECK_SNAP(before);
    /* relaxed capture mode: never a denial (PyTorch cannot free its cache while capturing); a stream-ordered
     * request, which may spill then, is served at once */
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    cfg.oom_retry = EMUV_RETRY_ON;
    hold_vram(60 * MiB);
    CHECK(emuv_place_async(&P, 0, &d, 8 * MiB, NULL, 0, NULL, 1, &a) == CUDA_SUCCESS && a.kind == EMUV_KIND_ASYNC_HOST);
    CHECK_EQ_U64(hdr.tot[0].denied_retries, 0);
  }

  TEST("cuMemCreate: VRAM within the share; beyond it HOST_NUMA keeping handle types, else HOST without them") {
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE},
                                .requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR};
    CUmemGenericAllocationHandle h = 0;
    for (int backend = 0; backend < 3; backend++) { /* a VMM handle is VMM memory under every backend */
      setup(backend, 256 * MiB);
      CHECK(emuv_place_handle(&P, &h, 32 * MiB, &prop, 0, 0, &a) == CUDA_SUCCESS);
      CHECK(a.kind == EMUV_KIND_HANDLE && a.vram == 32 * MiB);
      CHECK(emuv_place_handle(&P, &h, 32 * MiB, &prop, 0, 0, &b) == CUDA_SUCCESS); /* 64 > 48: host */
      CHECK(logged("cuMemCreate(HOST_NUMA:1,33554432,types=1)"));
      CHECK(b.kind == EMUV_KIND_HANDLE && b.host == 32 * MiB && b.vram == 0);
      CHECK_EQ_U64(hdr.tot[0].host_used, 32 * MiB);
      emuv_release(&bud, a.vram, a.host);
      emuv_release(&bud, b.vram, b.host);
      CHECK_SNAP(zero);
    }
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    F.host_numa = 0;
    hold_vram(48 * MiB);
    CHECK(emuv_place_handle(&P, &h, 32 * MiB, &prop, 0, 0, &a) == CUDA_SUCCESS);
    /* HOST_NUMA refused: HOST, handle types cleared (the location id is ignored for HOST) */
    CHECK(logged("cuMemCreate(HOST_NUMA:1,33554432,types=1) cuMemCreate(HOST:") && logged(",33554432,types=0) "));
    emuv_release(&bud, a.vram, a.host);
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    F.host_numa = F.host_plain = 0;
    hold_vram(48 * MiB);
    struct snap before = snap();
    CHECK(emuv_place_handle(&P, &h, 32 * MiB, &prop, 0, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY); /* no host VMM */
    CHECK(emuv_place_handle(&P, &h, 32 * MiB, &prop, 0, 1, &a) == CUDA_ERROR_OUT_OF_MEMORY); /* capture */
    CHECK_SNAP(before);
  }
  TEST("stream-ordered: VRAM within the share, else emuv's host pool; a user host pool is host memory") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    CHECK(emuv_place_async(&P, 0, &d, 40 * MiB, NULL, 0, NULL, 0, &a) == CUDA_SUCCESS);
    CHECK(a.kind == EMUV_KIND_ASYNC_VRAM && logged("cuMemAllocAsync(41943040)"));
    CHECK(emuv_place_async(&P, 1, &d, 40 * MiB, NULL, 0, NULL, 0, &b) == CUDA_SUCCESS);
    CHECK(b.kind == EMUV_KIND_ASYNC_HOST && b.host == 40 * MiB);
    CHECK(logged("cuMemPoolCreate(HOST_NUMA:1)") && logged("cuMemPoolSetAccess(DEVICE:0)"));
    CHECK_EQ_U64(hdr.tot[0].host_used, 40 * MiB);
    emuv_release(&bud, a.vram, a.host);
    emuv_release(&bud, b.vram, b.host);
    CUmemoryPool mine = (CUmemoryPool)(uintptr_t)0x1234;
    CHECK(emuv_place_async(&P, 0, &d, 8 * MiB, mine, 1, NULL, 0, &a) == CUDA_SUCCESS);
    CHECK(a.kind == EMUV_KIND_ASYNC_HOST && a.host == 8 * MiB && logged("pool=1234"));
    CHECK_EQ_U64(hdr.tot[0].vram_used, 0);
    emuv_release(&bud, a.vram, a.host);
    CHECK_SNAP(zero);
    F.fail_name = "cuMemAllocFromPoolAsync";
    F.fail_nth = 1;
    F.fail_err = CUDA_ERROR_OUT_OF_MEMORY;
    hold_vram(60 * MiB);
    struct snap before = snap();
    CHECK(emuv_place_async(&P, 0, &d, 8 * MiB, NULL, 0, NULL, 0, &a) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_SNAP(before);
  }
  TEST("VRAM-only memory: pitched and array allocations beyond the share are refused, never spilled") {
    setup(EMUV_SPILL_AUTO, 256 * MiB);
    hold_vram(60 * MiB);
    struct snap before = snap();
    size_t pitch = 0;
    CHECK(emuv_place_pitch(&P, &d, &pitch, 4096, 2048, 4, &a) == CUDA_ERROR_OUT_OF_MEMORY); /* 8 MiB */
    CHECK(logged("cuMemFree")); /* the driver's allocation is given back */
    CHECK(emuv_place_pitch(&P, &d, &pitch, 4096, 512, 4, &a) == CUDA_SUCCESS && a.vram == 2 * MiB);
    emuv_release(&bud, a.vram, a.host);
    CUarray arr;
    CUDA_ARRAY_DESCRIPTOR d2 = {.Width = 1024, .Height = 2048, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    CHECK(emuv_place_array(&P, &arr, &d2, NULL, &a) == CUDA_ERROR_OUT_OF_MEMORY); /* 8 MiB */
    CHECK(!logged("cuArrayCreate"));
    CUDA_ARRAY3D_DESCRIPTOR d3 = {.Width = 64, .Height = 64, .Depth = 64, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    CHECK(emuv_place_array(&P, &arr, NULL, &d3, &a) == CUDA_SUCCESS && a.kind == EMUV_KIND_ARRAY && a.vram == MiB);
    emuv_release(&bud, a.vram, a.host);
    CHECK_SNAP(before);
    CHECK_EQ_U64(hdr.tot[0].host_used, 0);
  }
  free(P.ranges);
  T_DONE();
}
