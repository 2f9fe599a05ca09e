/* Split allocations: VRAM prefix + host suffix in one contiguous range; data written across the
 * boundary reads back; ranges, counters, limit and free. argv[1] = "zerocopy" runs with host VMM
 * unavailable (whole allocations spill to pinned zero-copy memory). */
#include "t.h"

int main(int argc, char **argv) {
  int zc = argc > 1 && strcmp(argv[1], "zerocopy") == 0;
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-split-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  t_container_env("8Mi", "40Mi", "2Mi", "1Mi", "off", path, "64Mi");
  if (zc) setenv("EMUV_SIM_HOST_VMM", "none", 1);
  struct cu c = cu_load();
  const struct emuv_stats_hdr *st;
  CUdeviceptr p = 0, small = 0, big2 = 0, over = 0;

  TEST(zc ? "zerocopy: 20 MiB request spills whole to pinned host memory" : "split: 20 MiB = 6 MiB VRAM + 14 MiB host, contiguous") {
    CHECK(c.MemAlloc(&p, 20 * MiB) == CUDA_SUCCESS);
    st = stats_map(path);
    CHECK(st != NULL);
    if (!zc) {
      CHECK(sim_location(p) == CU_MEM_LOCATION_TYPE_DEVICE);
      CHECK(sim_location(p + 6 * MiB - 1) == CU_MEM_LOCATION_TYPE_DEVICE);
      CHECK(sim_location(p + 6 * MiB) == CU_MEM_LOCATION_TYPE_HOST_NUMA);
      CHECK(sim_location(p + 20 * MiB - 1) == CU_MEM_LOCATION_TYPE_HOST_NUMA);
      CHECK_EQ_U64(st->tot[0].vram_used, 6 * MiB);
      CHECK_EQ_U64(st->tot[0].host_used, 14 * MiB);
      CHECK_EQ_U64(sim_vram_used(), 6 * MiB);
    } else {
      CHECK(sim_location(p) == CU_MEM_LOCATION_TYPE_HOST);
      CHECK_EQ_U64(st->tot[0].vram_used, 0);
      CHECK_EQ_U64(st->tot[0].host_used, 20 * MiB);
      CHECK_EQ_U64(sim_vram_used(), 0);
    }
    CHECK_EQ_U64(st->tot[0].total_used, 20 * MiB);
    CHECK_EQ_U64(st->tot[0].spill_events, 1);
  }
  TEST("bytes written across the VRAM|host boundary read back") {
    size_t n = 20 * MiB;
    unsigned char *src = malloc(n), *dst = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)(i * 131 + (i >> 20));
    CHECK(c.MemcpyHtoD(p, src, n) == CUDA_SUCCESS);
    memset(dst, 0, n);
    CHECK(c.MemcpyDtoH(dst, p, n) == CUDA_SUCCESS);
    CHECK(memcmp(src, dst, n) == 0);
    /* a copy that starts in VRAM and ends in host memory */
    unsigned char win[4096];
    CHECK(c.MemcpyDtoH(win, p + 6 * MiB - 2048, sizeof win) == CUDA_SUCCESS);
    CHECK(memcmp(win, src + 6 * MiB - 2048, sizeof win) == 0);
    free(src);
    free(dst);
  }
  TEST("address range and pointer attributes report the whole allocation") {
    CUdeviceptr base = 0;
    size_t size = 0;
    CHECK(c.MemGetAddressRange(&base, &size, p + 10 * MiB + 3) == CUDA_SUCCESS);
    CHECK_EQ_U64(base, p);
    CHECK_EQ_U64(size, 20 * MiB);
    CUdeviceptr b2 = 0;
    size_t s2 = 0;
    CHECK(c.PointerGetAttribute(&b2, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p + 15 * MiB) == CUDA_SUCCESS);
    CHECK(c.PointerGetAttribute(&s2, CU_POINTER_ATTRIBUTE_RANGE_SIZE, p + 1) == CUDA_SUCCESS);
    CHECK_EQ_U64(b2, p);
    CHECK_EQ_U64(s2, 20 * MiB);
    PFN_cuPointerGetAttributes_v7000 many = (PFN_cuPointerGetAttributes_v7000)t_sym(c.h, "cuPointerGetAttributes");
    CUpointer_attribute at[2] = {CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, CU_POINTER_ATTRIBUTE_RANGE_SIZE};
    CUdeviceptr b3 = 0;
    size_t s3 = 0;
    void *dt[2] = {&b3, &s3};
    CHECK(many(2, at, dt, p + 19 * MiB) == CUDA_SUCCESS);
    CHECK_EQ_U64(b3, p);
    CHECK_EQ_U64(s3, 20 * MiB);
  }
  TEST("small allocations use the headroom; large ones beyond share-headroom go to host") {
    CHECK(c.MemAlloc(&small, 512 * 1024) == CUDA_SUCCESS);
    CHECK(sim_location(small) == CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK(c.MemAlloc(&big2, 2 * MiB) == CUDA_SUCCESS);
    /* zero-copy spilled nothing to VRAM, so 2 MiB still fits under share - headroom there */
    CHECK(sim_location(big2) == (zc ? CU_MEM_LOCATION_TYPE_DEVICE : CU_MEM_LOCATION_TYPE_HOST_NUMA));
    size_t f = 0, t = 0;
    CHECK(c.MemGetInfo(&f, &t) == CUDA_SUCCESS);
    CHECK_EQ_U64(t, 40 * MiB);
    CHECK_EQ_U64(f, 40 * MiB - 20 * MiB - 512 * 1024 - 2 * MiB);
  }
  TEST("the virtual total is never exceeded") {
    CHECK(c.MemAlloc(&over, 20 * MiB) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(st->tot[0].total_used, 22 * MiB + 512 * 1024);
    CHECK_EQ_U64(st->tot[0].oom_events, 1);
  }
  TEST("CUDA arrays are charged against the share and never spill") {
    PFN_cuArrayCreate_v3020 ac = (PFN_cuArrayCreate_v3020)t_sym(c.h, "cuArrayCreate_v2");
    PFN_cuArray3DCreate_v3020 ac3 = (PFN_cuArray3DCreate_v3020)t_sym(c.h, "cuArray3DCreate_v2");
    PFN_cuArrayDestroy_v2000 ad = (PFN_cuArrayDestroy_v2000)t_sym(c.h, "cuArrayDestroy");
    uint64_t before = st->tot[0].vram_used;
    CUarray a = NULL, a3 = NULL, big = NULL;
    CUDA_ARRAY_DESCRIPTOR d = {.Width = 256, .Height = 256, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    CHECK(ac(&a, &d) == CUDA_SUCCESS); /* 1 MiB */
    CUDA_ARRAY3D_DESCRIPTOR d3 = {.Width = 64, .Height = 64, .Depth = 64, .Format = CU_AD_FORMAT_HALF, .NumChannels = 1};
    CHECK(ac3(&a3, &d3) == CUDA_SUCCESS); /* 512 KiB */
    CHECK_EQ_U64(st->tot[0].vram_used, before + 1536 * 1024);
    CUDA_ARRAY_DESCRIPTOR db = {.Width = 1536, .Height = 256, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4}; /* 6 MiB: over the share */
    uint64_t host_before = st->tot[0].host_used;
    CHECK(ac(&big, &db) == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(st->tot[0].host_used, host_before);
    CHECK(ad(a) == CUDA_SUCCESS);
    CHECK(ad(a3) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].vram_used, before);
  }
  TEST("frees return every byte to the budget and the driver") {
    CHECK(c.MemFree(p) == CUDA_SUCCESS);
    CHECK(c.MemFree(small) == CUDA_SUCCESS);
    CHECK(c.MemFree(big2) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK_EQ_U64(sim_vram_used(), 0);
    CHECK(st->tot[0].host_peak >= (zc ? 20 : 14) * MiB);
    size_t f = 0, t = 0;
    CHECK(c.MemGetInfo(&f, &t) == CUDA_SUCCESS);
    CHECK_EQ_U64(f, 40 * MiB);
  }
  T_DONE();
}
