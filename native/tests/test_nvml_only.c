/* A process that loads only NVML (nvidia-smi's kind) sees the container's numbers from the stats file. */
#include "t.h"
int main(int argc, char **argv) {
  /* argv[1] = stats file already holding usage (written by test_procs' helper or by this test) */
  setenv("EMUV_VRAM_SHARE", "1Gi", 1);
  setenv("EMUV_LIMIT_BYTES", "4Gi", 1);
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-nvml-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  /* create the file the way a CUDA process would, then pretend 3 GiB are in use */
  int fd = open(path, O_RDWR | O_CREAT, 0666);
  if (fd < 0 || ftruncate(fd, EMUV_STATS_FILE_SIZE) != 0) return 2;
  struct emuv_stats_hdr *h = mmap(NULL, EMUV_STATS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  h->magic = EMUV_STATS_MAGIC;
  h->ver_major = EMUV_STATS_VER_MAJOR;
  h->init_state = EMUV_INIT_READY;
  h->tot[0].total_used = 3 * GiB;
  setenv("EMUV_STATS_FILE", path, 1);
  void *n = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  nvmlReturn_t (*init)(void) = (nvmlReturn_t (*)(void))t_sym(n, "nvmlInit_v2");
  nvmlReturn_t (*hb)(unsigned, nvmlDevice_t *) = (nvmlReturn_t (*)(unsigned, nvmlDevice_t *))t_sym(n, "nvmlDeviceGetHandleByIndex_v2");
  nvmlReturn_t (*mem)(nvmlDevice_t, nvmlMemory_t *) = (nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t *))t_sym(n, "nvmlDeviceGetMemoryInfo");
  nvmlDevice_t d;
  nvmlMemory_t m;
  TEST("NVML without the CUDA shim reports the container totals from the stats file") {
    CHECK(init() == NVML_SUCCESS && hb(0, &d) == NVML_SUCCESS && mem(d, &m) == NVML_SUCCESS);
    CHECK_EQ_U64(m.total, 4 * GiB);
    CHECK_EQ_U64(m.used, 3 * GiB);
    CHECK_EQ_U64(m.free, 1 * GiB);
  }
  T_DONE();
}
