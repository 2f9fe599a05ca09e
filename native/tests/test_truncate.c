/* Any process of the container can truncate the shared stats file. Every process that has it mapped must
 * survive (before the fix: SIGBUS on its next allocation), say so once on stderr, and go on accounting per
 * process from what it holds. Three CUDA processes (4 allocating threads each, one holding 32 MiB) and one
 * NVML-only process run while the file is truncated: to 0 bytes, then (second round) to its header only. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include "t.h"

#define PROCS 3
#define THREADS 4
#define LIMIT (256 * MiB)
#define HOLD (32 * MiB)
#define CHURN_MAX (2 * MiB)

static struct cu c;
static volatile int stop;

static void *churn(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 7;
  CUdeviceptr live[4] = {0};
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    seed = seed * 1103515245u + 12345u;
    int k = (int)((seed >> 16) % 4);
    if (live[k]) {
      c.MemFree(live[k]);
      live[k] = 0;
    }
    if (c.MemAlloc(&live[k], (seed >> 8) % 2 ? CHURN_MAX : CHURN_MAX / 2) != CUDA_SUCCESS) live[k] = 0;
  }
  for (int k = 0; k < 4; k++)
    if (live[k]) c.MemFree(live[k]);
  return NULL;
}

/* CUDA child: returns 0 when it survived and accounts per process from what it holds. */
static int cuda_child(int ready, int go) {
  c = cu_load();
  CUdeviceptr hold = 0;
  if (c.MemAlloc(&hold, HOLD) != CUDA_SUCCESS) return 10;
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, churn, (void *)(i + 1 + getpid() * 16L));
  usleep(2000);
  if (write(ready, "r", 1) != 1) return 11;
  char b;
  if (read(go, &b, 1) != 1) return 12; /* the file has been truncated meanwhile */
  usleep(5000);                         /* the churning threads go on over the truncated file */
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  int rc = 0;
  size_t f = 0, tot = 0;
  if (c.MemGetInfo(&f, &tot) != CUDA_SUCCESS || tot != LIMIT) rc |= 1;
  /* per process from here: what this process holds (its 32 MiB), give or take at most one churn request
   * per thread that was in flight at the instant of recovery */
  if (f > LIMIT - HOLD + THREADS * CHURN_MAX || f < LIMIT - HOLD - THREADS * CHURN_MAX) rc |= 2;
  CUdeviceptr rest = 0, more = 0;
  if (f > 0 && c.MemAlloc(&rest, f) != CUDA_SUCCESS) rc |= 4;
  if (c.MemAlloc(&more, 1 * MiB) != CUDA_ERROR_OUT_OF_MEMORY) rc |= 8; /* the limit still holds */
  if (rest) c.MemFree(rest);
  if (c.MemFree(hold) != CUDA_SUCCESS) rc |= 16;
  printf("note: pid %d after the truncation: free %zu of %zu while holding %llu\n", getpid(), f, tot,
         (unsigned long long)HOLD);
  fflush(stdout);
  return rc;
}

/* NVML-only child (nvidia-smi's kind): maps the file read-only; must survive reading it afterwards. */
static int nvml_child(int ready, int go) {
  void *n = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  nvmlReturn_t (*init)(void) = (nvmlReturn_t (*)(void))t_sym(n, "nvmlInit_v2");
  nvmlReturn_t (*hb)(unsigned, nvmlDevice_t *) = (nvmlReturn_t (*)(unsigned, nvmlDevice_t *))t_sym(n, "nvmlDeviceGetHandleByIndex_v2");
  nvmlReturn_t (*mem)(nvmlDevice_t, nvmlMemory_t *) = (nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t *))t_sym(n, "nvmlDeviceGetMemoryInfo");
  nvmlDevice_t d;
  nvmlMemory_t m;
  if (init() != NVML_SUCCESS || hb(0, &d) != NVML_SUCCESS || mem(d, &m) != NVML_SUCCESS) return 20;
  if (m.total != LIMIT || m.used == 0) return 21; /* sees the CUDA children's usage */
  if (write(ready, "r", 1) != 1) return 22;
  char b;
  if (read(go, &b, 1) != 1) return 23;
  if (mem(d, &m) != NVML_SUCCESS || m.total != LIMIT) return 24;
  return 0;
}

/* The application's own SIGBUS handler, installed before the shim initialises: it must still get every
 * SIGBUS that is not a fault in the stats mapping (a fault in its own truncated mapping, a raise()). */
static volatile sig_atomic_t app_calls, app_faults;
static sigjmp_buf app_jump;
static void app_handler(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  app_calls++;
  if (si->si_code > 0) {
    app_faults++;
    siglongjmp(app_jump, 1);
  }
}

/* A file mapping of this process, truncated: touching it raises SIGBUS that is not emuv's. */
static volatile char *own_truncated_mapping(const char *dir) {
  char p[600];
  snprintf(p, sizeof p, "%s/own-%d.bin", dir, getpid());
  int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, 4096) != 0) return NULL;
  volatile char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED || ftruncate(fd, 0) != 0) return NULL;
  close(fd);
  unlink(p);
  return m;
}

static int chain_child(const char *dir, const char *stats) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = app_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, NULL) != 0) return 30;
  c = cu_load();
  CUdeviceptr p = 0, q = 0;
  if (c.MemAlloc(&p, HOLD) != CUDA_SUCCESS) return 31;
  if (truncate(stats, 0) != 0) return 32;
  if (c.MemAlloc(&q, HOLD) != CUDA_SUCCESS) return 33; /* emuv's fault: handled by emuv */
  if (app_calls != 0) return 34;
  volatile char *own = own_truncated_mapping(dir);
  if (own == NULL) return 35;
  if (sigsetjmp(app_jump, 1) == 0) {
    own[10] = 1; /* the application's fault: its own handler */
    return 36;
  }
  if (app_calls != 1 || app_faults != 1) return 37;
  raise(SIGBUS); /* a sent SIGBUS: the application's handler too */
  if (app_calls != 2 || app_faults != 1) return 38;
  size_t f = 0, t = 0;
  if (c.MemGetInfo(&f, &t) != CUDA_SUCCESS || f != LIMIT - 2 * HOLD) return 39;
  return 0;
}

/* No handler of the application's: a SIGBUS that is not emuv's still ends the process as it would have. */
static int default_child(const char *dir, const char *stats) {
  c = cu_load();
  CUdeviceptr p = 0;
  if (c.MemAlloc(&p, HOLD) != CUDA_SUCCESS) return 40;
  if (truncate(stats, 0) != 0) return 41;
  if (c.MemAlloc(&p, HOLD) != CUDA_SUCCESS) return 42;
  volatile char *own = own_truncated_mapping(dir);
  if (own == NULL) return 43;
  own[10] = 1; /* must die of SIGBUS here */
  return 44;
}

struct kid {
  pid_t pid;
  int go;
  char err[640];
};

static void spawn(struct kid *k, const char *self, const char *mode, int ready_w, int idx, const char *dir) {
  int gp[2];
  if (pipe(gp) != 0) exit(2);
  snprintf(k->err, sizeof k->err, "%s/child-%d.stderr", dir, idx);
  k->pid = fork();
  if (k->pid == 0) {
    int fd = open(k->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0) _exit(126);
    close(gp[1]);
    if (strcmp(mode, "nvml") == 0) { /* NVML only: keep just the NVML shim in the preload list */
      static char keep[1024];
      const char *pre = getenv("LD_PRELOAD");
      const char *e = pre ? strstr(pre, "libemuv-nvml.so") : NULL;
      if (e != NULL) {
        const char *s0 = e;
        while (s0 > pre && s0[-1] != ':' && s0[-1] != ' ') s0--;
        snprintf(keep, sizeof keep, "%.*s", (int)(e - s0) + (int)strlen("libemuv-nvml.so"), s0);
        setenv("LD_PRELOAD", keep, 1);
      }
    }
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", ready_w);
    snprintf(b, sizeof b, "%d", gp[0]);
    execl(self, self, mode, a, b, (char *)NULL);
    _exit(127);
  }
  close(gp[0]);
  k->go = gp[1];
}

/* Lines of a child's stderr: how many start with "emuv: ", and whether the first says "truncated". */
static int emuv_lines(const char *path, int *says_truncated) {
  FILE *f = fopen(path, "r");
  char line[700];
  int n = 0;
  *says_truncated = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "emuv: ", 6) == 0 && n++ == 0) *says_truncated = strstr(line, "truncated") != NULL;
  if (f) fclose(f);
  return n;
}

static void round_(const char *self, const char *dir, off_t new_size, const char *name) {
  char path[600];
  snprintf(path, sizeof path, "%s/stats-%lld.bin", dir, (long long)new_size);
  setenv("EMUV_STATS_FILE", path, 1);
  int rp[2];
  if (pipe(rp) != 0) exit(2);
  struct kid k[PROCS + 1];
  char b;
  int started = 0;
  for (int i = 0; i < PROCS; i++) {
    spawn(&k[i], self, "cuda", rp[1], i, dir);
    started += read(rp[0], &b, 1) == 1;
  }
  spawn(&k[PROCS], self, "nvml", rp[1], PROCS, dir); /* after the file exists and holds usage */
  started += read(rp[0], &b, 1) == 1;
  close(rp[0]);
  close(rp[1]);
  TEST(name) {
    CHECK_EQ_U64(started, PROCS + 1);
    CHECK(truncate(path, new_size) == 0);
    for (int i = 0; i <= PROCS; i++) {
      CHECK(write(k[i].go, "g", 1) == 1);
      close(k[i].go);
    }
    for (int i = 0; i <= PROCS; i++) {
      int st = 0;
      waitpid(k[i].pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "  %s child %d: status 0x%x (%s)\n", i < PROCS ? "cuda" : "nvml", i, st,
                WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit code bits: 1 total, 2 free, 4 rest, 8 over the limit");
        t_fail_now++;
      }
      int trunc = 0;
      int lines = emuv_lines(k[i].err, &trunc);
      /* the NVML reader reads the header only: cut to the header, it has lost nothing */
      int want = i < PROCS || new_size == 0;
      if (lines != want || (want && !trunc)) {
        fprintf(stderr, "  child %d: %d emuv: lines on stderr (want exactly %d, saying truncated)\n", i, lines, want);
        t_fail_now++;
      }
      if (getenv("T_KEEP_STDERR") == NULL) unlink(k[i].err);
    }
  }
  unlink(path);
}

int main(int argc, char **argv) {
  setenv("EMUV_VRAM_SHARE", "64Mi", 1);
  setenv("EMUV_LIMIT_BYTES", "256Mi", 1);
  setenv("EMUV_OOM_RETRY", "off", 1);
  if (argc > 3 && strcmp(argv[1], "cuda") == 0) return cuda_child(atoi(argv[2]), atoi(argv[3]));
  if (argc > 3 && strcmp(argv[1], "nvml") == 0) return nvml_child(atoi(argv[2]), atoi(argv[3]));
  if (argc > 2 && strcmp(argv[1], "chain") == 0) return chain_child(argv[2], getenv("EMUV_STATS_FILE"));
  if (argc > 2 && strcmp(argv[1], "default") == 0) return default_child(argv[2], getenv("EMUV_STATS_FILE"));
  char dir[512];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-truncate-XXXXXX")) return 2;
  TEST("the application's own SIGBUS handler still gets its own faults and sent SIGBUS; emuv's fault is not its") {
    char path[600], err[640];
    snprintf(path, sizeof path, "%s/stats-chain.bin", dir);
    snprintf(err, sizeof err, "%s/chain.stderr", dir);
    setenv("EMUV_STATS_FILE", path, 1);
    pid_t p = fork();
    if (p == 0) {
      int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd < 0 || dup2(fd, 2) < 0) _exit(126);
      execl(argv[0], argv[0], "chain", dir, (char *)NULL);
      _exit(127);
    }
    int st = 0;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "  chain child: status 0x%x\n", st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int trunc = 0;
    CHECK_EQ_U64(emuv_lines(err, &trunc), 1);
    CHECK(trunc);
    unlink(err);
    unlink(path);
  }
  TEST("without a handler of the application's, a SIGBUS that is not emuv's still ends the process") {
    char path[600];
    snprintf(path, sizeof path, "%s/stats-default.bin", dir);
    setenv("EMUV_STATS_FILE", path, 1);
    pid_t p = fork();
    if (p == 0) {
      int fd = open("/dev/null", O_WRONLY);
      if (fd >= 0) dup2(fd, 2);
      execl(argv[0], argv[0], "default", dir, (char *)NULL);
      _exit(127);
    }
    int st = 0;
    waitpid(p, &st, 0);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGBUS) fprintf(stderr, "  default child: status 0x%x\n", st);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS);
    unlink(path);
  }
  round_(argv[0], dir, 0,
         "stats file truncated to 0 under 3 allocating processes and an NVML reader: all survive, one emuv: line "
         "each, per-process accounting from what each holds");
  round_(argv[0], dir, EMUV_STATS_HDR_SIZE,
         "stats file truncated to its header (the slots gone): the CUDA processes survive the same way, the NVML "
         "reader (header only) loses nothing");
  rmdir(dir);
  T_DONE();
}
