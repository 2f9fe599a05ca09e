/* fork() after init while another thread allocates: the child gets its own fresh slot and never
 * deadlocks on a lock the parent's other thread held at fork time. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include "t.h"

static struct cu c;
static volatile int stop;

static void *churn(void *a) {
  while (!stop) {
    CUdeviceptr p = 0;
    if (c.MemAlloc(&p, 64 * 1024) == CUDA_SUCCESS) c.MemFree(p);
  }
  return NULL;
}

static const struct emuv_stats_slot *slot_of(const struct emuv_stats_hdr *st, pid_t pid) {
  for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
    const struct emuv_stats_slot *s = (const void *)((const char *)st + EMUV_STATS_HDR_SIZE + i * EMUV_STATS_SLOT_SIZE);
    if (s->state == EMUV_SLOT_LIVE && s->pid == (uint32_t)pid) return s;
  }
  return NULL;
}

int main(void) {
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-fork-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  setenv("EMUV_VRAM_SHARE", "64Mi", 1);
  setenv("EMUV_LIMIT_BYTES", "128Mi", 1);
  setenv("EMUV_STATS_FILE", path, 1);
  c = cu_load();
  const struct emuv_stats_hdr *st = stats_map(path);
  CUdeviceptr mine = 0;
  CHECK(c.MemAlloc(&mine, 1 * MiB) == CUDA_SUCCESS);
  pthread_t t;
  pthread_create(&t, NULL, churn, NULL);
  TEST("50 forks under allocation churn: each child gets a fresh slot and does not deadlock") {
    int bad = 0;
    for (int i = 0; i < 50; i++) {
      pid_t p = fork();
      if (p == 0) {
        alarm(10);
        CUdeviceptr q = 0;
        if (c.MemAlloc(&q, 2 * MiB) != CUDA_SUCCESS) _exit(3);
        const struct emuv_stats_slot *s = slot_of(st, getpid());
        int ok = s != NULL && s->dev[0].vram == 2 * MiB && s->dev[0].allocs == 1;
        c.MemFree(q);
        _exit(ok ? 0 : 4);
      }
      int status = 0;
      waitpid(p, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bad++;
        fprintf(stderr, "  child %d: status 0x%x\n", i, status);
      }
    }
    CHECK_EQ_U64(bad, 0);
  }
  stop = 1;
  pthread_join(t, NULL);
  TEST("the parent's slot is untouched by its children") {
    const struct emuv_stats_slot *s = slot_of(st, getpid());
    CHECK(s != NULL);
    if (s) CHECK_EQ_U64(s->dev[0].vram, 1 * MiB);
  }
  c.MemFree(mine);
  T_DONE();
}
