/* Simulated NVML (libnvidia-ml.so.1): one device whose memory numbers follow the simulated driver's
 * VRAM counter (found through the global scope when the simulated libcuda.so.1 is loaded). */
#include <dlfcn.h>
#include <nvml.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static int inited;
static const int dev_token = 1;

typedef unsigned long long (*u64fn)(void);

static void numbers(unsigned long long *total, unsigned long long *used) {
  u64fn t = (u64fn)dlsym(RTLD_DEFAULT, "emuv_sim_vram_total");
  u64fn u = (u64fn)dlsym(RTLD_DEFAULT, "emuv_sim_vram_used");
  *total = t ? t() : 8ull << 30;
  *used = u ? u() : 0;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { inited = 1; return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; inited = 1; return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlShutdown(void) { inited = 0; return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) {
  if (!inited) return NVML_ERROR_UNINITIALIZED;
  *n = 1;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
  if (!inited) return NVML_ERROR_UNINITIALIZED;
  if (i != 0) return NVML_ERROR_INVALID_ARGUMENT;
  *d = (nvmlDevice_t)&dev_token;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len) {
  if (d != (nvmlDevice_t)&dev_token) return NVML_ERROR_INVALID_ARGUMENT;
  snprintf(buf, len, "GPU-00000000-0000-0000-0000-000000000e11");
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
  if (!inited) return NVML_ERROR_UNINITIALIZED;
  if (d != (nvmlDevice_t)&dev_token || m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long t, u;
  numbers(&t, &u);
  m->total = t;
  m->used = u;
  m->free = u > t ? 0 : t - u;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
  if (!inited) return NVML_ERROR_UNINITIALIZED;
  if (d != (nvmlDevice_t)&dev_token || m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (m->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  unsigned long long t, u;
  numbers(&t, &u);
  m->total = t;
  m->reserved = 0;
  m->used = u;
  m->free = u > t ? 0 : t - u;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
  snprintf(buf, len, "580.159.sim");
  return NVML_SUCCESS;
}
