/* PyTorch expandable segments: reserve 1.125 x totalGlobalMem, cuMemCreate 20 MiB POSIX_FD handles,
 * map them back to back, one cuMemSetAccess over the mapped range, unmap, release. Handles beyond the
 * share are created in host memory. argv[1]: "numa" (default), "host" (only HOST VMM) or "none". */
#include "t.h"

#define SEG (20 * MiB)
#define NSEG 6

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "numa";
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-exp-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  t_container_env("64Mi", "256Mi", "16Mi", "16Mi", "off", path, "1Gi");
  setenv("EMUV_SIM_HOST_VMM", mode, 1);
  struct cu c = cu_load();
  const struct emuv_stats_hdr *st = stats_map(path);
  size_t total = 0;
  CUdeviceptr va = 0;
  size_t resv = 0;
  CUmemGenericAllocationHandle h[NSEG] = {0};
  int created = 0;

  TEST("reservation follows the virtual totalGlobalMem") {
    CHECK(c.DeviceTotalMem(&total, 0) == CUDA_SUCCESS);
    CHECK_EQ_U64(total, 256 * MiB);
    resv = total / 8 * 9;
    CHECK(c.MemAddressReserve(&va, resv, 0, 0, 0) == CUDA_SUCCESS);
  }
  CUmemAllocationProp prop = {0};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  TEST(strcmp(mode, "none") == 0 ? "without host VMM, handles beyond the share are refused (OOM)"
                                 : "handles fill VRAM up to share - headroom, then come from host memory") {
    for (int i = 0; i < NSEG; i++) {
      CUresult r = c.MemCreate(&h[i], SEG, &prop, 0);
      if (i < 2) CHECK(r == CUDA_SUCCESS);
      else if (strcmp(mode, "none") == 0) CHECK(r == CUDA_ERROR_OUT_OF_MEMORY);
      else CHECK(r == CUDA_SUCCESS);
      if (r != CUDA_SUCCESS) break;
      created++;
      CUmemAllocationProp got;
      CHECK(c.MemGetAllocationPropertiesFromHandle(&got, h[i]) == CUDA_SUCCESS);
      int want = i < 2 ? CU_MEM_LOCATION_TYPE_DEVICE
                       : strcmp(mode, "host") == 0 ? CU_MEM_LOCATION_TYPE_HOST : CU_MEM_LOCATION_TYPE_HOST_NUMA;
      CHECK_EQ_U64(got.location.type, want);
      CHECK(c.MemMap(va + (CUdeviceptr)i * SEG, SEG, 0, h[i], 0) == CUDA_SUCCESS);
      CUmemAccessDesc acc = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                             .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
      CHECK(c.MemSetAccess(va, (size_t)(i + 1) * SEG, &acc, 1) == CUDA_SUCCESS);
    }
    CHECK_EQ_U64(st->tot[0].vram_used, 2 * SEG);
    CHECK_EQ_U64(st->tot[0].host_used, (uint64_t)(created - 2) * SEG);
    CHECK_EQ_U64(sim_vram_used(), 2 * SEG);
  }
  if (created > 2) {
    TEST("export keeps working on HOST_NUMA substitutes (POSIX_FD kept); HOST substitutes cannot export") {
      int fd = -1;
      CUresult r = c.MemExportToShareableHandle(&fd, h[3], CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
      if (strcmp(mode, "host") == 0) CHECK(r != CUDA_SUCCESS);
      else CHECK(r == CUDA_SUCCESS && fd >= 0);
      if (fd >= 0) close(fd);
    }
  }
  TEST("data written over the whole segment range reads back") {
    size_t n = (size_t)created * SEG;
    unsigned char *p = (unsigned char *)(uintptr_t)va;
    for (size_t i = 0; i < n; i += 4093) p[i] = (unsigned char)(i / 4093);
    int bad = 0;
    for (size_t i = 0; i < n; i += 4093) bad += p[i] != (unsigned char)(i / 4093);
    CHECK_EQ_U64(bad, 0);
  }
  TEST("unmap and release return the budget") {
    for (int i = 0; i < created; i++) {
      CHECK(c.MemUnmap(va + (CUdeviceptr)i * SEG, SEG) == CUDA_SUCCESS);
      CHECK(c.MemRelease(h[i]) == CUDA_SUCCESS);
    }
    CHECK(c.MemAddressFree(va, resv) == CUDA_SUCCESS);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(sim_vram_used(), 0);
  }
  TEST("small (2 MiB) handles may use the headroom, up to the full share") {
    CUmemGenericAllocationHandle s[40];
    int n = 0;
    for (; n < 40; n++) {
      if (c.MemCreate(&s[n], 2 * MiB, &prop, 0) != CUDA_SUCCESS) break;
      CUmemAllocationProp got;
      c.MemGetAllocationPropertiesFromHandle(&got, s[n]);
      if (got.location.type != CU_MEM_LOCATION_TYPE_DEVICE) { c.MemRelease(s[n]); break; }
    }
    CHECK_EQ_U64(n, 32); /* 64 MiB share / 2 MiB */
    for (int i = 0; i < n; i++) c.MemRelease(s[i]);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
  }
  T_DONE();
}
