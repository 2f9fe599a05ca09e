/* Stats file v1: creation under a short flock, slot claim and lock-free reaping (CAS on slot state). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

#define A_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define A_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

void emuv_stats_format(struct emuv_stats_hdr *h, const struct emuv_config *c, uint64_t created_ns,
                       uint64_t generation) {
  memset(h, 0, sizeof *h);
  h->magic = EMUV_STATS_MAGIC;
  h->ver_major = EMUV_STATS_VER_MAJOR;
  h->ver_minor = EMUV_STATS_VER_MINOR;
  h->hdr_size = EMUV_STATS_HDR_SIZE;
  h->slot_size = EMUV_STATS_SLOT_SIZE;
  h->max_slots = EMUV_STATS_MAX_SLOTS;
  h->max_devs = EMUV_STATS_MAX_DEVS;
  h->ndevs = 1;
  h->generation = generation;
  h->created_ns = created_ns;
  h->vram_mode = (uint32_t)c->mode;
  h->contract_version = EMUV_CONTRACT_VERSION;
  snprintf(h->gpu, sizeof h->gpu, "%s", c->gpu);
  h->cfg[0].vram_share = c->vram_share;
  h->cfg[0].limit_bytes = c->limit;
  h->cfg[0].host_share = c->limit - c->vram_share;
  h->cfg[0].headroom = c->headroom;
  h->cfg[0].large_threshold = c->large_threshold;
  A_STORE(&h->init_state, (uint32_t)EMUV_INIT_READY);
}

static uint64_t now_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Field 22 of /proc/<pid>/stat (start time in clock ticks); 0 when unreadable. */
uint64_t emuv_proc_start_time(uint32_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%u/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* comm may contain spaces */
  if (p == NULL) return 0;
  int field = 2;
  for (; *p && field < 22; p++)
    if (*p == ' ') field++;
  unsigned long long v = 0;
  if (sscanf(p, "%llu", &v) != 1) return 0;
  return v;
}

static void sub_sat(uint64_t *p, uint64_t v) {
  uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
  for (;;) {
    uint64_t nv = old > v ? old - v : 0;
    if (__atomic_compare_exchange_n(p, &old, nv, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
  }
}

/* Moves a LIVE slot to FREE, subtracting what it held from the container totals. Only the CAS winner
 * touches the slot, so concurrent reapers (processes and the agent) never double-subtract. A slot with
 * EMUV_SLOT_F_HELD gives back its held counters (in-flight reservations included, see budget.c); a slot
 * of a minor-0 writer gives back its committed vram and host. */
static int reap_slot(struct emuv_stats_hdr *h, struct emuv_stats_slot *s) {
  uint32_t expect = EMUV_SLOT_LIVE;
  if (!__atomic_compare_exchange_n(&s->state, &expect, (uint32_t)EMUV_SLOT_REAPING, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_RELAXED))
    return 0;
  int held = (__atomic_load_n(&s->flags, __ATOMIC_RELAXED) & EMUV_SLOT_F_HELD) != 0;
  uint64_t ht = __atomic_exchange_n(&s->held_total, 0, __ATOMIC_RELAXED);
  uint64_t hv = __atomic_exchange_n(&s->held_vram, 0, __ATOMIC_RELAXED);
  uint64_t hh = __atomic_exchange_n(&s->held_host, 0, __ATOMIC_RELAXED);
  for (unsigned d = 0; d < EMUV_STATS_MAX_DEVS; d++) {
    uint64_t v = __atomic_exchange_n(&s->dev[d].vram, 0, __ATOMIC_RELAXED);
    uint64_t hst = __atomic_exchange_n(&s->dev[d].host, 0, __ATOMIC_RELAXED);
    if (held && d == 0) {
      v = hv;
      hst = hh;
    }
    uint64_t t = held && d == 0 ? ht : v + hst;
    if (t < v) t = UINT64_MAX; /* v + hst wrapped (a corrupt slot): saturate */
    sub_sat(&h->tot[d].vram_used, v);
    sub_sat(&h->tot[d].host_used, hst);
    sub_sat(&h->tot[d].total_used, t);
    __atomic_store_n(&s->dev[d].managed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->dev[d].pinned_host, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->dev[d].allocs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->dev[d].frees, 0, __ATOMIC_RELAXED);
  }
  uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
  __atomic_store_n(&s->seq, ((seq >> 16) + 1) << 16, __ATOMIC_RELEASE); /* a dead writer may have left updates "in progress" */
  __atomic_store_n(&s->flags, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&s->pid, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&s->start_time, 0, __ATOMIC_RELAXED);
  A_STORE(&s->state, (uint32_t)EMUV_SLOT_FREE);
  return 1;
}

static struct emuv_stats_slot *slot_at(struct emuv_stats_hdr *h, unsigned i) {
  return (struct emuv_stats_slot *)((char *)h + EMUV_STATS_HDR_SIZE + (size_t)i * EMUV_STATS_SLOT_SIZE);
}

unsigned emuv_stats_reap(struct emuv_stats_hdr *h, uint32_t self_pid) {
  unsigned reaped = 0;
  for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
    struct emuv_stats_slot *s = slot_at(h, i);
    if (A_LOAD(&s->state) != EMUV_SLOT_LIVE) continue;
    uint32_t pid = __atomic_load_n(&s->pid, __ATOMIC_RELAXED);
    if (pid == self_pid) continue;
    int dead = 0;
    if (pid == 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) dead = 1;
    else {
      uint64_t st = __atomic_load_n(&s->start_time, __ATOMIC_RELAXED);
      uint64_t cur = emuv_proc_start_time(pid);
      if (st != 0 && cur != 0 && st != cur) dead = 1; /* pid reused by another process */
    }
    if (dead) reaped += (unsigned)reap_slot(h, s);
  }
  return reaped;
}

struct emuv_stats_slot *emuv_stats_claim(struct emuv_stats_hdr *h, uint32_t pid, uint64_t start_time,
                                         uint64_t now) {
  for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
    struct emuv_stats_slot *s = slot_at(h, i);
    uint32_t expect = EMUV_SLOT_FREE;
    if (!__atomic_compare_exchange_n(&s->state, &expect, (uint32_t)EMUV_SLOT_CLAIMING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
      continue;
    __atomic_store_n(&s->pid, pid, __ATOMIC_RELAXED);
    __atomic_store_n(&s->host_pid, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->held_total, 0, __ATOMIC_RELAXED); /* a minor-0 reaper leaves them as they were */
    __atomic_store_n(&s->held_vram, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->held_host, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->flags, EMUV_SLOT_F_HELD, __ATOMIC_RELAXED);
    __atomic_store_n(&s->start_time, start_time, __ATOMIC_RELAXED);
    __atomic_store_n(&s->last_update_ns, now, __ATOMIC_RELAXED);
    A_STORE(&s->state, (uint32_t)EMUV_SLOT_LIVE);
    return s;
  }
  return NULL;
}

void emuv_stats_release_slot(struct emuv_stats_hdr *h, struct emuv_stats_slot *s) {
  if (s != NULL) reap_slot(h, s);
}

/* ---- SIGBUS guard ---------------------------------------------------------------------------------
 *
 * Any process of the container may truncate the stats file; every page of a MAP_SHARED mapping beyond the
 * new end of file then raises SIGBUS on its next touch, in every process that maps it. Checking the size
 * before each touch would be racy and cost a syscall per allocation, so the mappings are guarded instead:
 * a SIGBUS whose fault address lies in a guarded mapping replaces that whole mapping, at the same address,
 * with private zeroed memory (one mmap MAP_FIXED, async-signal-safe) and returns, so the faulting access is
 * simply retried on the private copy; the thread never leaves its code path, no longjmp, and nothing is
 * added to the hot path. The one "emuv:" line is written from the handler with write(2), composed
 * beforehand. budget.c notices the loss on its next call (one relaxed load) and restores this process's
 * own holdings into the private counters: from then on accounting is per process.
 *
 * The handler is installed once, when the first mapping is guarded, and it chains: every SIGBUS that is
 * not a fault in a guarded mapping (any other address, or a SIGBUS sent by kill/raise) goes to the
 * action that was installed before it (called as it asks, SA_SIGINFO or not; SIG_DFL and SIG_IGN are
 * reproduced by restoring the default and re-raising or retrying the access). An application that installs
 * its own SIGBUS handler later replaces this one: its handler then sees the faults, as without emuv. */
#define GUARDS 4
enum { G_FREE, G_LIVE, G_REPLACING, G_LOST, G_RECOVERED, G_FAILED };
static struct guard {
  uintptr_t base; /* published last (release); 0 = free */
  size_t len;
  int writable;
  int state;
  size_t msg_len;
  char msg[400];
} guards[GUARDS];
static struct sigaction prev_bus;
static unsigned stale_faults;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
int emuv_stats_lost_pending;

static void bus_default(int sig, const siginfo_t *si) {
  struct sigaction d;
  memset(&d, 0, sizeof d);
  d.sa_handler = SIG_DFL;
  sigemptyset(&d.sa_mask);
  sigaction(sig, &d, NULL);
  if (si == NULL || si->si_code <= 0) raise(sig); /* sent: delivered when the handler returns */
  /* a fault: the access is retried on return and now gets the default action */
}

static void bus_chain(int sig, siginfo_t *si, void *uc) {
  const struct sigaction *p = &prev_bus;
  if (p->sa_handler == SIG_IGN) {
    if (si != NULL && si->si_code > 0) bus_default(sig, si); /* the kernel does not let a fault be ignored */
    return;
  }
  if (p->sa_handler == SIG_DFL) {
    bus_default(sig, si);
    return;
  }
  if (p->sa_flags & SA_SIGINFO) p->sa_sigaction(sig, si, uc);
  else p->sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  int saved = errno;
  if (si != NULL && si->si_code > 0) { /* raised by the kernel for a fault at si_addr */
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < GUARDS; i++) {
      struct guard *g = &guards[i];
      uintptr_t base = __atomic_load_n(&g->base, __ATOMIC_ACQUIRE);
      if (base <= 1 || a < base || a - base >= g->len) continue;
      int st = G_LIVE;
      if (__atomic_compare_exchange_n(&g->state, &st, G_REPLACING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        void *m = mmap((void *)base, g->len, PROT_READ | (g->writable ? PROT_WRITE : 0),
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (m == MAP_FAILED) {
          __atomic_store_n(&g->state, G_FAILED, __ATOMIC_RELEASE);
          break; /* cannot recover: behave as without emuv */
        }
        if (!emuv_log_quiet) {
          ssize_t w = write(2, g->msg, g->msg_len);
          (void)w;
        }
        if (g->writable) __atomic_fetch_add(&emuv_stats_lost_pending, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&g->state, G_LOST, __ATOMIC_RELEASE);
      } else {
        while (st == G_REPLACING) { /* another thread is replacing it: wait, then retry the access */
          sched_yield();
          st = __atomic_load_n(&g->state, __ATOMIC_ACQUIRE);
        }
        if (st == G_FAILED) break;
        /* already replaced: a fault taken on the old mapping by another thread; its retry lands on the
         * private copy. Private anonymous memory does not raise SIGBUS, so this is bounded by the number of
         * threads; a bound keeps a never-expected fault in the private copy from looping forever. */
        if (__atomic_add_fetch(&stale_faults, 1, __ATOMIC_RELAXED) > 100000) break;
      }
      errno = saved;
      return;
    }
  }
  bus_chain(sig, si, uc);
  errno = saved;
}

static void bus_install(void) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  /* read the current action before installing: prev_bus must be complete before the handler can run */
  if (sigaction(SIGBUS, NULL, &prev_bus) != 0) return;
  if (sigaction(SIGBUS, &sa, &old) != 0) return;
  if (old.sa_handler != prev_bus.sa_handler || old.sa_flags != prev_bus.sa_flags) prev_bus = old;
}

int emuv_stats_guard(void *base, size_t len, int writable, const char *path) {
  pthread_once(&bus_once, bus_install);
  for (int i = 0; i < GUARDS; i++) {
    struct guard *g = &guards[i];
    uintptr_t zero = 0;
    /* reserve the entry with a placeholder, fill it, then publish the real base */
    if (!__atomic_compare_exchange_n(&g->base, &zero, (uintptr_t)1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
    g->len = len;
    g->writable = writable;
    char q[240];
    int n = snprintf(g->msg, sizeof g->msg,
                     "emuv: %s=%s was truncated under this process (another process shrank it); %s\n",
                     EMUV_ENV_STATS_FILE, emuv_quote(path, 160, q, sizeof q),
                     writable ? "the shared budget is off, accounting is per process from now on"
                              : "NVML no longer sees the container's usage");
    g->msg_len = n < 0 ? 0 : (size_t)n < sizeof g->msg ? (size_t)n : sizeof g->msg - 1;
    __atomic_store_n(&g->state, G_LIVE, __ATOMIC_RELAXED);
    __atomic_store_n(&g->base, (uintptr_t)base, __ATOMIC_RELEASE);
    return 0;
  }
  return -1;
}

void emuv_stats_unguard(void *base) {
  for (int i = 0; i < GUARDS; i++) {
    struct guard *g = &guards[i];
    if (__atomic_load_n(&g->base, __ATOMIC_ACQUIRE) != (uintptr_t)base) continue;
    int st = __atomic_exchange_n(&g->state, G_FREE, __ATOMIC_ACQ_REL);
    if (st == G_LOST && g->writable) __atomic_fetch_sub(&emuv_stats_lost_pending, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&g->base, 0, __ATOMIC_RELEASE);
  }
}

int emuv_stats_take_lost(const void *addr) {
  uintptr_t a = (uintptr_t)addr;
  for (int i = 0; i < GUARDS; i++) {
    struct guard *g = &guards[i];
    uintptr_t base = __atomic_load_n(&g->base, __ATOMIC_ACQUIRE);
    if (base <= 1 || a < base || a - base >= g->len || !g->writable) continue;
    int st = G_LOST;
    if (__atomic_compare_exchange_n(&g->state, &st, G_RECOVERED, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      __atomic_fetch_sub(&emuv_stats_lost_pending, 1, __ATOMIC_RELEASE);
      return 1;
    }
  }
  return 0;
}

/* ---- opening the file ------------------------------------------------------------------------------ */

static void own_reset_child(void) { /* the child's allocation table starts empty (emuv_cuda.c) */
  __atomic_store_n(&emuv_own.vram, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&emuv_own.host, 0, __ATOMIC_RELAXED);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void atfork_register(void) { pthread_atfork(NULL, NULL, own_reset_child); }

static const char *kind_of(mode_t m) {
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

/* Opens the stats file: a regular file, never through a symbolic link (anyone in the container can plant
 * one in the shared directory), never blocking (a FIFO), never a device. Creates it
 * with O_EXCL, so only a file this call created is opened to every user (mode 0666) before it is a stats
 * file. Returns the descriptor, or -1 with the reason in why. */
static int open_stats(const char *path, int *created, char *why, size_t cap) {
  struct stat st;
  *created = 0;
  if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* refuse before opening: opening a device may act */
    snprintf(why, cap, "is %s", kind_of(st.st_mode));
    return -1;
  }
  const int fl = O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
  int fd = open(path, fl);
  if (fd < 0 && errno == ENOENT) {
    fd = open(path, fl | O_CREAT | O_EXCL, 0666);
    if (fd >= 0) *created = 1;
    else if (errno == EEXIST) fd = open(path, fl); /* another process created it meanwhile */
  }
  if (fd < 0) {
    if (errno == ELOOP) snprintf(why, cap, "is a symbolic link");
    else snprintf(why, cap, "cannot be opened (%s)", strerror(errno));
    return -1;
  }
  const char *bad = NULL;
  if (fstat(fd, &st) != 0) snprintf(why, cap, "cannot be examined (%s)", strerror(errno)), bad = why;
  else if (!S_ISREG(st.st_mode)) snprintf(why, cap, "is %s", kind_of(st.st_mode)), bad = why;
  if (bad != NULL) {
    close(fd);
    return -1;
  }
  /* Processes of one container may run as different users: the creator opens the file to all of them,
   * whatever the umask (the directory's sticky bit keeps it from being deleted). */
  if (*created) (void)fchmod(fd, 0666);
  return fd;
}

static int valid_v1(const struct emuv_stats_hdr *p) {
  return p->magic == EMUV_STATS_MAGIC && p->ver_major == EMUV_STATS_VER_MAJOR && p->hdr_size == EMUV_STATS_HDR_SIZE &&
         p->slot_size == EMUV_STATS_SLOT_SIZE && p->max_slots == EMUV_STATS_MAX_SLOTS &&
         p->max_devs == EMUV_STATS_MAX_DEVS;
}

/* Under the file lock: formats a new or half-initialised file, or checks an existing one. Returns 1 when
 * the file is a usable stats file v1, else 0 with the reason in why. Writes nothing to a file that is not
 * a stats file (or an empty one). */
static int prepare_locked(int fd, const struct emuv_config *c, char *why, size_t cap) {
  struct stat st;
  struct emuv_stats_hdr probe;
  ssize_t n = 0;
  if (fstat(fd, &st) != 0) {
    snprintf(why, cap, "cannot be examined (%s)", strerror(errno));
    return 0;
  }
  if (st.st_size >= (off_t)sizeof probe) n = pread(fd, &probe, sizeof probe, 0);
  int whole = n == (ssize_t)sizeof probe;
  int fresh = st.st_size == 0 || (whole && probe.magic == EMUV_STATS_MAGIC && probe.ver_major == EMUV_STATS_VER_MAJOR &&
                                  probe.init_state != EMUV_INIT_READY);
  if (fresh && st.st_nlink != 1) { /* a hard link planted to someone else's empty file: never write into it */
    snprintf(why, cap, "has %lu links and is not formatted (left as it is)", (unsigned long)st.st_nlink);
    return 0;
  }
  if (fresh) {
    /* new, or left half-initialised by a process that died under the lock: (re)format. The header goes
     * in as BUSY before the file grows and READY is written last, so a process killed anywhere in here
     * leaves a file the next one formats again. */
    struct emuv_stats_hdr *h = calloc(1, sizeof *h);
    static const uint32_t ready = EMUV_INIT_READY;
    int ok = 0;
    if (h != NULL) {
      emuv_stats_format(h, c, now_ns(CLOCK_REALTIME), whole ? probe.generation + 1 : 1);
      h->init_state = EMUV_INIT_BUSY;
      ok = ftruncate(fd, 0) == 0 && pwrite(fd, h, sizeof *h, 0) == (ssize_t)sizeof *h &&
           ftruncate(fd, EMUV_STATS_FILE_SIZE) == 0 &&
           pwrite(fd, &ready, sizeof ready, offsetof(struct emuv_stats_hdr, init_state)) == (ssize_t)sizeof ready;
    }
    if (!ok) snprintf(why, cap, "cannot be initialised (%s)", h == NULL ? "out of memory" : strerror(errno));
    free(h);
    /* now a stats file this process made: open it to every user (a creator may have died before) */
    if (ok && st.st_uid == geteuid() && (st.st_mode & 0777) != 0666) (void)fchmod(fd, 0666);
    return ok;
  }
  if (whole && valid_v1(&probe) && st.st_size >= EMUV_STATS_FILE_SIZE) {
    if (probe.cfg[0].vram_share != c->vram_share || probe.cfg[0].limit_bytes != c->limit)
      emuv_log(EMUV_LOG_WARN, "%s was created with another share/limit; using the file's budget counters",
               EMUV_ENV_STATS_FILE);
    return 1;
  }
  snprintf(why, cap, "is not a stats file v%d (left as it is)", EMUV_STATS_VER_MAJOR);
  return 0;
}

/* Opens (creating and formatting if needed) the stats file and claims a slot. Never fails: on any
 * problem the process keeps a private anonymous copy of the layout, accounting is per process, and one
 * "emuv:" line says why. */
int emuv_stats_open(struct emuv_stats *s, const struct emuv_config *c, uint32_t pid) {
  memset(s, 0, sizeof *s);
  s->pid = pid;
  pthread_once(&atfork_once, atfork_register);
  void *map = MAP_FAILED;
  if (c->stats_path[0] != '\0') {
    char why[200] = "";
    int created = 0;
    int fd = open_stats(c->stats_path, &created, why, sizeof why);
    if (fd >= 0) {
      int locked = 0;
      /* the lock is held for microseconds by whoever formats the file; never wait more than 2 s */
      for (int i = 0; i < 2000 && !locked; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) locked = 1;
        else if (errno == EWOULDBLOCK || errno == EINTR) usleep(1000);
        else break;
      }
      if (!locked) snprintf(why, sizeof why, "stays locked by another process");
      else {
        if (prepare_locked(fd, c, why, sizeof why)) {
          map = mmap(NULL, EMUV_STATS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
          if (map == MAP_FAILED) snprintf(why, sizeof why, "cannot be mapped (%s)", strerror(errno));
          else emuv_stats_guard(map, EMUV_STATS_FILE_SIZE, 1, c->stats_path); /* before the first touch */
        }
        flock(fd, LOCK_UN);
      }
      close(fd);
    }
    if (map == MAP_FAILED) {
      char q[240];
      emuv_log(EMUV_LOG_ERROR, "%s=%s %s; the shared budget is off, accounting is per process", EMUV_ENV_STATS_FILE,
               emuv_quote(c->stats_path, 160, q, sizeof q), why);
    }
  }
  if (map != MAP_FAILED) {
    s->shared = 1;
    s->hdr = map;
    emuv_stats_reap(s->hdr, pid);
  } else {
    map = mmap(NULL, EMUV_STATS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return -1;
    s->hdr = map;
    emuv_stats_format(s->hdr, c, now_ns(CLOCK_REALTIME), 1);
  }
  s->slot = emuv_stats_claim(s->hdr, pid, s->shared ? emuv_proc_start_time(pid) : 0, now_ns(CLOCK_REALTIME));
  if (s->slot == NULL) emuv_log(EMUV_LOG_WARN, "all %d stats slots are taken; this process is counted in totals only",
                                EMUV_STATS_MAX_SLOTS);
  return 0;
}

void emuv_stats_close(struct emuv_stats *s) {
  if (s->hdr != NULL) {
    if (s->shared) emuv_stats_unguard(s->hdr);
    munmap(s->hdr, EMUV_STATS_FILE_SIZE);
  }
  memset(s, 0, sizeof *s);
}
