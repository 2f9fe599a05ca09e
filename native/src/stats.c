/* Stats file v1: creation under a short flock, slot claim and lock-free reaping (CAS on slot state). */
#include <errno.h>
#include <fcntl.h>
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

/* Moves a LIVE slot to FREE, subtracting its counters from the container totals. Only the CAS winner
 * touches the slot, so concurrent reapers (processes and the agent) never double-subtract. */
static int reap_slot(struct emuv_stats_hdr *h, struct emuv_stats_slot *s) {
  uint32_t expect = EMUV_SLOT_LIVE;
  if (!__atomic_compare_exchange_n(&s->state, &expect, (uint32_t)EMUV_SLOT_REAPING, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_RELAXED))
    return 0;
  for (unsigned d = 0; d < EMUV_STATS_MAX_DEVS; d++) {
    uint64_t v = __atomic_exchange_n(&s->dev[d].vram, 0, __ATOMIC_RELAXED);
    uint64_t hst = __atomic_exchange_n(&s->dev[d].host, 0, __ATOMIC_RELAXED);
    sub_sat(&h->tot[d].vram_used, v);
    sub_sat(&h->tot[d].host_used, hst);
    sub_sat(&h->tot[d].total_used, v + hst);
    __atomic_store_n(&s->dev[d].managed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->dev[d].pinned_host, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->dev[d].allocs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->dev[d].frees, 0, __ATOMIC_RELAXED);
  }
  uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
  __atomic_store_n(&s->seq, ((seq >> 16) + 1) << 16, __ATOMIC_RELEASE); /* a dead writer may have left updates "in progress" */
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

/* Opens (creating and formatting if needed) the stats file and claims a slot. Never fails: on any
 * problem the process keeps a private anonymous copy of the layout and accounting is per process. */
int emuv_stats_open(struct emuv_stats *s, const struct emuv_config *c, uint32_t pid) {
  memset(s, 0, sizeof *s);
  s->pid = pid;
  void *map = MAP_FAILED;
  if (c->stats_path[0] != '\0') {
    int fd = open(c->stats_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
      emuv_log(EMUV_LOG_ERROR, "cannot open %s=%s (%s); accounting is per process", EMUV_ENV_STATS_FILE,
               c->stats_path, strerror(errno));
    } else {
      int ok = 0, locked = 0;
      /* the lock is held for microseconds by whoever formats the file; never wait more than 2 s */
      for (int i = 0; i < 2000 && !locked; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) locked = 1;
        else if (errno == EWOULDBLOCK || errno == EINTR) usleep(1000);
        else break;
      }
      if (!locked)
        emuv_log(EMUV_LOG_ERROR, "%s=%s stays locked by another process; accounting is per process",
                 EMUV_ENV_STATS_FILE, c->stats_path);
      if (locked) {
        struct stat st;
        struct emuv_stats_hdr probe;
        ssize_t n = 0;
        if (fstat(fd, &st) == 0) {
          /* Processes of one container may run as different users: whoever creates the file opens it
           * to all of them, whatever the umask (the directory's sticky bit keeps it from being deleted). */
          if (st.st_uid == geteuid() && (st.st_mode & 0777) != 0666) (void)fchmod(fd, 0666);
          if (st.st_size >= (off_t)sizeof probe) n = pread(fd, &probe, sizeof probe, 0);
          if (st.st_size == 0 || (n == (ssize_t)sizeof probe && probe.magic == EMUV_STATS_MAGIC &&
                                  probe.ver_major == EMUV_STATS_VER_MAJOR && probe.init_state != EMUV_INIT_READY)) {
            /* new, or left half-initialised by a process that died under the lock: (re)format */
            struct emuv_stats_hdr *h = calloc(1, sizeof *h);
            if (h != NULL && ftruncate(fd, 0) == 0 && ftruncate(fd, EMUV_STATS_FILE_SIZE) == 0) {
              emuv_stats_format(h, c, now_ns(CLOCK_REALTIME), (n == (ssize_t)sizeof probe) ? probe.generation + 1 : 1);
              ok = pwrite(fd, h, sizeof *h, 0) == (ssize_t)sizeof *h;
            }
            free(h);
          } else if (n == (ssize_t)sizeof probe && probe.magic == EMUV_STATS_MAGIC &&
                     probe.ver_major == EMUV_STATS_VER_MAJOR && st.st_size >= EMUV_STATS_FILE_SIZE) {
            ok = 1;
            if (probe.cfg[0].vram_share != c->vram_share || probe.cfg[0].limit_bytes != c->limit)
              emuv_log(EMUV_LOG_WARN, "%s was created with another share/limit; using the file's budget counters",
                       EMUV_ENV_STATS_FILE);
          } else {
            emuv_log(EMUV_LOG_ERROR, "%s=%s is not a stats file v%d; accounting is per process",
                     EMUV_ENV_STATS_FILE, c->stats_path, EMUV_STATS_VER_MAJOR);
          }
        }
        if (ok) map = mmap(NULL, EMUV_STATS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        flock(fd, LOCK_UN);
      }
      close(fd);
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
  if (s->hdr != NULL) munmap(s->hdr, EMUV_STATS_FILE_SIZE);
  memset(s, 0, sizeof *s);
}
