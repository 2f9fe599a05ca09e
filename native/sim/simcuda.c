/*
 * Simulated CUDA driver (libcuda.so.1) for tests and demos: one GeForce RTX 4060 (compute capability
 * 8.9, 24 SMs, 8 GiB) whose "VRAM" is host memory. Device pointers are host addresses (unified
 * addressing), so programs and tests read and write them directly; copies and memsets are done at once
 * (every stream is always idle); VMM is real mapping (PROT_NONE reservations, memfd handles, MAP_FIXED
 * mappings, mprotect for access). Kernels cannot run: launches fail with CUDA_ERROR_NOT_SUPPORTED and
 * one emuv-sim: line. NVIDIA's runtime (cudart 12 and 13), PyTorch, CuPy and cuda-bindings run their
 * initialisation, query, allocation and copy paths on it, including the private export tables
 * (private_tables.c). docs/simulated-driver.md describes it in full.
 *
 * This file: initialisation, the device, contexts, the handle registry, cuGetProcAddress, errors and the
 * test introspection exports. sim_memory.c: allocations, copies, VMM, pools, pointer queries.
 * sim_exec.c: streams, events, modules, libraries, functions, launches.
 *
 * Environment: EMUV_SIM_VRAM (size, default 8Gi), EMUV_SIM_DRIVER_VERSION (default 13000),
 * EMUV_SIM_HOST_VMM (numa|host|both|none, default both), EMUV_SIM_FAIL (<export>:<n>[:<error>], the
 * n-th call of that export fails with <error>, default 2 = CUDA_ERROR_OUT_OF_MEMORY), EMUV_SIM_NAME,
 * EMUV_SIM_PCI_BUS_ID, EMUV_SIM_STATE (the card's usage file shared by processes), EMUV_SIM_TRACE.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_driver.h"
#include "sim_table.h"

static struct {
  pthread_once_t once;
  int version;
  char fail_name[128];
  long fail_at, fail_calls;
  int fail_err;
  int inited;
} S = {.once = PTHREAD_ONCE_INIT};

static __thread char tl_last[160];

static void sim_init(void) {
  S.version = sim_card()->driver_version;
  const char *f = getenv("EMUV_SIM_FAIL");
  if (f != NULL) {
    char name[128];
    long at = 0;
    int err = CUDA_ERROR_OUT_OF_MEMORY;
    if (sscanf(f, "%127[^:]:%ld:%d", name, &at, &err) >= 2) {
      snprintf(S.fail_name, sizeof S.fail_name, "%s", name);
      S.fail_at = at;
      S.fail_err = err;
    }
  }
}
#define INIT() pthread_once(&S.once, sim_init)

int sim_driver_version(void) {
  INIT();
  return S.version;
}
int sim_is_inited(void) { return S.inited; }

CUresult sim_injected(const char *name) {
  INIT();
  if (S.fail_at == 0 || strcmp(name, S.fail_name) != 0) return CUDA_SUCCESS;
  long n = __atomic_add_fetch(&S.fail_calls, 1, __ATOMIC_RELAXED);
  return n == S.fail_at ? (CUresult)S.fail_err : CUDA_SUCCESS;
}

void sim_set_last(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tl_last, sizeof tl_last, fmt, ap);
  va_end(ap);
}

/* One emuv-sim: line per distinct `what` (a bounded set of names), then silence. */
static pthread_mutex_t said_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *said[256];
static unsigned nsaid;
CUresult sim_not_simulated(const char *what, CUresult r) {
  pthread_mutex_lock(&said_mu);
  int seen = 0;
  for (unsigned i = 0; i < nsaid && !seen; i++) seen = strcmp(said[i], what) == 0;
  if (!seen && nsaid < sizeof said / sizeof said[0]) said[nsaid++] = what;
  pthread_mutex_unlock(&said_mu);
  if (!seen) sim_say("%s", what);
  return r;
}

/* Every export not simulated (the generated weak definitions in build/gen/sim_exports.c) lands here. */
int sim_unimplemented(const char *name) {
  snprintf(tl_last, sizeof tl_last, "%s (not simulated)", name);
  pthread_mutex_lock(&said_mu);
  int seen = 0;
  for (unsigned i = 0; i < nsaid && !seen; i++) seen = strcmp(said[i], name) == 0;
  if (!seen && nsaid < sizeof said / sizeof said[0]) said[nsaid++] = name;
  pthread_mutex_unlock(&said_mu);
  if (!seen) sim_say("%s is not simulated: CUDA_ERROR_NOT_SUPPORTED", name);
  return CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- handle registry ------------------------------------------------------------------------------------ */

#define NBUCKETS 4096u
static struct obj *buckets[NBUCKETS];
static pthread_mutex_t obj_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned bucket(const void *p) { return (unsigned)(((uintptr_t)p >> 4) * 0x9E3779B1u >> 20) & (NBUCKETS - 1); }

void obj_register(void *p, enum obj_type t, struct ctx *owner) {
  struct obj *o = p;
  o->type = t;
  o->ctx = owner;
  pthread_mutex_lock(&obj_mu);
  unsigned b = bucket(o);
  o->hnext = buckets[b];
  buckets[b] = o;
  pthread_mutex_unlock(&obj_mu);
}
void obj_unregister(void *p) {
  pthread_mutex_lock(&obj_mu);
  for (struct obj **q = &buckets[bucket(p)]; *q; q = &(*q)->hnext)
    if (*q == p) {
      *q = (*q)->hnext;
      break;
    }
  pthread_mutex_unlock(&obj_mu);
}
void *obj_get(const void *p, enum obj_type t) {
  if (p == NULL) return NULL;
  pthread_mutex_lock(&obj_mu);
  struct obj *o = buckets[bucket(p)];
  while (o != NULL && (const void *)o != p) o = o->hnext;
  if (o != NULL && o->type != t) o = NULL;
  pthread_mutex_unlock(&obj_mu);
  return o;
}
void obj_drop_owned(struct ctx *c, void (*fn)(struct obj *)) {
  struct obj *list = NULL;
  pthread_mutex_lock(&obj_mu);
  for (unsigned b = 0; b < NBUCKETS; b++)
    for (struct obj **q = &buckets[b]; *q;) {
      struct obj *o = *q;
      if (o->ctx == c && o != &c->o) {
        *q = o->hnext;
        o->hnext = list;
        list = o;
      } else {
        q = &o->hnext;
      }
    }
  pthread_mutex_unlock(&obj_mu);
  while (list) {
    struct obj *next = list->hnext;
    fn(list);
    list = next;
  }
}

/* ---- the device ------------------------------------------------------------------------------------------ */

static int host_numa_vmm(void) {
  const char *h = getenv("EMUV_SIM_HOST_VMM");
  if (sim_driver_version() < 12020) return 0; /* HOST_NUMA locations arrived with CUDA 12.2 */
  return h == NULL || strcmp(h, "both") == 0 || strcmp(h, "numa") == 0;
}
static int host_plain_vmm(void) {
  const char *h = getenv("EMUV_SIM_HOST_VMM");
  if (sim_driver_version() < 13000) return 0; /* HOST locations for VMM arrived with CUDA 13.0 */
  return h == NULL || strcmp(h, "both") == 0 || strcmp(h, "host") == 0;
}
SIM_HIDDEN int sim_host_numa_vmm(void) { return host_numa_vmm(); }
SIM_HIDDEN int sim_host_plain_vmm(void) { return host_plain_vmm(); }

static CUresult check_dev(CUdevice d) {
  INIT();
  return d == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

EXPORT CUresult cuInit(unsigned int flags) {
  INIT();
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  S.inited = 1;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDriverGetVersion(int *v) {
  INIT();
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  *v = S.version;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetCount(int *n) {
  if (n == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (!S.inited) return CUDA_ERROR_NOT_INITIALIZED;
  *n = 1;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGet(CUdevice *d, int ord) {
  if (d == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (!S.inited) return CUDA_ERROR_NOT_INITIALIZED;
  if (ord != 0) return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
  if (name == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  snprintf(name, (size_t)len, "%s", sim_card()->name);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetUuid(CUuuid *u, CUdevice d) {
  if (u == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  memcpy(u->bytes, sim_card()->uuid, 16);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d) { return cuDeviceGetUuid(u, d); }
EXPORT CUresult cuDeviceGetLuid(char *luid, unsigned int *mask, CUdevice d) {
  (void)luid;
  (void)mask;
  CUresult r = check_dev(d);
  return r != CUDA_SUCCESS ? r : CUDA_ERROR_NOT_SUPPORTED; /* Windows (WDDM) only, as on Linux drivers */
}
EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) {
  if (bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  *bytes = sim_card()->vram;
  snprintf(tl_last, sizeof tl_last, "cuDeviceTotalMem_v2");
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice d) {
  if (bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  uint64_t v = sim_card()->vram;
  *bytes = v > 0xffffffffull ? 0xffffffffu : (unsigned)v;
  snprintf(tl_last, sizeof tl_last, "cuDeviceTotalMem");
  return CUDA_SUCCESS;
}

/* GeForce RTX 4060 (AD107, compute capability 8.9), from NVIDIA's published specifications and the
 * compute-capability tables of the CUDA programming guide. Attributes not listed are 0. */
static int attribute(int a, int *v) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *v = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *v = 2147483647; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: *v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = 48 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY: *v = 64 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MAX_PITCH: *v = 2147483647; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: *v = 2460000; break; /* kHz, boost clock */
    case CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT: *v = 512; break;
    case CU_DEVICE_ATTRIBUTE_GPU_OVERLAP: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 24; break;
    case CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE: *v = CU_COMPUTEMODE_DEFAULT; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH: *v = 131072; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH: *v = 131072; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH: *v = 16384; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_HEIGHT: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_LAYERS: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT: *v = 512; break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_ECC_ENABLED: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: *v = (int)sim_card()->pci_bus; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: *v = (int)sim_card()->pci_dev; break;
    case CU_DEVICE_ATTRIBUTE_TCC_DRIVER: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: *v = 8501000; break; /* kHz: 17 Gbps GDDR6 */
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: *v = 128; break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: *v = 24 << 20; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *v = 1536; break;
    case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT: *v = 2; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_WIDTH: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_LAYERS: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_CAN_TEX2D_GATHER: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_HEIGHT: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE: *v = 8192; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: *v = (int)sim_card()->pci_domain; break;
    case CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS: *v = 2046; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_WIDTH: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_WIDTH: *v = 131072; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_HEIGHT: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_HEIGHT:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_DEPTH: *v = 16384; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_WIDTH: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_LAYERS: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_HEIGHT: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_LAYERS: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS: *v = 2046; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH: *v = 268435456; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_WIDTH: *v = 131072; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_HEIGHT: *v = 65000; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_PITCH: *v = 2097120; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH:
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 8; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH: *v = 32768; break;
    case CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: *v = 100 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD_GROUP_ID: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO: *v = 64; break;
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = 99 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_CAN_FLUSH_REMOTE_WRITES: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR: *v = 24; break;
    case CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE: *v = 18 << 20; break;
    case CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE: *v = 134213632; break;
    case CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_SPARSE_CUDA_ARRAY_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_TIMELINE_SEMAPHORE_INTEROP_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES: *v = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR; break;
    case CU_DEVICE_ATTRIBUTE_DEFERRED_MAPPING_CUDA_ARRAY_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_CAN_USE_64_BIT_STREAM_MEM_OPS: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_WAIT_VALUE_NOR: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_IPC_EVENT_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MEM_SYNC_DOMAIN_COUNT: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_NUMA_CONFIG: *v = CU_DEVICE_NUMA_CONFIG_NONE; break;
    case CU_DEVICE_ATTRIBUTE_NUMA_ID: *v = -1; break;
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_GPU_PCI_DEVICE_ID: *v = 0x288210de; break; /* AD107 (RTX 4060) << 16 | NVIDIA */
    case CU_DEVICE_ATTRIBUTE_GPU_PCI_SUBSYSTEM_ID: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
      if (sim_driver_version() < 12090) return 0; /* attribute unknown to older drivers */
      *v = host_numa_vmm();
      break;
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_MEMORY_POOLS_SUPPORTED:
      if (sim_driver_version() < 12090) return 0;
      *v = host_numa_vmm();
      break;
    case CU_DEVICE_ATTRIBUTE_HOST_MEMORY_POOLS_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
      if (sim_driver_version() < 13000) return 0;
      *v = host_plain_vmm();
      break;
    default:
      if (a <= 0 || a >= CU_DEVICE_ATTRIBUTE_MAX) return 0;
      *v = 0;
  }
  return 1;
}
EXPORT CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d) {
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  return attribute((int)a, v) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice d) {
  if (major == NULL || minor == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  *major = 8;
  *minor = 9;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetProperties(CUdevprop *p, CUdevice d) {
  if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  memset(p, 0, sizeof *p);
  attribute(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, &p->maxThreadsPerBlock);
  for (int i = 0; i < 3; i++) {
    attribute(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X + i, &p->maxThreadsDim[i]);
    attribute(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X + i, &p->maxGridSize[i]);
  }
  attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, &p->sharedMemPerBlock);
  attribute(CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY, &p->totalConstantMemory);
  attribute(CU_DEVICE_ATTRIBUTE_WARP_SIZE, &p->SIMDWidth);
  attribute(CU_DEVICE_ATTRIBUTE_MAX_PITCH, &p->memPitch);
  attribute(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, &p->regsPerBlock);
  attribute(CU_DEVICE_ATTRIBUTE_CLOCK_RATE, &p->clockRate);
  attribute(CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT, &p->textureAlign);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) {
  if (id == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  const struct sim_card *c = sim_card();
  snprintf(id, (size_t)len, "%04x:%02x:%02x.%x", c->pci_domain, c->pci_bus, c->pci_dev, c->pci_fn);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetByPCIBusId(CUdevice *d, const char *id) {
  if (d == NULL || id == NULL) return CUDA_ERROR_INVALID_VALUE;
  unsigned dom = 0, bus, dev, fn = 0;
  if (sscanf(id, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) {
    dom = 0;
    if (sscanf(id, "%x:%x.%x", &bus, &dev, &fn) != 3) return CUDA_ERROR_INVALID_VALUE;
  }
  const struct sim_card *c = sim_card();
  if (dom != c->pci_domain || bus != c->pci_bus || dev != c->pci_dev) return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceCanAccessPeer(int *can, CUdevice d, CUdevice peer) {
  if (can == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (check_dev(d) != CUDA_SUCCESS || check_dev(peer) != CUDA_SUCCESS) return CUDA_ERROR_INVALID_DEVICE;
  *can = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetP2PAttribute(int *v, CUdevice_P2PAttribute a, CUdevice src, CUdevice dst) {
  (void)a;
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (check_dev(src) != CUDA_SUCCESS || check_dev(dst) != CUDA_SUCCESS || src == dst) return CUDA_ERROR_INVALID_DEVICE;
  return CUDA_ERROR_INVALID_DEVICE;
}
EXPORT CUresult cuDeviceGetTexture1DLinearMaxWidth(size_t *w, CUarray_format f, unsigned ch, CUdevice d) {
  (void)f;
  (void)ch;
  if (w == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  *w = 268435456;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetExecAffinitySupport(int *pi, CUexecAffinityType t, CUdevice d) {
  (void)t;
  if (pi == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  *pi = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuFlushGPUDirectRDMAWrites(CUflushGPUDirectRDMAWritesTarget t, CUflushGPUDirectRDMAWritesScope s) {
  (void)t;
  (void)s;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetGraphMemAttribute(CUdevice d, CUgraphMem_attribute a, void *v) {
  (void)a;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  *(cuuint64_t *)v = 0; /* graphs never run here: no graph memory */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGraphMemTrim(CUdevice d) { return check_dev(d); }

/* ---- contexts ----------------------------------------------------------------------------------------------
 * One primary context (a static object: its handle stays valid across resets, as on the driver) and any
 * number of contexts from cuCtxCreate. Each thread has a stack of current contexts. */

static struct ctx primary;
static int primary_refs;
static unsigned primary_flags;
static unsigned long long next_ctx_id = 1;
static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t primary_once = PTHREAD_ONCE_INIT;

static void ctx_defaults(struct ctx *c) {
  c->dev = 0;
  c->limits[CU_LIMIT_STACK_SIZE] = 1024;
  c->limits[CU_LIMIT_PRINTF_FIFO_SIZE] = 1 << 20;
  c->limits[CU_LIMIT_MALLOC_HEAP_SIZE] = 8 << 20;
  c->limits[CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH] = 2;
  c->limits[CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT] = 2048;
  c->limits[CU_LIMIT_MAX_L2_FETCH_GRANULARITY] = 64;
  c->limits[CU_LIMIT_PERSISTING_L2_CACHE_SIZE] = 0;
  c->cache = CU_FUNC_CACHE_PREFER_NONE;
  c->id = __atomic_fetch_add(&next_ctx_id, 1, __ATOMIC_RELAXED);
}
static void primary_init(void) {
  ctx_defaults(&primary);
  primary.primary = 1;
  obj_register(&primary, OBJ_CTX, NULL);
}
struct ctx *ctx_primary(void) {
  pthread_once(&primary_once, primary_init);
  return &primary;
}

#define CTX_STACK 64
static __thread struct ctx *tl_ctx[CTX_STACK];
static __thread int tl_depth;

struct ctx *ctx_current(void) { return tl_depth > 0 ? tl_ctx[tl_depth - 1] : NULL; }
struct ctx *ctx_for_op(void) {
  struct ctx *c = ctx_current();
  return c != NULL ? c : ctx_primary();
}

static struct ctx *ctx_get(CUcontext h) { return obj_get(h, OBJ_CTX); }

/* Everything a context owns goes with it. The context-local storage destructors run first, outside
 * locks, while the context's objects still exist: that is how the runtime learns its per-context state is
 * gone (cudaDeviceReset, the last primary-context release). */
static void drop_obj(struct obj *o) {
  if (o->type == OBJ_MEMHANDLE) mem_obj_destroy(o);
  else exec_obj_destroy(o);
}
static void ctx_teardown(struct ctx *c) {
  pthread_mutex_lock(&ctx_mu);
  struct cls_entry *cls = c->cls;
  c->cls = NULL;
  pthread_mutex_unlock(&ctx_mu);
  while (cls) {
    struct cls_entry *next = cls->next;
    if (cls->dtor) cls->dtor((CUcontext)c, cls->key, cls->value);
    free(cls);
    cls = next;
  }
  mem_teardown(c);
  obj_drop_owned(c, drop_obj);
}

CUresult sim_primary_ctx(CUcontext *out, CUdevice dev) {
  CUresult r = check_dev(dev);
  if (r != CUDA_SUCCESS) return r;
  *out = (CUcontext)ctx_primary();
  return CUDA_SUCCESS;
}
CUresult sim_current_ctx(CUcontext *out) {
  *out = (CUcontext)ctx_current();
  return CUDA_SUCCESS;
}
CUresult sim_ctx_valid(CUcontext c) { return ctx_get(c) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT; }

static struct ctx *cls_ctx(CUcontext h) { return h == NULL ? ctx_current() : ctx_get(h); }
CUresult sim_cls_put(CUcontext h, void *key, void *value, sim_cls_dtor dtor) {
  struct ctx *c = cls_ctx(h);
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  pthread_mutex_lock(&ctx_mu);
  struct cls_entry *e = c->cls;
  while (e && e->key != key) e = e->next;
  if (e == NULL) {
    e = calloc(1, sizeof *e);
    if (e == NULL) {
      pthread_mutex_unlock(&ctx_mu);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    e->key = key;
    e->next = c->cls;
    c->cls = e;
  }
  e->value = value;
  e->dtor = dtor;
  pthread_mutex_unlock(&ctx_mu);
  return CUDA_SUCCESS;
}
CUresult sim_cls_get(CUcontext h, void *key, void **value) {
  if (value == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c = cls_ctx(h);
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  pthread_mutex_lock(&ctx_mu);
  struct cls_entry *e = c->cls;
  while (e && e->key != key) e = e->next;
  if (e) *value = e->value;
  pthread_mutex_unlock(&ctx_mu);
  return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}
CUresult sim_cls_delete(CUcontext h, void *key) {
  struct ctx *c = cls_ctx(h);
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  pthread_mutex_lock(&ctx_mu);
  for (struct cls_entry **q = &c->cls; *q; q = &(*q)->next)
    if ((*q)->key == key) {
      struct cls_entry *e = *q;
      *q = e->next;
      free(e);
      break;
    }
  pthread_mutex_unlock(&ctx_mu);
  return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) {
  if (c == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  struct ctx *p = ctx_primary();
  pthread_mutex_lock(&ctx_mu);
  if (primary_refs++ == 0) p->flags = primary_flags;
  pthread_mutex_unlock(&ctx_mu);
  *c = (CUcontext)p;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  pthread_mutex_lock(&ctx_mu);
  if (primary_refs == 0) {
    pthread_mutex_unlock(&ctx_mu);
    return CUDA_ERROR_INVALID_CONTEXT;
  }
  int last = --primary_refs == 0;
  pthread_mutex_unlock(&ctx_mu);
  if (last) ctx_teardown(ctx_primary()); /* the context and its memory are gone */
  return CUDA_SUCCESS;
}
/* The CUDA 7.0 ABI (the export without _v2): same semantics, cudart 12 and 13 ask for this one. */
EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice d) { return cuDevicePrimaryCtxRelease_v2(d); }
EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice d) {
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  /* "Resetting the primary context does not release it" (cuda.h): references stay, everything else goes */
  ctx_teardown(ctx_primary());
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxReset(CUdevice d) { return cuDevicePrimaryCtxReset_v2(d); }
EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice d, unsigned int *flags, int *active) {
  if (flags == NULL || active == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  pthread_mutex_lock(&ctx_mu);
  *flags = primary_flags;
  *active = primary_refs > 0;
  pthread_mutex_unlock(&ctx_mu);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice d, unsigned int flags) {
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  if (flags & ~(unsigned)(CU_CTX_SCHED_MASK | CU_CTX_MAP_HOST | CU_CTX_LMEM_RESIZE_TO_MAX | CU_CTX_COREDUMP_ENABLE |
                          CU_CTX_USER_COREDUMP_ENABLE | CU_CTX_SYNC_MEMOPS))
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&ctx_mu);
  primary_flags = flags;
  if (primary_refs > 0) ctx_primary()->flags = flags;
  pthread_mutex_unlock(&ctx_mu);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxSetFlags(CUdevice d, unsigned int flags) {
  /* the 7.0 ABI refused to change the flags of an active primary context */
  int flags_now, active;
  CUresult r = cuDevicePrimaryCtxGetState(d, (unsigned *)&flags_now, &active);
  if (r != CUDA_SUCCESS) return r;
  if (active) return CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE;
  return cuDevicePrimaryCtxSetFlags_v2(d, flags);
}

static CUresult ctx_create(CUcontext *out, unsigned flags, CUdevice d) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_dev(d);
  if (r != CUDA_SUCCESS) return r;
  struct ctx *c = calloc(1, sizeof *c);
  if (c == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  ctx_defaults(c);
  c->flags = flags;
  obj_register(c, OBJ_CTX, NULL);
  if (tl_depth == CTX_STACK) {
    obj_unregister(c);
    free(c);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  tl_ctx[tl_depth++] = c; /* a new context becomes current, pushed on the thread's stack */
  *out = (CUcontext)c;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxCreate_v2(CUcontext *out, unsigned int flags, CUdevice d) { return ctx_create(out, flags, d); }
EXPORT CUresult cuCtxCreate_v3(CUcontext *out, CUexecAffinityParam *p, int n, unsigned int flags, CUdevice d) {
  if (n != 0 || p != NULL) return CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY;
  return ctx_create(out, flags, d);
}
EXPORT CUresult cuCtxCreate_v4(CUcontext *out, CUctxCreateParams *p, unsigned int flags, CUdevice d) {
  if (p != NULL && (p->numExecAffinityParams != 0 || p->cigParams != NULL)) return CUDA_ERROR_NOT_SUPPORTED;
  return ctx_create(out, flags, d);
}
EXPORT CUresult cuCtxDestroy_v2(CUcontext h) {
  struct ctx *c = ctx_get(h);
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  if (c->primary) return CUDA_ERROR_INVALID_CONTEXT; /* primary contexts are released, not destroyed */
  for (int i = 0; i < tl_depth; i++)
    if (tl_ctx[i] == c) { /* drop it from this thread's stack */
      memmove(&tl_ctx[i], &tl_ctx[i + 1], (size_t)(tl_depth - i - 1) * sizeof tl_ctx[0]);
      tl_depth--;
      i--;
    }
  ctx_teardown(c);
  obj_unregister(c);
  free(c);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetCurrent(CUcontext h) {
  if (h == NULL) {
    if (tl_depth > 0) tl_depth--;
    return CUDA_SUCCESS;
  }
  struct ctx *c = ctx_get(h);
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  if (tl_depth == 0) tl_depth = 1;
  tl_ctx[tl_depth - 1] = c;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetCurrent(CUcontext *out) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  *out = (CUcontext)ctx_current();
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxPushCurrent_v2(CUcontext h) {
  struct ctx *c = ctx_get(h);
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  if (tl_depth == CTX_STACK) return CUDA_ERROR_OUT_OF_MEMORY;
  tl_ctx[tl_depth++] = c;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *out) {
  if (tl_depth == 0) return CUDA_ERROR_INVALID_CONTEXT;
  struct ctx *c = tl_ctx[--tl_depth];
  if (out) *out = (CUcontext)c;
  return CUDA_SUCCESS;
}
static CUresult ctx_or_current(CUcontext h, struct ctx **out) {
  *out = h == NULL ? ctx_current() : ctx_get(h);
  return *out ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}
EXPORT CUresult cuCtxGetDevice(CUdevice *d) {
  if (d == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c = ctx_current();
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  *d = c->dev;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetDevice_v2(CUdevice *d, CUcontext h) {
  if (d == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c;
  CUresult r = ctx_or_current(h, &c);
  if (r == CUDA_SUCCESS) *d = c->dev;
  return r;
}
EXPORT CUresult cuCtxSynchronize(void) { return ctx_current() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT; }
EXPORT CUresult cuCtxSynchronize_v2(CUcontext h) {
  struct ctx *c;
  return ctx_or_current(h, &c); /* work is done when it is issued: nothing to wait for */
}
EXPORT CUresult cuCtxGetFlags(unsigned int *flags) {
  if (flags == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c = ctx_current();
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  *flags = c->flags;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetFlags(unsigned int flags) {
  struct ctx *c = ctx_current();
  if (c == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  c->flags = flags;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetId(CUcontext h, unsigned long long *id) {
  if (id == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c;
  CUresult r = ctx_or_current(h, &c);
  if (r == CUDA_SUCCESS) *id = c->id;
  return r;
}
EXPORT CUresult cuCtxGetApiVersion(CUcontext h, unsigned int *v) {
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c;
  CUresult r = ctx_or_current(h, &c);
  if (r == CUDA_SUCCESS) *v = 3020;
  return r;
}
EXPORT CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest) {
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetLimit(size_t *v, CUlimit l) {
  if (v == NULL || (unsigned)l >= 16 || l >= CU_LIMIT_MAX) return CUDA_ERROR_INVALID_VALUE;
  *v = ctx_for_op()->limits[l];
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetLimit(CUlimit l, size_t v) {
  if ((unsigned)l >= 16 || l >= CU_LIMIT_MAX) return CUDA_ERROR_INVALID_VALUE;
  ctx_for_op()->limits[l] = v;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetCacheConfig(CUfunc_cache *cfg) {
  if (cfg == NULL) return CUDA_ERROR_INVALID_VALUE;
  *cfg = ctx_for_op()->cache;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetCacheConfig(CUfunc_cache cfg) {
  ctx_for_op()->cache = cfg;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetSharedMemConfig(CUsharedconfig *cfg) {
  if (cfg == NULL) return CUDA_ERROR_INVALID_VALUE;
  *cfg = CU_SHARED_MEM_CONFIG_FOUR_BYTE_BANK_SIZE;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetSharedMemConfig(CUsharedconfig cfg) {
  (void)cfg;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxResetPersistingL2Cache(void) { return CUDA_SUCCESS; }
EXPORT CUresult cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags) {
  (void)flags;
  return ctx_get(peer) ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_INVALID_CONTEXT; /* one device: no peers */
}
EXPORT CUresult cuCtxDisablePeerAccess(CUcontext peer) {
  return ctx_get(peer) ? CUDA_ERROR_PEER_ACCESS_NOT_ENABLED : CUDA_ERROR_INVALID_CONTEXT;
}

/* ---- cuGetProcAddress ------------------------------------------------------------------------------------ */

static CUresult resolve(const char *sym, void **pfn, int ver, cuuint64_t flags, CUdriverProcAddressQueryResult *st) {
  INIT();
  if (pfn == NULL || sym == NULL) return CUDA_ERROR_INVALID_VALUE;
  *pfn = NULL;
  if (ver > S.version) return CUDA_ERROR_INVALID_VALUE;
  int per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  const struct sim_pfn_entry *best = NULL, *best_pt = NULL;
  int found = 0;
  for (unsigned i = 0; i < sim_pfn_count; i++) {
    const struct sim_pfn_entry *e = &sim_pfn_table[i];
    if (strcmp(e->base, sym) != 0) continue;
    found = 1;
    if (e->version > ver) continue;
    if (e->variant == 0) {
      if (best == NULL || e->version > best->version) best = e;
    } else if (per_thread) {
      if (best_pt == NULL || e->version > best_pt->version) best_pt = e;
    }
  }
  if (best_pt != NULL) best = best_pt;
  if (best != NULL) *pfn = best->fn;
  if (st != NULL)
    *st = best ? CU_GET_PROC_ADDRESS_SUCCESS : found ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                                                      : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  sim_trace("cuGetProcAddress(%s, %d, %llu) = %s", sym, ver, (unsigned long long)flags,
            best ? best->export_name : found ? "(version not sufficient)" : "(not found)");
  return CUDA_SUCCESS;
}
EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *st) {
  return resolve(sym, pfn, ver, flags, st);
}
EXPORT CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags) {
  return resolve(sym, pfn, ver, flags, NULL);
}

/* ---- errors ------------------------------------------------------------------------------------------------ */

extern const struct sim_error { int code; const char *name; } sim_errors[];
extern const unsigned sim_error_count;

static const struct {
  int code;
  const char *text;
} error_text[] = {
    {CUDA_SUCCESS, "no error"},
    {CUDA_ERROR_INVALID_VALUE, "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "initialization error"},
    {CUDA_ERROR_DEINITIALIZED, "driver shutting down"},
    {CUDA_ERROR_PROFILER_DISABLED, "profiler disabled while using external profiling tool"},
    {CUDA_ERROR_STUB_LIBRARY, "CUDA driver is a stub library"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA-capable device(s) is/are busy or unavailable"},
    {CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal"},
    {CUDA_ERROR_DEVICE_NOT_LICENSED, "device doesn't have valid Grid license"},
    {CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "invalid device context"},
    {CUDA_ERROR_CONTEXT_ALREADY_CURRENT, "context already current"},
    {CUDA_ERROR_MAP_FAILED, "mapping of buffer object failed"},
    {CUDA_ERROR_UNMAP_FAILED, "unmapping of buffer object failed"},
    {CUDA_ERROR_ARRAY_IS_MAPPED, "array is mapped"},
    {CUDA_ERROR_ALREADY_MAPPED, "resource already mapped"},
    {CUDA_ERROR_NO_BINARY_FOR_GPU, "no kernel image is available for execution on the device"},
    {CUDA_ERROR_ALREADY_ACQUIRED, "resource already acquired"},
    {CUDA_ERROR_NOT_MAPPED, "resource not mapped"},
    {CUDA_ERROR_ECC_UNCORRECTABLE, "uncorrectable ECC error encountered"},
    {CUDA_ERROR_UNSUPPORTED_LIMIT, "limit is not supported on this architecture"},
    {CUDA_ERROR_CONTEXT_ALREADY_IN_USE, "exclusive-thread device already in use by a different thread"},
    {CUDA_ERROR_PEER_ACCESS_UNSUPPORTED, "peer access is not supported between these two devices"},
    {CUDA_ERROR_INVALID_PTX, "a PTX JIT compilation failed"},
    {CUDA_ERROR_INVALID_SOURCE, "device kernel image is invalid"},
    {CUDA_ERROR_FILE_NOT_FOUND, "file not found"},
    {CUDA_ERROR_SHARED_OBJECT_INIT_FAILED, "shared object initialization failed"},
    {CUDA_ERROR_OPERATING_SYSTEM, "OS call failed or operation not supported on this OS"},
    {CUDA_ERROR_INVALID_HANDLE, "invalid resource handle"},
    {CUDA_ERROR_ILLEGAL_STATE, "the operation cannot be performed in the present state"},
    {CUDA_ERROR_NOT_FOUND, "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch"},
    {CUDA_ERROR_LAUNCH_TIMEOUT, "the launch timed out and was terminated"},
    {CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, "peer access is already enabled"},
    {CUDA_ERROR_PEER_ACCESS_NOT_ENABLED, "peer access has not been enabled"},
    {CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE, "cannot set while device is active in this process"},
    {CUDA_ERROR_CONTEXT_IS_DESTROYED, "context is destroyed"},
    {CUDA_ERROR_ASSERT, "device-side assert triggered"},
    {CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "part or all of the requested memory range is already mapped"},
    {CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "pointer does not correspond to a registered memory region"},
    {CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure"},
    {CUDA_ERROR_NOT_PERMITTED, "operation not permitted"},
    {CUDA_ERROR_NOT_SUPPORTED, "operation not supported"},
    {CUDA_ERROR_SYSTEM_NOT_READY, "system not yet initialized"},
    {CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, "system has unsupported display driver / cuda driver combination"},
    {CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "operation not permitted when stream is capturing"},
    {CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "operation failed due to a previous error during capture"},
    {CUDA_ERROR_CAPTURED_EVENT, "operation not permitted on an event last recorded in a capturing stream"},
    {CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY, "the requested execution affinity is not supported"},
    {CUDA_ERROR_UNKNOWN, "unknown error"},
};
EXPORT CUresult cuGetErrorName(CUresult e, const char **s) {
  if (s == NULL) return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < sim_error_count; i++)
    if (sim_errors[i].code == (int)e) {
      *s = sim_errors[i].name;
      return CUDA_SUCCESS;
    }
  *s = NULL;
  return CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuGetErrorString(CUresult e, const char **s) {
  if (s == NULL) return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < sizeof error_text / sizeof error_text[0]; i++)
    if (error_text[i].code == (int)e) {
      *s = error_text[i].text;
      return CUDA_SUCCESS;
    }
  return cuGetErrorName(e, s); /* a code the table above lacks: its name */
}

/* ---- misc ---------------------------------------------------------------------------------------------------- */

EXPORT CUresult cuProfilerStart(void) { return CUDA_SUCCESS; }
EXPORT CUresult cuProfilerStop(void) { return CUDA_SUCCESS; }

/* Error-log management (CUDA 12.9+): the simulator keeps no log, so there is never anything to report;
 * callbacks are registered and never called. */
struct CUlogsCallbackEntry_st {
  CUlogsCallback cb;
  void *user;
};
EXPORT CUresult cuLogsRegisterCallback(CUlogsCallback cb, void *user, CUlogsCallbackHandle *out) {
  if (cb == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct CUlogsCallbackEntry_st *e = malloc(sizeof *e);
  if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  e->cb = cb;
  e->user = user;
  if (out) *out = e;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLogsUnregisterCallback(CUlogsCallbackHandle h) {
  if (h == NULL) return CUDA_ERROR_INVALID_VALUE;
  free(h);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLogsCurrent(CUlogIterator *it, unsigned int flags) {
  if (it == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  *it = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLogsDumpToMemory(CUlogIterator *it, char *buf, size_t *size, unsigned int flags) {
  (void)it;
  if (buf == NULL || size == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (*size > 0) buf[0] = '\0';
  *size = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLogsDumpToFile(CUlogIterator *it, const char *path, unsigned int flags) {
  (void)it;
  if (path == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  FILE *f = fopen(path, "a");
  if (f == NULL) return CUDA_ERROR_INVALID_VALUE;
  fclose(f);
  return CUDA_SUCCESS;
}

/* ---- test introspection (not part of the CUDA API) ---------------------------------------------------------- */

/* Bytes this process holds on the simulated card. */
EXPORT uint64_t emuv_sim_vram_used(void) { return sim_vram_mine(); }
/* Bytes all processes hold on the simulated card. */
EXPORT uint64_t emuv_sim_card_used(void) { return sim_vram_card_used(); }
EXPORT uint64_t emuv_sim_vram_total(void) { return sim_card()->vram; }
/* Location type (CU_MEM_LOCATION_TYPE_*, 100 = managed) of the memory behind a pointer, -1 unknown. */
EXPORT int emuv_sim_location(uint64_t p) { return mem_location(p); }
EXPORT const char *emuv_sim_last_call(void) { return tl_last; }
