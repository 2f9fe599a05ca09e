/* Deny-once (EMUV_OOM_RETRY=on): the first request that would spill gets OUT_OF_MEMORY so a caching
 * allocator frees its cache; the retry is served (in VRAM if the cache was freed, else spilled). Never
 * denied in relaxed capture mode. Also: the card itself being full (fault injection) spills. */
#include "t.h"

int main(void) {
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-deny-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  t_container_env("32Mi", "128Mi", "4Mi", "8Mi", "on", path, "1Gi");
  setenv("EMUV_SIM_FAIL", "cuMemAlloc_v2:4:2", 1); /* the 4th real cuMemAlloc_v2: card out of memory */
  struct cu c = cu_load();
  const struct emuv_stats_hdr *st = stats_map(path);
  CUdeviceptr cache = 0, a = 0, b = 0, d = 0, e = 0;

  TEST("first spilling request is denied once; after the cache is freed the retry lands in VRAM") {
    CHECK(c.MemAlloc(&cache, 24 * MiB) == CUDA_SUCCESS); /* the "cached" block (real call 1) */
    CHECK(sim_location(cache) == CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK(c.MemAlloc(&a, 16 * MiB) == CUDA_ERROR_OUT_OF_MEMORY); /* would spill: denied */
    CHECK_EQ_U64(st->tot[0].denied_retries, 1);
    CHECK_EQ_U64(st->tot[0].total_used, 24 * MiB);
    CHECK(c.MemFree(cache) == CUDA_SUCCESS); /* PyTorch: release_cached_blocks */
    CHECK(c.MemAlloc(&a, 16 * MiB) == CUDA_SUCCESS); /* real call 2 */
    CHECK(sim_location(a) == CU_MEM_LOCATION_TYPE_DEVICE);
  }
  TEST("within the rate limit, the next spill is served without a denial") {
    CHECK(c.MemAlloc(&b, 16 * MiB) == CUDA_SUCCESS); /* 16 + 16 > 28: split 12 VRAM + 4 host */
    CHECK_EQ_U64(st->tot[0].denied_retries, 1);
    CHECK(sim_location(b) == CU_MEM_LOCATION_TYPE_DEVICE);
    CHECK(sim_location(b + 12 * MiB) == CU_MEM_LOCATION_TYPE_HOST_NUMA);
    CHECK_EQ_U64(st->tot[0].vram_used, 28 * MiB);
  }
  TEST("never denied in relaxed capture mode (whole request kept native)") {
    CUstreamCaptureMode m = CU_STREAM_CAPTURE_MODE_RELAXED;
    CHECK(c.ThreadExchangeStreamCaptureMode(&m) == CUDA_SUCCESS);
    uint64_t denied = st->tot[0].denied_retries;
    CUdeviceptr x = 0;
    CHECK(c.MemAlloc(&x, 2 * MiB) == CUDA_SUCCESS); /* small: fits under the share (real call 3) */
    CHECK(sim_location(x) == CU_MEM_LOCATION_TYPE_DEVICE);
    CUresult r = c.MemAlloc(&d, 16 * MiB); /* over the share during capture: OOM, but not a deny-once */
    CHECK(r == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK_EQ_U64(st->tot[0].denied_retries, denied);
    m = CU_STREAM_CAPTURE_MODE_GLOBAL;
    CHECK(c.ThreadExchangeStreamCaptureMode(&m) == CUDA_SUCCESS);
    CHECK(c.MemFree(x) == CUDA_SUCCESS);
  }
  TEST("when the card itself is out of memory the request spills whole") {
    CHECK(c.MemFree(b) == CUDA_SUCCESS);
    CHECK(c.MemFree(a) == CUDA_SUCCESS);
    CHECK(c.MemAlloc(&e, 1 * MiB) == CUDA_SUCCESS); /* real call 4 fails: card full -> host */
    CHECK(sim_location(e) == CU_MEM_LOCATION_TYPE_HOST_NUMA);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 1 * MiB);
    CHECK(c.MemFree(e) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
  }
  T_DONE();
}
