/* The application never breaks because of emuv: a broken contract passes through (one "emuv:" line),
 * a foreign stats file degrades to per-process accounting. argv[1] selects the case; the runner checks
 * stderr. */
#include <sys/file.h>
#include <time.h>
#include "t.h"
int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "v2") == 0) {
    setenv("EMUV_CONTRACT_VERSION", "2", 1);
    setenv("EMUV_VRAM_SHARE", "1Gi", 1);
    setenv("EMUV_LIMIT_BYTES", "4Gi", 1);
    setenv("EMUV_SIM_VRAM", "8Gi", 1);
    struct cu c = cu_load();
    TEST("unknown contract major: the real driver's numbers, allocations untouched") {
      size_t f = 0, t = 0;
      CHECK(c.MemGetInfo(&f, &t) == CUDA_SUCCESS);
      CHECK_EQ_U64(t, 8 * GiB);
      CUdeviceptr p = 0;
      CHECK(c.MemAlloc(&p, 2 * GiB) == CUDA_SUCCESS); /* above the share: not emuv's business now */
      CHECK(sim_location(p) == CU_MEM_LOCATION_TYPE_DEVICE);
      CHECK(c.MemFree(p) == CUDA_SUCCESS);
    }
  } else if (strcmp(mode, "foreign-stats") == 0) {
    char dir[512], path[600];
    if (!t_mkdtemp(dir, sizeof dir, "emuv-safe-XXXXXX")) return 2;
    snprintf(path, sizeof path, "%s/stats.bin", dir);
    FILE *f = fopen(path, "w");
    fputs("this is not a stats file, and it is long enough to look like one ........................", f);
    fclose(f);
    setenv("EMUV_VRAM_SHARE", "16Mi", 1);
    setenv("EMUV_LIMIT_BYTES", "32Mi", 1);
    setenv("EMUV_STATS_FILE", path, 1);
    struct cu c = cu_load();
    TEST("a foreign stats file is left alone; accounting continues per process") {
      CUdeviceptr p = 0;
      CHECK(c.MemAlloc(&p, 8 * MiB) == CUDA_SUCCESS);
      size_t fr = 0, t = 0;
      CHECK(c.MemGetInfo(&fr, &t) == CUDA_SUCCESS);
      CHECK_EQ_U64(t, 32 * MiB);
      CHECK_EQ_U64(fr, 24 * MiB);
      c.MemFree(p);
      char buf[64] = "";
      FILE *g = fopen(path, "r");
      CHECK(g && fgets(buf, sizeof buf, g) && strncmp(buf, "this is not", 11) == 0);
      if (g) fclose(g);
    }
  } else if (strcmp(mode, "locked") == 0) {
    char dir[512], path[600];
    if (!t_mkdtemp(dir, sizeof dir, "emuv-lock-XXXXXX")) return 2;
    snprintf(path, sizeof path, "%s/stats.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0666);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) return 2; /* a stuck process holding the init lock */
    setenv("EMUV_VRAM_SHARE", "16Mi", 1);
    setenv("EMUV_LIMIT_BYTES", "32Mi", 1);
    setenv("EMUV_STATS_FILE", path, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct cu c = cu_load();
    CUdeviceptr p = 0;
    CUresult r = c.MemAlloc(&p, 4 * MiB);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    TEST("a stats file whose init lock is never released: no hang, per-process accounting after <= 2 s") {
      double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
      CHECK(r == CUDA_SUCCESS);
      CHECK(secs < 4.0);
      size_t fr = 0, t = 0;
      CHECK(c.MemGetInfo(&fr, &t) == CUDA_SUCCESS);
      CHECK_EQ_U64(fr, 28 * MiB);
      c.MemFree(p);
    }
  } else if (strcmp(mode, "outside") == 0) {
    struct cu c = cu_load(); /* no EMUV_* at all (a process outside an emuv container) */
    TEST("no EMUV_* variables: invisible pass-through") {
      size_t f = 0, t = 0;
      CHECK(c.MemGetInfo(&f, &t) == CUDA_SUCCESS);
      CHECK_EQ_U64(t, 8 * GiB);
    }
  }
  T_DONE();
}
