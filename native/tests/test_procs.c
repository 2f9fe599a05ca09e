/* Processes of one container share one budget through the stats file; a SIGKILLed process's slot is
 * reaped (lock-free) by the next process that initialises, and the totals recover. */
#include <signal.h>
#include <sys/wait.h>
#include "t.h"

static struct cu c;

static int child(const char *mode, int fd) {
  c = cu_load();
  if (strcmp(mode, "alloc") == 0) { /* 8 MiB while the parent holds 12 of 16: must spill */
    CUdeviceptr p = 0;
    if (c.MemAlloc(&p, 8 * MiB) != CUDA_SUCCESS) return 10;
    int loc = sim_location(p);
    c.MemFree(p);
    return loc == CU_MEM_LOCATION_TYPE_HOST_NUMA ? 0 : 11;
  }
  if (strcmp(mode, "hold") == 0) { /* takes the last 4 MiB of VRAM, then waits to be killed */
    CUdeviceptr p = 0;
    if (c.MemAlloc(&p, 4 * MiB) != CUDA_SUCCESS) return 12;
    if (write(fd, "x", 1) != 1) return 13;
    for (;;) pause();
  }
  return 0; /* "init": only initialises (cuInit resolves, the first hook reaps) */
}

static pid_t spawn(const char *self, const char *mode, int fd) {
  pid_t p = fork();
  if (p == 0) {
    char fds[16];
    snprintf(fds, sizeof fds, "%d", fd);
    execl(self, self, mode, fds, (char *)NULL);
    _exit(127);
  }
  return p;
}

static int wait_rc(pid_t p) {
  int st = 0;
  waitpid(p, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
  if (argc > 1) return child(argv[1], argc > 2 ? atoi(argv[2]) : -1);
  char dir[512], path[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-procs-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  setenv("EMUV_VRAM_SHARE", "16Mi", 1);
  setenv("EMUV_LIMIT_BYTES", "64Mi", 1);
  setenv("EMUV_OOM_RETRY", "off", 1);
  setenv("EMUV_STATS_FILE", path, 1);
  c = cu_load();
  const struct emuv_stats_hdr *st = stats_map(path);
  CUdeviceptr mine = 0;
  CHECK(c.MemAlloc(&mine, 12 * MiB) == CUDA_SUCCESS);
  TEST("two processes share one VRAM share: the second one spills") {
    CHECK_EQ_U64(wait_rc(spawn(argv[0], "alloc", -1)), 0);
    CHECK_EQ_U64(st->tot[0].vram_used, 12 * MiB);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
    CHECK_EQ_U64(st->tot[0].spill_events, 1);
  }
  TEST("a SIGKILLed process's slot is reaped by the next process and the totals recover") {
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t h = spawn(argv[0], "hold", pfd[1]);
    char b;
    CHECK(read(pfd[0], &b, 1) == 1);
    CHECK_EQ_U64(st->tot[0].vram_used, 16 * MiB);
    int live = 0;
    for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
      const struct emuv_stats_slot *s = (const void *)((const char *)st + EMUV_STATS_HDR_SIZE + i * EMUV_STATS_SLOT_SIZE);
      if (s->state == EMUV_SLOT_LIVE && s->pid == (uint32_t)h) {
        live = 1;
        CHECK_EQ_U64(s->dev[0].vram, 4 * MiB);
      }
    }
    CHECK(live);
    kill(h, SIGKILL);
    CHECK_EQ_U64(wait_rc(h), 128 + SIGKILL);
    CHECK_EQ_U64(st->tot[0].vram_used, 16 * MiB); /* nobody has looked yet */
    CHECK_EQ_U64(wait_rc(spawn(argv[0], "init", -1)), 0);
    CHECK_EQ_U64(st->tot[0].vram_used, 12 * MiB);
    CHECK_EQ_U64(st->tot[0].total_used, 12 * MiB);
    for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
      const struct emuv_stats_slot *s = (const void *)((const char *)st + EMUV_STATS_HDR_SIZE + i * EMUV_STATS_SLOT_SIZE);
      CHECK(!(s->pid == (uint32_t)h && s->state == EMUV_SLOT_LIVE));
    }
  }
  TEST("a running process reclaims a killed process's VRAM on demand when its own request falls short") {
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t h = spawn(argv[0], "hold", pfd[1]);
    char b;
    CHECK(read(pfd[0], &b, 1) == 1);
    CHECK_EQ_U64(st->tot[0].vram_used, 16 * MiB);
    kill(h, SIGKILL);
    CHECK_EQ_U64(wait_rc(h), 128 + SIGKILL);
    usleep(60 * 1000); /* past the 50 ms reap rate limit */
    CUdeviceptr q = 0;
    CHECK(c.MemAlloc(&q, 4 * MiB) == CUDA_SUCCESS);
    CHECK(sim_location(q) == CU_MEM_LOCATION_TYPE_DEVICE); /* the dead holder's 4 MiB, not a spill */
    CHECK_EQ_U64(st->tot[0].vram_used, 16 * MiB);
    CHECK_EQ_U64(st->tot[0].host_used, 0);
    CHECK(c.MemFree(q) == CUDA_SUCCESS);
  }
  TEST("this process's own slot holds its allocation") {
    int found = 0;
    for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
      const struct emuv_stats_slot *s = (const void *)((const char *)st + EMUV_STATS_HDR_SIZE + i * EMUV_STATS_SLOT_SIZE);
      if (s->state == EMUV_SLOT_LIVE && s->pid == (uint32_t)getpid()) {
        found = 1;
        CHECK_EQ_U64(s->dev[0].vram, 12 * MiB);
        CHECK((s->seq & EMUV_SEQ_BUSY_MASK) == 0);
      }
    }
    CHECK(found);
  }
  c.MemFree(mine);
  T_DONE();
}
