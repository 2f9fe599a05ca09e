/* Simulated NVML (libnvidia-ml.so.1): the one simulated GeForce RTX 4060 of the simulated driver. Its
 * memory numbers are the card's: `used` is what every process holds on it (the usage file the simulated
 * libcuda.so.1 keeps, sim_state.c), and the compute processes are those processes. Identity, read at call
 * time (the node agent's tests change them):
 *   EMUV_SIM_VRAM        card size, default 8Gi
 *   EMUV_SIM_PCI_BUS_ID  PCI address, default 0000:01:00.0 (reported with NVML's 8-digit domain)
 *   EMUV_SIM_NAME        product name, default "NVIDIA GeForce RTX 4060 (simulated)"
 *   EMUV_SIM_NVML_LOST   a file path: while that file exists, the device reports NVML_ERROR_GPU_IS_LOST
 * It exports what the node agent, PyTorch (c10/cuda's driver API table, libtorch_cuda) and nvidia-ml-py
 * reach for on a GeForce; the NVLink and fabric queries answer NVML_ERROR_NOT_SUPPORTED, as on a GeForce. */
#define NVML_NO_UNVERSIONED_FUNC_DEFS 1
#include <nvml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sim.h"

#define EXPORT __attribute__((visibility("default")))

static int inited; /* nvmlInit/nvmlShutdown are reference counted */
static const int dev_token = 1;
#define DEV ((nvmlDevice_t)&dev_token)

static int lost(void) {
  const char *f = getenv("EMUV_SIM_NVML_LOST");
  return f && *f && access(f, F_OK) == 0;
}
static nvmlReturn_t check(nvmlDevice_t d) {
  if (__atomic_load_n(&inited, __ATOMIC_RELAXED) <= 0) return NVML_ERROR_UNINITIALIZED;
  if (d != DEV) return NVML_ERROR_INVALID_ARGUMENT;
  return NVML_SUCCESS;
}
static nvmlReturn_t copy_str(char *buf, unsigned int len, const char *s) {
  if (buf == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(buf, s, strlen(s) + 1);
  return NVML_SUCCESS;
}
static void uuid_string(char *out, size_t n) {
  const unsigned char *u = sim_card()->uuid;
  snprintf(out, n, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
           u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}
/* EMUV_SIM_PCI_BUS_ID, checked at call time: a malformed value is an NVML failure, not a default. */
static int pci(unsigned *dom, unsigned *bus, unsigned *dev, unsigned *fn) {
  const char *a = getenv("EMUV_SIM_PCI_BUS_ID");
  *dom = 0, *bus = 1, *dev = 0, *fn = 0;
  return !(a && *a && sscanf(a, "%x:%x:%x.%x", dom, bus, dev, fn) != 4);
}

/* ---- init ------------------------------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlInit_v2(void) {
  __atomic_add_fetch(&inited, 1, __ATOMIC_RELAXED);
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInit_v2(); }
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
  (void)flags;
  return nvmlInit_v2();
}
EXPORT nvmlReturn_t nvmlShutdown(void) {
  int left = __atomic_sub_fetch(&inited, 1, __ATOMIC_RELAXED);
  if (left < 0) {
    __atomic_store_n(&inited, 0, __ATOMIC_RELAXED);
    return NVML_ERROR_UNINITIALIZED;
  }
  return NVML_SUCCESS;
}
EXPORT const char *nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    default: return "Unknown Error";
  }
}

/* ---- system ---------------------------------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len) { return copy_str(buf, len, "580.159.sim"); }
EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *buf, unsigned int len) { return copy_str(buf, len, "13.580.159.sim"); }
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
  if (v == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *v = sim_card()->driver_version; /* as the simulated libcuda's cuDriverGetVersion */
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return nvmlSystemGetCudaDriverVersion(v); }

/* ---- devices ---------------------------------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) {
  if (__atomic_load_n(&inited, __ATOMIC_RELAXED) <= 0) return NVML_ERROR_UNINITIALIZED;
  if (n == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *n = 1;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *n) { return nvmlDeviceGetCount_v2(n); }
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
  if (__atomic_load_n(&inited, __ATOMIC_RELAXED) <= 0) return NVML_ERROR_UNINITIALIZED;
  if (i != 0 || d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *d = DEV;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int i, nvmlDevice_t *d) { return nvmlDeviceGetHandleByIndex_v2(i, d); }
EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *id, nvmlDevice_t *d) {
  if (__atomic_load_n(&inited, __ATOMIC_RELAXED) <= 0) return NVML_ERROR_UNINITIALIZED;
  if (id == NULL || d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned dom, bus, dev, fn, qd = 0, qb, qv, qf = 0;
  if (!pci(&dom, &bus, &dev, &fn)) return NVML_ERROR_UNKNOWN;
  if (sscanf(id, "%x:%x:%x.%x", &qd, &qb, &qv, &qf) != 4) {
    qd = 0;
    if (sscanf(id, "%x:%x.%x", &qb, &qv, &qf) != 3) return NVML_ERROR_INVALID_ARGUMENT;
  }
  if (qd != dom || qb != bus || qv != dev || qf != fn) return NVML_ERROR_NOT_FOUND;
  *d = DEV;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *id, nvmlDevice_t *d) { return nvmlDeviceGetHandleByPciBusId_v2(id, d); }
EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *d) {
  if (__atomic_load_n(&inited, __ATOMIC_RELAXED) <= 0) return NVML_ERROR_UNINITIALIZED;
  if (uuid == NULL || d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  char mine[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
  uuid_string(mine, sizeof mine);
  if (strcasecmp(uuid, mine) != 0) return NVML_ERROR_NOT_FOUND;
  *d = DEV;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *i) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (i == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *i = 0;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  char u[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
  uuid_string(u, sizeof u);
  return copy_str(buf, len, u);
}
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  return copy_str(buf, len, sim_card()->name);
}
EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int *minor) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *minor = 0;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (p == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned dom, bus, dev, fn;
  if (!pci(&dom, &bus, &dev, &fn)) return NVML_ERROR_UNKNOWN;
  memset(p, 0, sizeof *p);
  p->domain = dom;
  p->bus = bus;
  p->device = dev;
  p->pciDeviceId = 0x288210de; /* AD107 (RTX 4060) << 16 | NVIDIA */
  p->pciSubSystemId = 0;
  snprintf(p->busId, sizeof p->busId, "%08x:%02x:%02x.%x", dom, bus, dev, fn);
  snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t d, nvmlPciInfo_t *p) { return nvmlDeviceGetPciInfo_v3(d, p); }
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t d, nvmlPciInfo_t *p) { return nvmlDeviceGetPciInfo_v3(d, p); }
EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (major == NULL || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *major = 8;
  *minor = 9;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetBrand(nvmlDevice_t d, nvmlBrandType_t *b) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (b == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *b = NVML_BRAND_GEFORCE;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t d, nvmlDeviceArchitecture_t *a) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (a == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *a = NVML_DEVICE_ARCH_ADA;
  return NVML_SUCCESS;
}

/* ---- memory ------------------------------------------------------------------------------------------------- */

static void numbers(unsigned long long *total, unsigned long long *used) {
  *total = sim_card()->vram;
  *used = sim_vram_card_used(); /* every process on the card, as the kernel driver counts */
  if (*used > *total) *used = *total;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (lost()) return NVML_ERROR_GPU_IS_LOST;
  unsigned long long t, u;
  numbers(&t, &u);
  m->total = t;
  m->used = u;
  m->free = t - u;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (m->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  if (lost()) return NVML_ERROR_GPU_IS_LOST;
  unsigned long long t, u;
  numbers(&t, &u);
  m->total = t;
  m->reserved = 0;
  m->used = u;
  m->free = t - u;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetBAR1MemoryInfo(nvmlDevice_t d, nvmlBAR1Memory_t *b) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (b == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  b->bar1Total = 256ull << 20;
  b->bar1Used = 2ull << 20;
  b->bar1Free = b->bar1Total - b->bar1Used;
  return NVML_SUCCESS;
}

/* Compute processes: the processes holding memory on the card. The caller passes its array's capacity;
 * too small (or no array while there are processes) gives the count and NVML_ERROR_INSUFFICIENT_SIZE. */
static nvmlReturn_t processes(nvmlDevice_t d, unsigned int *count, void *infos, int v2) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  struct sim_proc procs[64];
  unsigned n = sim_vram_processes(procs, 64);
  if (n > 64) n = 64;
  if (infos == NULL || *count < n) {
    unsigned cap = *count;
    *count = n;
    return n == 0 || (infos != NULL && cap >= n) ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (unsigned i = 0; i < n; i++) {
    if (v2) {
      nvmlProcessInfo_v2_t *p = (nvmlProcessInfo_v2_t *)infos + i;
      p->pid = (unsigned)procs[i].pid;
      p->usedGpuMemory = procs[i].used;
      p->gpuInstanceId = p->computeInstanceId = 0xFFFFFFFFu; /* no MIG */
    } else {
      nvmlProcessInfo_v1_t *p = (nvmlProcessInfo_v1_t *)infos + i;
      p->pid = (unsigned)procs[i].pid;
      p->usedGpuMemory = procs[i].used;
    }
  }
  *count = n;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_v1_t *p) {
  return processes(d, n, p, 0);
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_v2_t *p) {
  return processes(d, n, p, 1);
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_t *p) {
  return processes(d, n, p, 1);
}
static nvmlReturn_t none(nvmlDevice_t d, unsigned int *n) { /* no graphics or MPS clients on a simulated card */
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (n == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *n = 0;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_v1_t *p) {
  (void)p;
  return none(d, n);
}
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_v2_t *p) {
  (void)p;
  return none(d, n);
}
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_t *p) {
  (void)p;
  return none(d, n);
}
EXPORT nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *n, nvmlProcessInfo_t *p) {
  (void)p;
  return none(d, n);
}

/* ---- interconnect: a GeForce has no NVLink and no fabric ---------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetNvLinkRemoteDeviceType(nvmlDevice_t d, unsigned int link, nvmlIntNvLinkDeviceType_t *t) {
  (void)link;
  (void)t;
  nvmlReturn_t r = check(d);
  return r != NVML_SUCCESS ? r : NVML_ERROR_NOT_SUPPORTED;
}
EXPORT nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t d, unsigned int link, nvmlPciInfo_t *p) {
  (void)link;
  (void)p;
  nvmlReturn_t r = check(d);
  return r != NVML_SUCCESS ? r : NVML_ERROR_NOT_SUPPORTED;
}
EXPORT nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t d, unsigned int link, nvmlEnableState_t *s) {
  (void)link;
  (void)s;
  nvmlReturn_t r = check(d);
  return r != NVML_SUCCESS ? r : NVML_ERROR_NOT_SUPPORTED;
}
EXPORT nvmlReturn_t nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t d, nvmlGpuFabricInfoV_t *f) {
  (void)f;
  nvmlReturn_t r = check(d);
  return r != NVML_SUCCESS ? r : NVML_ERROR_NOT_SUPPORTED;
}
EXPORT nvmlReturn_t nvmlDeviceGetGpuFabricInfo(nvmlDevice_t d, nvmlGpuFabricInfo_t *f) {
  (void)f;
  nvmlReturn_t r = check(d);
  return r != NVML_SUCCESS ? r : NVML_ERROR_NOT_SUPPORTED;
}
EXPORT nvmlReturn_t nvmlDeviceGetP2PStatus(nvmlDevice_t a, nvmlDevice_t b, nvmlGpuP2PCapsIndex_t i, nvmlGpuP2PStatus_t *s) {
  (void)i;
  nvmlReturn_t r = check(a);
  if (r == NVML_SUCCESS) r = check(b);
  if (r != NVML_SUCCESS) return r;
  if (s == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *s = NVML_P2P_STATUS_NOT_SUPPORTED; /* one GPU: no peer */
  return NVML_SUCCESS;
}

/* ---- state, clocks, power: an idle card ------------------------------------------------------------------------ */

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (u == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  u->gpu = 0; /* nothing ever runs on it */
  u->memory = 0;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, nvmlTemperatureSensors_t s, unsigned int *t) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (t == NULL || s != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  *t = 35;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (mw == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *mw = 12000;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (mw == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *mw = 115000; /* the RTX 4060's 115 W */
  return NVML_SUCCESS;
}
static unsigned clock_of(nvmlClockType_t t, int max) {
  switch (t) {
    case NVML_CLOCK_GRAPHICS:
    case NVML_CLOCK_SM: return max ? 3105 : 2460;
    case NVML_CLOCK_MEM: return max ? 8501 : 8501;
    case NVML_CLOCK_VIDEO: return max ? 2415 : 1950;
    default: return 0;
  }
}
EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, nvmlClockType_t t, unsigned int *mhz) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (mhz == NULL || clock_of(t, 0) == 0) return NVML_ERROR_INVALID_ARGUMENT;
  *mhz = clock_of(t, 0);
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t d, nvmlClockType_t t, unsigned int *mhz) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (mhz == NULL || clock_of(t, 1) == 0) return NVML_ERROR_INVALID_ARGUMENT;
  *mhz = clock_of(t, 1);
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t d, nvmlPstates_t *p) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (p == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *p = NVML_PSTATE_8;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t d, unsigned int *s) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (s == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *s = 0; /* zero-RPM fan mode when idle */
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t d, nvmlEnableState_t *m) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *m = NVML_FEATURE_DISABLED;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t d, nvmlComputeMode_t *m) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *m = NVML_COMPUTEMODE_DEFAULT;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t d, unsigned int *g) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (g == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *g = 4;
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t d, unsigned int *g) { return nvmlDeviceGetCurrPcieLinkGeneration(d, g); }
EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t d, unsigned int *w) {
  nvmlReturn_t r = check(d);
  if (r != NVML_SUCCESS) return r;
  if (w == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *w = 8; /* the RTX 4060 is a PCIe 4.0 x8 card */
  return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t d, unsigned int *w) { return nvmlDeviceGetCurrPcieLinkWidth(d, w); }
static nvmlReturn_t geforce_lacks(nvmlDevice_t d) {
  nvmlReturn_t r = check(d);
  return r != NVML_SUCCESS ? r : NVML_ERROR_NOT_SUPPORTED;
}
EXPORT nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t d, nvmlEnableState_t *c, nvmlEnableState_t *p) {
  (void)c;
  (void)p;
  return geforce_lacks(d);
}
EXPORT nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t d, char *s, unsigned int n) {
  (void)s;
  (void)n;
  return geforce_lacks(d);
}
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *c, unsigned int *p) {
  (void)c;
  (void)p;
  return geforce_lacks(d);
}
