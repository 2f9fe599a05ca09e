/*
 * libemuv-nvml.so: SONAME libnvidia-ml.so.1, DT_NEEDED libemuv-real-nvml.so. Virtualises the two memory
 * queries so NVML (nvidia-smi, pynvml, torch.cuda.device_memory_used) agrees with cuMemGetInfo_v2:
 * the numbers come from libemuv-cuda.so when it is loaded in the process, else from the container's
 * stats file (read-only), else total = the limit and used = 0.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <nvml.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

#define EXPORT __attribute__((visibility("default")))
#define REAL_NAME "libemuv-real-nvml.so"

typedef nvmlReturn_t (*pfn_mem)(nvmlDevice_t, nvmlMemory_t *);
typedef nvmlReturn_t (*pfn_mem2)(nvmlDevice_t, nvmlMemory_v2_t *);
typedef int (*pfn_report)(uint64_t *, uint64_t *, uint64_t *);

static struct {
  pthread_once_t once;
  pfn_mem mem;
  pfn_mem2 mem2;
  struct emuv_config cfg;
  const struct emuv_stats_hdr *hdr; /* read-only mapping of the stats file, or NULL */
} N = {.once = PTHREAD_ONCE_INIT};

static const char *env_get(const char *n) { return getenv(n); }

static void init_once(void) {
  void *h = dlopen(REAL_NAME, RTLD_NOW | RTLD_NOLOAD);
  if (h == NULL) h = dlopen(REAL_NAME, RTLD_NOW);
  if (h != NULL) {
    N.mem = (pfn_mem)dlsym(h, "nvmlDeviceGetMemoryInfo");
    N.mem2 = (pfn_mem2)dlsym(h, "nvmlDeviceGetMemoryInfo_v2");
  }
  /* config problems are reported once, by libemuv-cuda.so, when it is in the process */
  emuv_log_quiet = dlsym(RTLD_DEFAULT, "emuv_shim_report") != NULL;
  emuv_config_load(&N.cfg, env_get);
  if (N.cfg.passthrough || N.cfg.stats_path[0] == '\0') return;
  /* a regular file of full size only: no symlink, no blocking open of a FIFO, no SIGBUS on a short file */
  int fd = open(N.cfg.stats_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return;
  struct stat st;
  void *m = MAP_FAILED;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= EMUV_STATS_FILE_SIZE)
    m = mmap(NULL, EMUV_STATS_FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return;
  emuv_stats_guard(m, EMUV_STATS_FILE_SIZE, 0, N.cfg.stats_path); /* survives a later truncation (stats.c) */
  const struct emuv_stats_hdr *hdr = m;
  if (hdr->magic == EMUV_STATS_MAGIC && hdr->ver_major == EMUV_STATS_VER_MAJOR) N.hdr = hdr;
  else {
    emuv_stats_unguard(m);
    munmap(m, EMUV_STATS_FILE_SIZE);
  }
}

/* Virtual numbers, or 0 when NVML should report the real ones. */
static int virtual_numbers(uint64_t *free_b, uint64_t *total_b, uint64_t *used_b) {
  pthread_once(&N.once, init_once);
  if (N.cfg.passthrough) return 0;
  pfn_report rep = (pfn_report)dlsym(RTLD_DEFAULT, "emuv_shim_report");
  if (rep != NULL && rep(free_b, total_b, used_b)) return 1;
  uint64_t used = 0;
  if (N.hdr != NULL) {
    used = __atomic_load_n(&N.hdr->tot[0].total_used, __ATOMIC_RELAXED);
    uint64_t ov = __atomic_load_n(&N.hdr->tot[0].overhead, __ATOMIC_RELAXED);
    used = used + ov < used ? UINT64_MAX : used + ov;
  }
  *total_b = N.cfg.limit;
  *used_b = used;
  *free_b = used >= N.cfg.limit ? 0 : N.cfg.limit - used;
  return 1;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *m) {
  pthread_once(&N.once, init_once);
  if (N.mem == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
  nvmlReturn_t r = N.mem(dev, m);
  uint64_t f, t, u;
  if (r == NVML_SUCCESS && m != NULL && virtual_numbers(&f, &t, &u)) {
    m->total = t;
    m->free = f;
    m->used = u > t ? t : u;
  }
  return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *m) {
  pthread_once(&N.once, init_once);
  if (N.mem2 == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
  nvmlReturn_t r = N.mem2(dev, m);
  uint64_t f, t, u;
  if (r == NVML_SUCCESS && m != NULL && virtual_numbers(&f, &t, &u)) {
    m->total = t;
    m->reserved = 0;
    m->free = f;
    m->used = u > t ? t : u;
  }
  return r;
}
