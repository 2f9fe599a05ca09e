/* Simulated NVML (libnvidia-ml.so.1): one device whose memory numbers follow the simulated driver's
 * VRAM counter (found through the global scope when the simulated libcuda.so.1 is loaded), or
 * EMUV_SIM_VRAM when NVML is loaded alone (the node agent). Identity for the agent's discovery:
 *   EMUV_SIM_PCI_BUS_ID  PCI address, default 0000:01:00.0 (reported with NVML's 8-digit domain)
 *   EMUV_SIM_NAME        product name, default "NVIDIA GeForce RTX 4060 (simulated)"
 *   EMUV_SIM_NVML_LOST   a file path: while that file exists, the device reports NVML_ERROR_GPU_IS_LOST */
#include <dlfcn.h>
#include <nvml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static int inited;
static const int dev_token = 1;

typedef unsigned long long (*u64fn)(void);

/* EMUV_SIM_VRAM alone: bytes or an integer with Ki/Mi/Gi/Ti; anything else gives the 8 GiB default. */
static unsigned long long env_vram(void) {
  const char *s = getenv("EMUV_SIM_VRAM");
  if (!s || !*s) return 8ull << 30;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  int shift = !strcmp(end, "") ? 0 : !strcmp(end, "Ki") ? 10 : !strcmp(end, "Mi") ? 20 : !strcmp(end, "Gi") ? 30 : !strcmp(end, "Ti") ? 40 : -1;
  return shift < 0 || end == s ? 8ull << 30 : v << shift;
}

static void numbers(unsigned long long *total, unsigned long long *used) {
  u64fn t = (u64fn)dlsym(RTLD_DEFAULT, "emuv_sim_vram_total");
  u64fn u = (u64fn)dlsym(RTLD_DEFAULT, "emuv_sim_vram_used");
  *total = t ? t() : env_vram();
  *used = u ? u() : 0;
}

static int lost(void) {
  const char *f = getenv("EMUV_SIM_NVML_LOST");
  return f && *f && access(f, F_OK) == 0;
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
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len) {
  if (d != (nvmlDevice_t)&dev_token || buf == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  const char *n = getenv("EMUV_SIM_NAME");
  if ((unsigned)snprintf(buf, len, "%s", n && *n ? n : "NVIDIA GeForce RTX 4060 (simulated)") >= len) return NVML_ERROR_INSUFFICIENT_SIZE;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int *minor) {
  if (d != (nvmlDevice_t)&dev_token || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *minor = 0;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci) {
  if (!inited) return NVML_ERROR_UNINITIALIZED;
  if (d != (nvmlDevice_t)&dev_token || pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  const char *a = getenv("EMUV_SIM_PCI_BUS_ID");
  unsigned dom = 0, bus = 1, dev = 0, fn = 0;
  if (a && *a && sscanf(a, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) return NVML_ERROR_UNKNOWN;
  memset(pci, 0, sizeof *pci);
  pci->domain = dom;
  pci->bus = bus;
  pci->device = dev;
  pci->pciDeviceId = 0x288210de; /* device << 16 | vendor */
  snprintf(pci->busId, sizeof pci->busId, "%08x:%02x:%02x.%x", dom, bus, dev, fn);
  snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
  if (!inited) return NVML_ERROR_UNINITIALIZED;
  if (d != (nvmlDevice_t)&dev_token || m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (lost()) return NVML_ERROR_GPU_IS_LOST;
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
