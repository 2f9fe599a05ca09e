/* EMUV_SPILL_BACKEND on the simulated driver, one backend per run (argv[1] = auto|pinned|managed):
 * where spilled memory lands, the counters it moves (host bytes of the container, never the process's
 * own pinned/managed visibility counters), interior-pointer queries, data read back, IPC refused, and
 * every byte given back by cuMemFree and by a context reset. */
#include <unistd.h>
#include "t.h"

#define LOC_MANAGED 100 /* what emuv_sim_location answers for managed memory */

static const struct emuv_stats_slot *my_slot(const struct emuv_stats_hdr *st) {
  for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
    const struct emuv_stats_slot *s = (const void *)((const char *)st + EMUV_STATS_HDR_SIZE + i * EMUV_STATS_SLOT_SIZE);
    if (s->state == EMUV_SLOT_LIVE && s->pid == (uint32_t)getpid()) return s;
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *backend = argc > 1 ? argv[1] : "auto";
  int pinned = strcmp(backend, "pinned") == 0, managed = strcmp(backend, "managed") == 0;
  char dir[512], path[600], name[200];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-backend-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  t_container_env("8Mi", "40Mi", "2Mi", "1Mi", "off", path, "64Mi");
  setenv("EMUV_SPILL_BACKEND", backend, 1);
  struct cu c = cu_load();
  const struct emuv_stats_hdr *st = stats_map(path);
  if (st == NULL) return 2;
  const struct emuv_stats_slot *me = NULL;
  PFN_cuMemRangeGetAttribute_v8000 rattr = (PFN_cuMemRangeGetAttribute_v8000)t_sym(c.h, "cuMemRangeGetAttribute");
  PFN_cuPointerGetAttributes_v7000 many = (PFN_cuPointerGetAttributes_v7000)t_sym(c.h, "cuPointerGetAttributes");
  /* where the spilled part of an allocation is, by backend */
  int spilled_loc = pinned ? CU_MEM_LOCATION_TYPE_HOST : managed ? LOC_MANAGED : CU_MEM_LOCATION_TYPE_HOST_NUMA;
  CUdeviceptr p = 0, q = 0, r = 0, own = 0;

  snprintf(name, sizeof name, "%s: 20 MiB beyond the share: %s", backend,
           pinned ? "whole in zero-copy pinned memory" : managed ? "whole in managed memory" : "6 MiB VRAM + 14 MiB host, one range");
  TEST(name) {
    CHECK(c.MemAlloc(&p, 20 * MiB) == CUDA_SUCCESS);
    me = my_slot(st);
    CHECK(me != NULL);
    uint64_t vram = pinned || managed ? 0 : 6 * MiB;
    CHECK(sim_location(p) == (vram ? CU_MEM_LOCATION_TYPE_DEVICE : spilled_loc));
    CHECK(sim_location(p + 20 * MiB - 1) == spilled_loc);
    CHECK_EQ_U64(st->tot[0].vram_used, vram);
    CHECK_EQ_U64(st->tot[0].host_used, 20 * MiB - vram);
    CHECK_EQ_U64(st->tot[0].total_used, 20 * MiB);
    CHECK_EQ_U64(st->tot[0].spill_events, 1);
    CHECK_EQ_U64(sim_vram_used(), vram);
    if (me) {
      CHECK_EQ_U64(me->dev[0].host, 20 * MiB - vram);
      CHECK_EQ_U64(me->held_host, 20 * MiB - vram);
      /* emuv's spill is container memory, not the application's own pinned or managed memory */
      CHECK_EQ_U64(me->dev[0].pinned_host, 0);
      CHECK_EQ_U64(me->dev[0].managed, 0);
    }
  }
  if (managed) {
    TEST("managed: advised to stay in host RAM and be mapped for device 0") {
      int v = 99, type = 99, by[2] = {99, 99};
      CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, p, 20 * MiB) == CUDA_SUCCESS && v == CU_DEVICE_CPU);
      CHECK(rattr(&type, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, p, 20 * MiB) == CUDA_SUCCESS &&
            type == CU_MEM_LOCATION_TYPE_HOST);
      CHECK(rattr(&by, sizeof by, CU_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, p, 20 * MiB) == CUDA_SUCCESS && by[0] == 0 &&
            by[1] == CU_DEVICE_INVALID);
      int is_managed = 0;
      CHECK(c.PointerGetAttribute(&is_managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, p + MiB) == CUDA_SUCCESS && is_managed);
    }
  }
  snprintf(name, sizeof name, "%s: interior pointers resolve to the whole allocation", backend);
  TEST(name) {
    CUdeviceptr base = 0, b2 = 0, b3 = 0;
    size_t size = 0, s2 = 0, s3 = 0;
    CHECK(c.MemGetAddressRange(&base, &size, p + 13 * MiB + 7) == CUDA_SUCCESS);
    CHECK_EQ_U64(base, p);
    CHECK_EQ_U64(size, 20 * MiB);
    CHECK(c.PointerGetAttribute(&b2, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p + 19 * MiB) == CUDA_SUCCESS);
    CHECK(c.PointerGetAttribute(&s2, CU_POINTER_ATTRIBUTE_RANGE_SIZE, p + 1) == CUDA_SUCCESS);
    CHECK_EQ_U64(b2, p);
    CHECK_EQ_U64(s2, 20 * MiB);
    CUpointer_attribute at[2] = {CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, CU_POINTER_ATTRIBUTE_RANGE_SIZE};
    void *dt[2] = {&b3, &s3};
    CHECK(many(2, at, dt, p + 5 * MiB) == CUDA_SUCCESS);
    CHECK_EQ_U64(b3, p);
    CHECK_EQ_U64(s3, 20 * MiB);
  }
  snprintf(name, sizeof name, "%s: bytes written read back; legacy IPC refused on spilled memory", backend);
  TEST(name) {
    size_t n = 20 * MiB;
    unsigned char *src = malloc(n), *dst = calloc(1, n);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)(i * 37 + (i >> 16));
    CHECK(c.MemcpyHtoD(p, src, n) == CUDA_SUCCESS);
    CHECK(c.MemcpyDtoH(dst, p, n) == CUDA_SUCCESS);
    CHECK(memcmp(src, dst, n) == 0);
    free(src);
    free(dst);
    CUipcMemHandle ipc;
    CHECK(c.IpcGetMemHandle(&ipc, p) == CUDA_ERROR_NOT_SUPPORTED);
  }
  snprintf(name, sizeof name, "%s: a large request that partly fits is %s", backend, pinned || managed ? "kept whole" : "split");
  TEST(name) {
    CHECK(c.MemFree(p) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK(c.MemAlloc(&q, 4 * MiB) == CUDA_SUCCESS); /* fits under share - headroom: VRAM for every backend */
    CHECK(sim_location(q) == CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK(c.MemAlloc(&r, 4 * MiB) == CUDA_SUCCESS); /* 2 MiB left under share - headroom */
    if (pinned || managed) {
      CHECK(sim_location(r) == spilled_loc);
      CHECK(sim_location(r + 4 * MiB - 1) == spilled_loc);
    } else {
      CHECK(sim_location(r) == CU_MEM_LOCATION_TYPE_DEVICE);
      CHECK(sim_location(r + 2 * MiB) == CU_MEM_LOCATION_TYPE_HOST_NUMA);
    }
    uint64_t vram = pinned || managed ? 4 * MiB : 6 * MiB;
    CHECK_EQ_U64(st->tot[0].vram_used, vram);
    CHECK_EQ_U64(st->tot[0].host_used, 8 * MiB - vram);
    CHECK_EQ_U64(st->tot[0].spill_events, 2);
  }
  snprintf(name, sizeof name, "%s: the application's own managed memory stays visibility-only", backend);
  TEST(name) {
    uint64_t host = st->tot[0].host_used, total = st->tot[0].total_used;
    CHECK(c.MemAllocManaged(&own, 3 * MiB, CU_MEM_ATTACH_GLOBAL) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].host_used, host);
    CHECK_EQ_U64(st->tot[0].total_used, total);
    if (me) CHECK_EQ_U64(me->dev[0].managed, 3 * MiB);
    CHECK(c.MemFree(own) == CUDA_SUCCESS);
    if (me) CHECK_EQ_U64(me->dev[0].managed, 0);
  }
  snprintf(name, sizeof name, "%s: cuMemFree gives every byte back, to the budget and the driver", backend);
  /* (p was freed above, with the counters checked at 0) */
  TEST(name) {
    CHECK(c.MemFree(r) == CUDA_SUCCESS);
    CHECK(c.MemFree(q) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK_EQ_U64(sim_vram_used(), 0);
    if (me) {
      CHECK_EQ_U64(me->dev[0].vram, 0);
      CHECK_EQ_U64(me->dev[0].host, 0);
      CHECK_EQ_U64(me->held_total, 0);
      CHECK_EQ_U64(me->dev[0].pinned_host, 0);
      CHECK_EQ_U64(me->dev[0].managed, 0);
      CHECK_EQ_U64(me->dev[0].allocs, me->dev[0].frees);
    }
    CUdeviceptr base = 0;
    size_t size = 0;
    CHECK(c.MemGetAddressRange(&base, &size, p + MiB) == CUDA_ERROR_NOT_FOUND); /* gone at the driver too */
    CHECK(c.MemGetAddressRange(&base, &size, r + MiB) == CUDA_ERROR_NOT_FOUND);
    CHECK(sim_location(p) == -1 && sim_location(r) == -1);
  }
  snprintf(name, sizeof name, "%s: a context reset drops spilled allocations and their ranges", backend);
  TEST(name) {
    CHECK(c.MemAlloc(&p, 20 * MiB) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].total_used, 20 * MiB);
    CHECK(c.DevicePrimaryCtxReset(0) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CUdeviceptr base = 0;
    size_t size = 0;
    CHECK(c.MemGetAddressRange(&base, &size, p + MiB) == CUDA_ERROR_NOT_FOUND); /* no stale range of emuv's */
    CHECK(c.MemAlloc(&p, 20 * MiB) == CUDA_SUCCESS); /* and the budget is usable again */
    CHECK(c.MemFree(p) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
  }
  T_DONE();
}
