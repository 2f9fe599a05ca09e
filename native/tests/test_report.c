/* Reporting agreement: cuMemGetInfo_v2, cuDeviceTotalMem_v2, nvmlDeviceGetMemoryInfo and _v2 report the
 * same virtual total and a free that moves with every allocation and never underflows. */
#include "t.h"
#include <sys/stat.h>

static nvmlReturn_t (*nInit)(void);
static nvmlReturn_t (*nHandle)(unsigned, nvmlDevice_t *);
static nvmlReturn_t (*nMem)(nvmlDevice_t, nvmlMemory_t *);
static nvmlReturn_t (*nMem2)(nvmlDevice_t, nvmlMemory_v2_t *);

int main(void) {
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-report-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  setenv("EMUV_VRAM_SHARE", "7680Mi", 1);
  setenv("EMUV_LIMIT_BYTES", "28Gi", 1);
  setenv("EMUV_STATS_FILE", path, 1);
  setenv("EMUV_SIM_VRAM", "80Gi", 1);
  umask(077); /* a restrictive umask must not lock other users of the container out of the stats file */
  struct cu c = cu_load();
  void *n = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  nInit = (__typeof__(nInit))t_sym(n, "nvmlInit_v2");
  nHandle = (__typeof__(nHandle))t_sym(n, "nvmlDeviceGetHandleByIndex_v2");
  nMem = (__typeof__(nMem))t_sym(n, "nvmlDeviceGetMemoryInfo");
  nMem2 = (__typeof__(nMem2))t_sym(n, "nvmlDeviceGetMemoryInfo_v2");
  nvmlDevice_t dev;
  CHECK(nInit() == NVML_SUCCESS && nHandle(0, &dev) == NVML_SUCCESS);

#define AGREE(expect_free)                                                         \
  do {                                                                             \
    size_t f = 0, t = 0, tm = 0;                                                   \
    nvmlMemory_t m1;                                                               \
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};                               \
    CHECK(c.MemGetInfo(&f, &t) == CUDA_SUCCESS);                                   \
    CHECK(c.DeviceTotalMem(&tm, 0) == CUDA_SUCCESS);                               \
    CHECK(nMem(dev, &m1) == NVML_SUCCESS);                                         \
    CHECK(nMem2(dev, &m2) == NVML_SUCCESS);                                        \
    CHECK_EQ_U64(t, 28 * GiB);                                                     \
    CHECK_EQ_U64(tm, 28 * GiB);                                                    \
    CHECK_EQ_U64(m1.total, 28 * GiB);                                              \
    CHECK_EQ_U64(m2.total, 28 * GiB);                                              \
    CHECK_EQ_U64(f, (expect_free));                                                \
    CHECK_EQ_U64(m1.free, (expect_free));                                          \
    CHECK_EQ_U64(m2.free, (expect_free));                                          \
    CHECK_EQ_U64(m1.used, 28 * GiB - (expect_free));                               \
    CHECK_EQ_U64(m2.used + 0, 28 * GiB - (expect_free));                           \
  } while (0)

  TEST("idle: all four report total = EMUV_LIMIT_BYTES and free = total") AGREE(28 * GiB);
  TEST("the stats file is open to every user of the container (mode 0666 despite umask 077)") {
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_EQ_U64(st.st_mode & 0777, 0666);
  }
  CUdeviceptr a = 0, b = 0;
  TEST("free moves with a VRAM allocation") {
    CHECK(c.MemAlloc(&a, 1 * GiB) == CUDA_SUCCESS);
    AGREE(27 * GiB);
  }
  TEST("free moves with a split allocation (transformers' single warm-up block)") {
    CHECK(c.MemAlloc(&b, 25 * GiB) == CUDA_SUCCESS);
    CHECK(sim_location(b) == CU_MEM_LOCATION_TYPE_DEVICE);
    AGREE(2 * GiB);
    CHECK(c.MemFree(b) == CUDA_SUCCESS);
    AGREE(27 * GiB);
  }
  TEST("free never underflows (agent-reported overhead larger than the rest)") {
    int fd = open(path, O_RDWR);
    struct emuv_stats_hdr *w = mmap(NULL, EMUV_STATS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    CHECK(w != MAP_FAILED);
    __atomic_store_n(&w->tot[0].overhead, 100 * GiB, __ATOMIC_RELAXED);
    size_t f = 1, t = 0;
    nvmlMemory_t m1;
    CHECK(c.MemGetInfo(&f, &t) == CUDA_SUCCESS);
    CHECK(nMem(dev, &m1) == NVML_SUCCESS);
    CHECK_EQ_U64(f, 0);
    CHECK_EQ_U64(m1.free, 0);
    CHECK_EQ_U64(m1.used, 28 * GiB);
    __atomic_store_n(&w->tot[0].overhead, 0, __ATOMIC_RELAXED);
    AGREE(27 * GiB);
  }
  CHECK(c.MemFree(a) == CUDA_SUCCESS);
  T_DONE();
}
