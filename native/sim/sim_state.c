/* Shared by the simulated libcuda.so.1 and libnvidia-ml.so.1: messages, the card's identity, and the
 * card's VRAM usage across processes.
 *
 * The usage lives in a small MAP_SHARED file: a header with the card's total used bytes and one 64-byte
 * slot per process (pid, /proc start time, bytes held). Updates are atomics on the mapping, no lock is
 * held in shared memory. A slot whose process is gone (no such pid, a zombie, or the pid reused by a
 * younger process) is reaped by whoever looks next: its bytes leave the total, as the kernel driver frees
 * a dead process's memory. The file is EMUV_SIM_STATE, or by default
 *   ${TMPDIR:-/dev/shm}/emuv-sim-<uid>-<EMUV_SIM_VRAM in bytes>.state
 * so processes of one user that agree on the card size (and on TMPDIR) share one card. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"

/* ---- messages -------------------------------------------------------------------------------------- */

static void emit(const char *prefix, const char *fmt, va_list ap) {
  char line[768];
  int n = snprintf(line, sizeof line, "%s", prefix);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(2, line, len); /* one write: lines of concurrent threads do not interleave */
  (void)w;
}
void sim_say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit("emuv-sim: ", fmt, ap);
  va_end(ap);
}
int sim_tracing(void) {
  static int t = -1;
  if (t < 0) {
    const char *e = getenv("EMUV_SIM_TRACE");
    t = e != NULL && *e != '\0' && strcmp(e, "0") != 0;
  }
  return t;
}
void sim_trace(const char *fmt, ...) {
  if (!sim_tracing()) return;
  va_list ap;
  va_start(ap, fmt);
  emit("emuv-sim-trace: ", fmt, ap);
  va_end(ap);
}

/* ---- identity ---------------------------------------------------------------------------------------- */

/* Bytes, or an integer with Ki/Mi/Gi/Ti; anything else gives dflt. */
uint64_t sim_parse_size(const char *s, uint64_t dflt) {
  if (s == NULL || *s < '0' || *s > '9') return dflt;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  int shift = !strcmp(end, "") ? 0 : !strcmp(end, "Ki") ? 10 : !strcmp(end, "Mi") ? 20 : !strcmp(end, "Gi") ? 30
              : !strcmp(end, "Ti") ? 40 : -1;
  return shift < 0 ? dflt : (uint64_t)v << shift;
}

#ifdef SIM_CARD_AT_CALL_TIME /* NVML: the identity is read at every call (the agent's tests change it) */
static __thread struct sim_card card;
#else
static struct sim_card card;
static pthread_once_t card_once = PTHREAD_ONCE_INIT;
#endif
static void card_init(void) {
  card.vram = sim_parse_size(getenv("EMUV_SIM_VRAM"), 8ull << 30);
  const char *n = getenv("EMUV_SIM_NAME");
  snprintf(card.name, sizeof card.name, "%s", n && *n ? n : "NVIDIA GeForce RTX 4060 (simulated)");
  card.pci_bus = 1;
  const char *a = getenv("EMUV_SIM_PCI_BUS_ID");
  unsigned dom, bus, dev, fn;
  if (a && *a && sscanf(a, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) == 4) {
    card.pci_domain = dom;
    card.pci_bus = bus;
    card.pci_dev = dev;
    card.pci_fn = fn;
  }
  /* GPU-00000000-0000-0000-0000-000000000e11, as NVML prints it */
  memset(card.uuid, 0, sizeof card.uuid);
  card.uuid[14] = 0x0e;
  card.uuid[15] = 0x11;
  const char *v = getenv("EMUV_SIM_DRIVER_VERSION");
  card.driver_version = v && *v ? atoi(v) : 13000;
}
const struct sim_card *sim_card(void) {
#ifdef SIM_CARD_AT_CALL_TIME
  card_init();
#else
  pthread_once(&card_once, card_init);
#endif
  return &card;
}

/* ---- the shared usage file --------------------------------------------------------------------------- */

#define ST_MAGIC "EMUVSIM1"
#define ST_SLOTS 512u
#define ST_REAPING 0xffffffffu

struct st_hdr {
  char magic[8];
  uint32_t version, nslots;
  uint64_t vram; /* the card size of the process that created the file (informational) */
  uint64_t used; /* all slots together */
  char pad[4096 - 32];
};
struct st_slot {
  uint32_t pid; /* 0 free, ST_REAPING while a reaper clears it */
  uint32_t pad;
  uint64_t start; /* /proc/<pid>/stat start time, 0 while being claimed */
  uint64_t used;
  uint64_t pad2[5];
};
_Static_assert(sizeof(struct st_hdr) == 4096, "state header size");
_Static_assert(sizeof(struct st_slot) == 64, "state slot size");
#define ST_SIZE (sizeof(struct st_hdr) + ST_SLOTS * sizeof(struct st_slot))

static struct {
  pthread_once_t once;
  struct st_hdr *h; /* NULL: per-process accounting */
  struct st_slot *slots;
  int slot; /* this process's slot, -1 none yet */
  pid_t pid;
  uint64_t local_used; /* per-process accounting without the file */
} G = {.once = PTHREAD_ONCE_INIT, .slot = -1};

static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER; /* claiming a slot only */
static void fork_prepare(void) { pthread_mutex_lock(&slot_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&slot_mu); }
static void after_fork_child(void) { /* the child is a new process: it holds nothing on the card */
  pthread_mutex_unlock(&slot_mu);
  G.slot = -1;
  G.pid = getpid();
  G.local_used = 0;
}

static void state_path(char *buf, size_t n) {
  const char *p = getenv("EMUV_SIM_STATE");
  if (p && *p) {
    snprintf(buf, n, "%s", p);
    return;
  }
  const char *dir = getenv("TMPDIR");
  struct stat sb;
  if (dir == NULL || *dir == '\0') dir = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
  snprintf(buf, n, "%s/emuv-sim-%u-%llu.state", dir, (unsigned)getuid(), (unsigned long long)sim_card()->vram);
}

static void state_init(void) {
  G.pid = getpid();
  pthread_atfork(fork_prepare, fork_parent, after_fork_child);
  char path[1024];
  state_path(path, sizeof path);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    sim_say("cannot open the simulated card's state file %s (%s): VRAM usage is counted per process", path,
            strerror(errno));
    return;
  }
  void *m = MAP_FAILED;
  if (flock(fd, LOCK_EX) == 0) {
    struct stat sb;
    if (fstat(fd, &sb) == 0 && (sb.st_size == 0 || (size_t)sb.st_size == ST_SIZE) &&
        ((size_t)sb.st_size == ST_SIZE || ftruncate(fd, (off_t)ST_SIZE) == 0))
      m = mmap(NULL, ST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m != MAP_FAILED) {
      struct st_hdr *h = m;
      if (memcmp(h->magic, ST_MAGIC, 8) != 0) { /* new (or half-written by a process that died): format */
        memset(m, 0, ST_SIZE);
        h->version = 1;
        h->nslots = ST_SLOTS;
        h->vram = sim_card()->vram;
        __atomic_store_n(&h->used, 0, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        memcpy(h->magic, ST_MAGIC, 8);
      }
    }
    flock(fd, LOCK_UN);
  }
  close(fd);
  if (m == MAP_FAILED) {
    sim_say("the simulated card's state file %s is not usable: VRAM usage is counted per process", path);
    return;
  }
  G.h = m;
  G.slots = (struct st_slot *)((char *)m + sizeof(struct st_hdr));
}
#define STATE() pthread_once(&G.once, state_init)

static uint64_t proc_start_time(pid_t pid, char *state) {
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *s = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
  if (s == NULL || s[1] == '\0') return 0;
  s += 2;
  if (state) *state = *s;
  /* fields after the name: state(3) ... starttime(22) */
  for (int field = 3; field < 22 && s; field++) {
    s = strchr(s, ' ');
    if (s) s++;
  }
  return s ? strtoull(s, NULL, 10) : 0;
}

static int alive(pid_t pid, uint64_t start) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
  char st = '?';
  uint64_t now = proc_start_time(pid, &st);
  if (st == 'Z' || st == 'X') return 0; /* exited: its memory is gone even before it is waited for */
  if (now != 0 && start != 0 && now != start) return 0; /* the pid belongs to a younger process now */
  return 1;
}

static void sat_sub(uint64_t *v, uint64_t n) {
  uint64_t old = __atomic_load_n(v, __ATOMIC_RELAXED), nv;
  do nv = old > n ? old - n : 0;
  while (!__atomic_compare_exchange_n(v, &old, nv, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

#define SLOT() __atomic_load_n(&G.slot, __ATOMIC_ACQUIRE)
static void reap(void) {
  for (unsigned i = 0; i < ST_SLOTS; i++) {
    struct st_slot *s = &G.slots[i];
    uint32_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
    if (pid == 0 || pid == ST_REAPING || (int)i == SLOT()) continue;
    uint64_t start = __atomic_load_n(&s->start, __ATOMIC_ACQUIRE);
    if (alive((pid_t)pid, start)) continue;
    if (!__atomic_compare_exchange_n(&s->pid, &pid, ST_REAPING, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
    sat_sub(&G.h->used, __atomic_exchange_n(&s->used, 0, __ATOMIC_RELAXED));
    __atomic_store_n(&s->start, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
  }
}

static struct st_slot *my_slot(void) {
  if (SLOT() >= 0) return &G.slots[SLOT()];
  for (int pass = 0; pass < 2; pass++) {
    for (unsigned i = 0; i < ST_SLOTS; i++) {
      uint32_t z = 0;
      if (__atomic_load_n(&G.slots[i].pid, __ATOMIC_RELAXED) != 0) continue;
      if (!__atomic_compare_exchange_n(&G.slots[i].pid, &z, (uint32_t)G.pid, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        continue;
      __atomic_store_n(&G.slots[i].used, 0, __ATOMIC_RELAXED);
      __atomic_store_n(&G.slots[i].start, proc_start_time(G.pid, NULL), __ATOMIC_RELEASE);
      __atomic_store_n(&G.slot, (int)i, __ATOMIC_RELEASE);
      return &G.slots[i];
    }
    reap();
  }
  return NULL;
}

int sim_vram_charge(uint64_t n) {
  STATE();
  uint64_t vram = sim_card()->vram;
  if (G.h == NULL) {
    uint64_t old = __atomic_fetch_add(&G.local_used, n, __ATOMIC_RELAXED);
    if (old + n > vram) {
      __atomic_fetch_sub(&G.local_used, n, __ATOMIC_RELAXED);
      return 0;
    }
    return 1;
  }
  int slot = SLOT();
  struct st_slot *s = slot >= 0 ? &G.slots[slot] : NULL;
  if (s == NULL) {
    pthread_mutex_lock(&slot_mu);
    s = my_slot();
    pthread_mutex_unlock(&slot_mu);
  }
  if (s == NULL) { /* 512 processes on one card: count this one locally */
    uint64_t old = __atomic_fetch_add(&G.local_used, n, __ATOMIC_RELAXED);
    if (old + n > vram) {
      __atomic_fetch_sub(&G.local_used, n, __ATOMIC_RELAXED);
      return 0;
    }
    return 1;
  }
  __atomic_fetch_add(&s->used, n, __ATOMIC_RELAXED);
  uint64_t old = __atomic_fetch_add(&G.h->used, n, __ATOMIC_RELAXED);
  if (old + n <= vram) return 1;
  reap(); /* a dead process may still be counted */
  if (__atomic_load_n(&G.h->used, __ATOMIC_RELAXED) <= vram) return 1;
  sat_sub(&G.h->used, n);
  sat_sub(&s->used, n);
  return 0;
}

void sim_vram_uncharge(uint64_t n) {
  STATE();
  int slot = SLOT();
  if (G.h == NULL || slot < 0) {
    sat_sub(&G.local_used, n);
    return;
  }
  struct st_slot *s = &G.slots[slot];
  uint64_t old = __atomic_load_n(&s->used, __ATOMIC_RELAXED), nv;
  do nv = old > n ? old - n : 0;
  while (!__atomic_compare_exchange_n(&s->used, &old, nv, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  sat_sub(&G.h->used, old - nv);
}

void sim_vram_uncharge_all(void) {
  STATE();
  __atomic_store_n(&G.local_used, 0, __ATOMIC_RELAXED);
  int slot = SLOT();
  if (G.h == NULL || slot < 0) return;
  sat_sub(&G.h->used, __atomic_exchange_n(&G.slots[slot].used, 0, __ATOMIC_RELAXED));
}

uint64_t sim_vram_mine(void) {
  STATE();
  uint64_t n = __atomic_load_n(&G.local_used, __ATOMIC_RELAXED);
  int slot = SLOT();
  if (G.h != NULL && slot >= 0) n += __atomic_load_n(&G.slots[slot].used, __ATOMIC_RELAXED);
  return n;
}

uint64_t sim_vram_card_used(void) {
  STATE();
  uint64_t n = __atomic_load_n(&G.local_used, __ATOMIC_RELAXED);
  if (G.h == NULL) return n;
  reap();
  return n + __atomic_load_n(&G.h->used, __ATOMIC_RELAXED);
}

unsigned sim_vram_processes(struct sim_proc *out, unsigned max) {
  STATE();
  unsigned k = 0;
  if (G.h == NULL) {
    uint64_t n = __atomic_load_n(&G.local_used, __ATOMIC_RELAXED);
    if (n > 0) {
      if (max > 0) out[0] = (struct sim_proc){getpid(), n};
      k = 1;
    }
    return k;
  }
  reap();
  for (unsigned i = 0; i < ST_SLOTS; i++) {
    uint32_t pid = __atomic_load_n(&G.slots[i].pid, __ATOMIC_ACQUIRE);
    uint64_t used = __atomic_load_n(&G.slots[i].used, __ATOMIC_RELAXED);
    if (pid == 0 || pid == ST_REAPING || used == 0) continue;
    if (k < max) out[k] = (struct sim_proc){(pid_t)pid, used};
    k++;
  }
  return k;
}
