/* Minimal test harness for the native tests: each CHECK prints on failure; each TEST() block prints
 * "PASS name" or "FAIL name"; tests/run.sh counts those lines. The driver is reached the way cudart
 * reaches it: dlopen("libcuda.so.1") and dlsym, never -lcuda. */
#ifndef EMUV_T_H
#define EMUV_T_H
#define _GNU_SOURCE
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <cudaTypedefs.h>
#include <dlfcn.h>
#include <nvml.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_fail_total, t_fail_now;
static const char *t_name;
#define TEST(name) for (t_name = (name), t_fail_now = 0, t_begin(); t_name; t_end(), t_name = NULL)
static inline void t_begin(void) {}
static inline void t_end(void) {
  printf("%s %s\n", t_fail_now ? "FAIL" : "PASS", t_name);
  fflush(stdout);
  t_fail_total += t_fail_now;
}
#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) {                                                                \
      fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, t_name ? t_name : "-", #c); \
      t_fail_now++;                                                            \
    }                                                                          \
  } while (0)
#define CHECK_EQ_U64(a, b)                                                     \
  do {                                                                         \
    unsigned long long _a = (unsigned long long)(a), _b = (unsigned long long)(b); \
    if (_a != _b) {                                                            \
      fprintf(stderr, "  %s:%d: %s: %s == %llu, expected %s == %llu\n", __FILE__, __LINE__, t_name ? t_name : "-", #a, _a, #b, _b); \
      t_fail_now++;                                                            \
    }                                                                          \
  } while (0)
#define T_DONE() return t_fail_total ? 1 : 0

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Driver entry points the tests use, resolved through dlsym on the libcuda.so.1 handle. */
struct cu {
  void *h;
  PFN_cuInit_v2000 Init;
  PFN_cuGetProcAddress_v12000 GetProcAddress_v2;
  PFN_cuMemAlloc_v3020 MemAlloc;
  PFN_cuMemFree_v3020 MemFree;
  PFN_cuMemGetInfo_v3020 MemGetInfo;
  PFN_cuDeviceTotalMem_v3020 DeviceTotalMem;
  PFN_cuMemGetAddressRange_v3020 MemGetAddressRange;
  PFN_cuPointerGetAttribute_v4000 PointerGetAttribute;
  PFN_cuMemAllocAsync_v11020 MemAllocAsync;
  PFN_cuMemFreeAsync_v11020 MemFreeAsync;
  PFN_cuMemCreate_v10020 MemCreate;
  PFN_cuMemRelease_v10020 MemRelease;
  PFN_cuMemMap_v10020 MemMap;
  PFN_cuMemUnmap_v10020 MemUnmap;
  PFN_cuMemSetAccess_v10020 MemSetAccess;
  PFN_cuMemAddressReserve_v10020 MemAddressReserve;
  PFN_cuMemAddressFree_v10020 MemAddressFree;
  PFN_cuMemExportToShareableHandle_v10020 MemExportToShareableHandle;
  PFN_cuMemGetAllocationPropertiesFromHandle_v10020 MemGetAllocationPropertiesFromHandle;
  PFN_cuThreadExchangeStreamCaptureMode_v10010 ThreadExchangeStreamCaptureMode;
  PFN_cuStreamCreate_v2000 StreamCreate;
  PFN_cuStreamBeginCapture_v10010 StreamBeginCapture;
  PFN_cuStreamEndCapture_v10000 StreamEndCapture;
  PFN_cuMemcpyHtoD_v3020 MemcpyHtoD;
  PFN_cuMemcpyDtoH_v3020 MemcpyDtoH;
  PFN_cuDevicePrimaryCtxReset_v11000 DevicePrimaryCtxReset;
  PFN_cuIpcGetMemHandle_v4010 IpcGetMemHandle;
  PFN_cuMemHostAlloc_v2020 MemHostAlloc;
  PFN_cuMemFreeHost_v2000 MemFreeHost;
  PFN_cuMemAllocManaged_v6000 MemAllocManaged;
};

static inline void *t_sym(void *h, const char *n) {
  void *p = dlsym(h, n);
  if (p == NULL) {
    fprintf(stderr, "missing symbol %s\n", n);
    exit(2);
  }
  return p;
}

static inline struct cu cu_load(void) {
  struct cu c;
  memset(&c, 0, sizeof c);
  c.h = dlopen("libcuda.so.1", RTLD_NOW);
  if (c.h == NULL) {
    fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror());
    exit(2);
  }
#define L(field, name) c.field = (__typeof__(c.field))t_sym(c.h, name)
  L(Init, "cuInit"); L(GetProcAddress_v2, "cuGetProcAddress_v2"); L(MemAlloc, "cuMemAlloc_v2");
  L(MemFree, "cuMemFree_v2"); L(MemGetInfo, "cuMemGetInfo_v2"); L(DeviceTotalMem, "cuDeviceTotalMem_v2");
  L(MemGetAddressRange, "cuMemGetAddressRange_v2"); L(PointerGetAttribute, "cuPointerGetAttribute");
  L(MemAllocAsync, "cuMemAllocAsync"); L(MemFreeAsync, "cuMemFreeAsync"); L(MemCreate, "cuMemCreate");
  L(MemRelease, "cuMemRelease"); L(MemMap, "cuMemMap"); L(MemUnmap, "cuMemUnmap"); L(MemSetAccess, "cuMemSetAccess");
  L(MemAddressReserve, "cuMemAddressReserve"); L(MemAddressFree, "cuMemAddressFree");
  L(MemExportToShareableHandle, "cuMemExportToShareableHandle");
  L(MemGetAllocationPropertiesFromHandle, "cuMemGetAllocationPropertiesFromHandle");
  L(ThreadExchangeStreamCaptureMode, "cuThreadExchangeStreamCaptureMode"); L(StreamCreate, "cuStreamCreate");
  L(StreamBeginCapture, "cuStreamBeginCapture_v2"); L(StreamEndCapture, "cuStreamEndCapture");
  L(MemcpyHtoD, "cuMemcpyHtoD_v2"); L(MemcpyDtoH, "cuMemcpyDtoH_v2");
  L(DevicePrimaryCtxReset, "cuDevicePrimaryCtxReset_v2"); L(IpcGetMemHandle, "cuIpcGetMemHandle");
  L(MemHostAlloc, "cuMemHostAlloc"); L(MemFreeHost, "cuMemFreeHost"); L(MemAllocManaged, "cuMemAllocManaged");
#undef L
  if (c.Init(0) != CUDA_SUCCESS) {
    fprintf(stderr, "cuInit failed\n");
    exit(2);
  }
  return c;
}

/* Simulator introspection (exported by build/sim/libcuda.so.1). */
static inline int sim_location(uint64_t p) {
  int (*f)(uint64_t) = (int (*)(uint64_t))dlsym(RTLD_DEFAULT, "emuv_sim_location");
  return f ? f(p) : -2;
}
static inline uint64_t sim_vram_used(void) {
  uint64_t (*f)(void) = (uint64_t (*)(void))dlsym(RTLD_DEFAULT, "emuv_sim_vram_used");
  return f ? f() : ~0ull;
}

/* A fresh directory under $TMPDIR (run.sh points it at a directory it removes afterwards). */
/* The environment the device plugin and the webhook give a container (share, virtual limit, tuning,
 * stats file), plus the simulated card's VRAM: the one place the tests spell these variables. */
static inline void t_container_env(const char *share, const char *limit, const char *headroom, const char *large,
                                   const char *oom_retry, const char *stats_path, const char *sim_vram) {
  setenv("EMUV_VRAM_SHARE", share, 1);
  setenv("EMUV_LIMIT_BYTES", limit, 1);
  setenv("EMUV_HEADROOM", headroom, 1);
  setenv("EMUV_LARGE_THRESHOLD", large, 1);
  setenv("EMUV_OOM_RETRY", oom_retry, 1);
  setenv("EMUV_STATS_FILE", stats_path, 1);
  setenv("EMUV_SIM_VRAM", sim_vram, 1);
}

static inline char *t_mkdtemp(char *buf, size_t n, const char *tmpl) {
  const char *base = getenv("TMPDIR");
  snprintf(buf, n, "%s/%s", base && *base ? base : "/tmp", tmpl);
  return mkdtemp(buf);
}

/* The container totals as the stats file holds them (a test-side read-only view). */
#include "emuv_contract.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
static inline const struct emuv_stats_hdr *stats_map(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  void *m = mmap(NULL, EMUV_STATS_FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  return m == MAP_FAILED ? NULL : m;
}
#endif
