/* 32 threads x 100,000 alloc/free pairs through the shim (run plain, under ASan/UBSan and under TSan
 * with sanitizer builds of the shim). Each thread keeps a few allocations live, every 1,000th request
 * is large enough to split; afterwards every counter is back to zero. argv[1] = iterations per thread. */
#include <pthread.h>
#include "t.h"

#define THREADS 32
static struct cu c;
static long iters = 100000;
static int errors;

static void *worker(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
  CUdeviceptr live[4] = {0};
  for (long i = 0; i < iters; i++) {
    seed = seed * 1103515245u + 12345u;
    int k = (int)(seed >> 16) % 4;
    if (live[k]) {
      if (c.MemFree(live[k]) != CUDA_SUCCESS) __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
      live[k] = 0;
    }
    size_t n = i % 1000 == 999 ? 8 * MiB : 4096 + (seed >> 8) % 60000;
    CUresult r = c.MemAlloc(&live[k], n);
    if (r != CUDA_SUCCESS) {
      live[k] = 0;
      if (r != CUDA_ERROR_OUT_OF_MEMORY) __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
    } else {
      ((volatile unsigned char *)(uintptr_t)live[k])[n - 1] = 1; /* the memory is real */
    }
  }
  for (int k = 0; k < 4; k++)
    if (live[k] && c.MemFree(live[k]) != CUDA_SUCCESS) __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) iters = atol(argv[1]);
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-stress-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  t_container_env("16Mi", "512Mi", "4Mi", "4Mi", "off", path, "1Gi");
  c = cu_load();
  const struct emuv_stats_hdr *st = stats_map(path);
  char name[128];
  snprintf(name, sizeof name, "%d threads x %ld alloc/free pairs, counters return to zero", THREADS, iters);
  TEST(name) {
    CUdeviceptr hold = 0; /* keeps 10 of the 12 MiB large-allocation VRAM busy: large requests split */
    CHECK(c.MemAlloc(&hold, 10 * MiB) == CUDA_SUCCESS);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(c.MemFree(hold) == CUDA_SUCCESS);
    CHECK_EQ_U64(errors, 0);
    CHECK_EQ_U64(st->tot[0].total_used, 0);
    CHECK_EQ_U64(st->tot[0].vram_used, 0);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
    CHECK_EQ_U64(sim_vram_used(), 0);
    CHECK(st->tot[0].spill_events > 0);
    CHECK(st->tot[0].vram_peak <= 16 * MiB);
  }
  T_DONE();
}
