/*
 * Simulated CUDA driver (libcuda.so.1) for tests and demos. CPU memory stands in for VRAM: device
 * pointers are host addresses (UVA), so tests write and read them directly. VMM is real mapping:
 * reservations are PROT_NONE mmaps, handles are memfds, cuMemMap maps the memfd at the VA and
 * cuMemSetAccess makes it accessible. Every ABI named in cudaTypedefs.h is exported (the ones not
 * simulated return CUDA_ERROR_NOT_SUPPORTED) and cuGetProcAddress resolves by version and flags.
 *
 * Environment: EMUV_SIM_VRAM (size, default 8Gi), EMUV_SIM_DRIVER_VERSION (default 13000),
 * EMUV_SIM_HOST_VMM (numa|host|both|none, default both), EMUV_SIM_FAIL (<export>:<n>[:<error>], the
 * n-th call of that export fails with <error>, default 2 = CUDA_ERROR_OUT_OF_MEMORY).
 */
#define _GNU_SOURCE
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sim_table.h"

#define EXPORT __attribute__((visibility("default")))
#define GRANULE (2ull << 20)
#define HDR 256
#define MAGIC 0x53494d414c4c4f43ull

enum { LOC_DEVICE = CU_MEM_LOCATION_TYPE_DEVICE, LOC_HOST = CU_MEM_LOCATION_TYPE_HOST,
       LOC_HOST_NUMA = CU_MEM_LOCATION_TYPE_HOST_NUMA, LOC_MANAGED = 100 };

struct block { /* precedes every pointer from cuMemAlloc*, pools and host allocations */
  uint64_t magic, size;
  int loc, kind;
};

struct handle {
  int fd;
  size_t size;
  CUmemAllocationProp prop;
};

struct mapping {
  uint64_t va, size;
  struct handle *h;
  int accessible;
};

struct pool {
  CUmemLocationType loc;
  int id;
};

struct stream {
  int capturing;
};

static struct {
  pthread_once_t once;
  uint64_t vram;
  int version;
  int host_numa, host_plain;
  char fail_name[128];
  long fail_at, fail_calls;
  int fail_err;
  int inited;
  uint64_t vram_used;
  pthread_mutex_t mu; /* mappings */
  struct mapping maps[4096];
  int nmaps;
  struct pool device_pool;
} S = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

static __thread CUstreamCaptureMode tl_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
static __thread char tl_last[160];

static uint64_t parse_size(const char *s, uint64_t dflt) {
  if (s == NULL || *s == '\0') return dflt;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (strcmp(end, "Ki") == 0) v <<= 10;
  else if (strcmp(end, "Mi") == 0) v <<= 20;
  else if (strcmp(end, "Gi") == 0) v <<= 30;
  else if (strcmp(end, "Ti") == 0) v <<= 40;
  else if (*end != '\0') return dflt;
  return v;
}

static void sim_init(void) {
  S.vram = parse_size(getenv("EMUV_SIM_VRAM"), 8ull << 30);
  const char *v = getenv("EMUV_SIM_DRIVER_VERSION");
  S.version = v ? atoi(v) : 13000;
  const char *h = getenv("EMUV_SIM_HOST_VMM");
  if (h == NULL || strcmp(h, "both") == 0) S.host_numa = S.host_plain = 1;
  else if (strcmp(h, "numa") == 0) S.host_numa = 1;
  else if (strcmp(h, "host") == 0) S.host_plain = 1;
  if (S.version < 12020) S.host_numa = 0; /* HOST_NUMA locations arrived with CUDA 12.2 */
  if (S.version < 13000) S.host_plain = 0; /* HOST locations for VMM arrived with CUDA 13.0 */
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
  S.device_pool.loc = CU_MEM_LOCATION_TYPE_DEVICE;
}
#define INIT() pthread_once(&S.once, sim_init)

/* fault injection: returns the error to fail with, or CUDA_SUCCESS */
static CUresult injected(const char *name) {
  if (S.fail_at == 0 || strcmp(name, S.fail_name) != 0) return CUDA_SUCCESS;
  long n = __atomic_add_fetch(&S.fail_calls, 1, __ATOMIC_RELAXED);
  return n == S.fail_at ? (CUresult)S.fail_err : CUDA_SUCCESS;
}

int sim_unimplemented(const char *name) {
  snprintf(tl_last, sizeof tl_last, "%s (not simulated)", name);
  return CUDA_ERROR_NOT_SUPPORTED;
}

static int charge(uint64_t n) {
  uint64_t old = __atomic_fetch_add(&S.vram_used, n, __ATOMIC_RELAXED);
  if (old + n > S.vram) {
    __atomic_fetch_sub(&S.vram_used, n, __ATOMIC_RELAXED);
    return 0;
  }
  return 1;
}
static void uncharge(uint64_t n) { __atomic_fetch_sub(&S.vram_used, n, __ATOMIC_RELAXED); }

static CUresult block_alloc(void **out, uint64_t n, int loc) {
  if (loc == LOC_DEVICE && !charge(n)) return CUDA_ERROR_OUT_OF_MEMORY;
  char *p = aligned_alloc(HDR, HDR + (n + HDR - 1) / HDR * HDR);
  if (p == NULL) {
    if (loc == LOC_DEVICE) uncharge(n);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  struct block *b = (struct block *)p;
  b->magic = MAGIC;
  b->size = n;
  b->loc = loc;
  *out = p + HDR;
  return CUDA_SUCCESS;
}

static struct block *block_of(uint64_t p) {
  if (p == 0 || p % HDR != 0) return NULL;
  struct block *b = (struct block *)(uintptr_t)(p - HDR);
  return b->magic == MAGIC ? b : NULL;
}

static CUresult block_free(uint64_t p, int want_host) {
  struct block *b = block_of(p);
  if (b == NULL || (want_host != (b->loc == LOC_HOST && b->kind == 1))) return CUDA_ERROR_INVALID_VALUE;
  if (b->loc == LOC_DEVICE) uncharge(b->size);
  b->magic = 0;
  free(b);
  return CUDA_SUCCESS;
}

/* ---- init, device, context ------------------------------------------------------------------------ */

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
  if (!S.inited) return CUDA_ERROR_NOT_INITIALIZED;
  *n = 1;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGet(CUdevice *d, int ord) {
  if (!S.inited) return CUDA_ERROR_NOT_INITIALIZED;
  if (ord != 0) return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, (size_t)len, "emuv simulated GPU");
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  memcpy(u->bytes, "emuv-sim-gpu-000", 16);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) {
  INIT();
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = S.vram;
  snprintf(tl_last, sizeof tl_last, "cuDeviceTotalMem_v2");
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice d) {
  INIT();
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = S.vram > 0xffffffffull ? 0xffffffffu : (unsigned)S.vram;
  snprintf(tl_last, sizeof tl_last, "cuDeviceTotalMem");
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d) {
  INIT();
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  switch ((int)a) {
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING:
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS:
    case CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM:
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
      if (S.version < 12090) return CUDA_ERROR_INVALID_VALUE; /* attribute unknown to older drivers */
      *v = S.host_numa;
      break;
    case CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
      if (S.version < 13000) return CUDA_ERROR_INVALID_VALUE;
      *v = S.host_plain;
      break;
    default: *v = 0;
  }
  return CUDA_SUCCESS;
}
static CUcontext the_ctx = (CUcontext)0x5151;
static int primary_refs;
EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  __atomic_fetch_add(&primary_refs, 1, __ATOMIC_RELAXED);
  *c = the_ctx;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  int left = __atomic_sub_fetch(&primary_refs, 1, __ATOMIC_RELAXED);
  if (left < 0) {
    __atomic_store_n(&primary_refs, 0, __ATOMIC_RELAXED);
    return CUDA_ERROR_INVALID_CONTEXT;
  }
  if (left == 0) __atomic_store_n(&S.vram_used, 0, __ATOMIC_RELAXED); /* the context and its memory are gone */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice d, unsigned int *flags, int *active) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (flags) *flags = 0;
  if (active) *active = __atomic_load_n(&primary_refs, __ATOMIC_RELAXED) > 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  __atomic_store_n(&S.vram_used, 0, __ATOMIC_RELAXED); /* the context's memory is gone */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSetCurrent(CUcontext c) { (void)c; return CUDA_SUCCESS; }
EXPORT CUresult cuCtxGetCurrent(CUcontext *c) { *c = the_ctx; return CUDA_SUCCESS; }
EXPORT CUresult cuCtxGetDevice(CUdevice *d) { *d = 0; return CUDA_SUCCESS; }

/* ---- cuGetProcAddress -------------------------------------------------------------------------------- */

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
  return CUDA_SUCCESS;
}
EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *st) {
  return resolve(sym, pfn, ver, flags, st);
}
EXPORT CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags) {
  return resolve(sym, pfn, ver, flags, NULL);
}

/* ---- plain allocations --------------------------------------------------------------------------------- */

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *d, size_t n) {
  INIT();
  if (d == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (n == 0) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = injected("cuMemAlloc_v2");
  if (r != CUDA_SUCCESS) return r;
  void *p;
  r = block_alloc(&p, n, LOC_DEVICE);
  if (r == CUDA_SUCCESS) *d = (CUdeviceptr)(uintptr_t)p;
  return r;
}
EXPORT CUresult cuMemAlloc(unsigned int *d, unsigned int n) { /* legacy 32-bit ABI: cannot hold a 64-bit VA */
  (void)d;
  (void)n;
  snprintf(tl_last, sizeof tl_last, "cuMemAlloc");
  return CUDA_ERROR_NOT_SUPPORTED;
}
EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *d, size_t *pitch, size_t w, size_t h, unsigned int esz) {
  if (esz != 4 && esz != 8 && esz != 16) return CUDA_ERROR_INVALID_VALUE;
  size_t p = (w + 511) / 512 * 512;
  void *ptr;
  CUresult r = block_alloc(&ptr, (uint64_t)p * h, LOC_DEVICE);
  if (r != CUDA_SUCCESS) return r;
  *d = (CUdeviceptr)(uintptr_t)ptr;
  *pitch = p;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr d) {
  if (d == 0) return CUDA_SUCCESS;
  return block_free(d, 0);
}
EXPORT CUresult cuMemGetInfo_v2(size_t *f, size_t *t) {
  INIT();
  if (!S.inited) return CUDA_ERROR_NOT_INITIALIZED;
  uint64_t u = __atomic_load_n(&S.vram_used, __ATOMIC_RELAXED);
  if (f) *f = u > S.vram ? 0 : S.vram - u;
  if (t) *t = S.vram;
  snprintf(tl_last, sizeof tl_last, "cuMemGetInfo_v2");
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemHostAlloc(void **pp, size_t n, unsigned int flags) {
  (void)flags;
  INIT();
  CUresult r = injected("cuMemHostAlloc");
  if (r != CUDA_SUCCESS) return r;
  r = block_alloc(pp, n, LOC_HOST);
  if (r == CUDA_SUCCESS) block_of((uint64_t)(uintptr_t)*pp)->kind = 1;
  return r;
}
EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t n) { return cuMemHostAlloc(pp, n, 0); }
EXPORT CUresult cuMemFreeHost(void *p) { return block_free((uint64_t)(uintptr_t)p, 1); }
EXPORT CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *d, void *p, unsigned int flags) {
  struct block *b = block_of((uint64_t)(uintptr_t)p);
  if (flags != 0 || b == NULL || b->loc != LOC_HOST) return CUDA_ERROR_INVALID_VALUE;
  *d = (CUdeviceptr)(uintptr_t)p; /* unified addressing: the device sees the host address */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned int flags) {
  (void)flags;
  return p && n ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuMemHostUnregister(void *p) { return p ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE; }
EXPORT CUresult cuMemAllocManaged(CUdeviceptr *d, size_t n, unsigned int flags) {
  (void)flags;
  void *p;
  CUresult r = block_alloc(&p, n, LOC_MANAGED);
  if (r == CUDA_SUCCESS) *d = (CUdeviceptr)(uintptr_t)p;
  return r;
}
EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { memcpy((void *)(uintptr_t)d, s, n); return CUDA_SUCCESS; }
EXPORT CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { memcpy(d, (void *)(uintptr_t)s, n); return CUDA_SUCCESS; }
EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n) { memmove((void *)(uintptr_t)d, (void *)(uintptr_t)s, n); return CUDA_SUCCESS; }
EXPORT CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { memset((void *)(uintptr_t)d, v, n); return CUDA_SUCCESS; }
EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr d) {
  struct block *b = block_of(d);
  if (b == NULL || b->loc != LOC_DEVICE) return CUDA_ERROR_INVALID_VALUE;
  memset(h, 0, sizeof *h);
  memcpy(h->reserved, &d, sizeof d);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAdvise(CUdeviceptr d, size_t n, CUmem_advise a, CUdevice dev) {
  snprintf(tl_last, sizeof tl_last, "cuMemAdvise %llx %zu %d dev=%d", (unsigned long long)d, n, (int)a, dev);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAdvise_v2(CUdeviceptr d, size_t n, CUmem_advise a, CUmemLocation loc) {
  snprintf(tl_last, sizeof tl_last, "cuMemAdvise_v2 %llx %zu %d loc=%d:%d", (unsigned long long)d, n, (int)a,
           (int)loc.type, loc.id);
  return CUDA_SUCCESS;
}

static uint64_t array_bytes(uint64_t w, uint64_t h, uint64_t d, unsigned f, unsigned ch) {
  uint64_t t = (f == 0x01 || f == 0x08) ? 1 : (f == 0x02 || f == 0x09 || f == 0x10) ? 2 : (f == 0x03 || f == 0x0a || f == 0x20) ? 4 : 0;
  if (t == 0) return 0; /* the simulator supports the scalar formats only */
  return w * (h ? h : 1) * (d ? d : 1) * t * (ch ? ch : 1);
}
static CUresult array_new(CUarray *a, uint64_t n) {
  if (a == NULL || n == 0) return CUDA_ERROR_INVALID_VALUE;
  void *p;
  CUresult r = block_alloc(&p, n, LOC_DEVICE);
  if (r == CUDA_SUCCESS) *a = (CUarray)p;
  return r;
}
EXPORT CUresult cuArrayCreate_v2(CUarray *a, const CUDA_ARRAY_DESCRIPTOR *d) {
  if (d == NULL || d->Width == 0 || (d->NumChannels != 1 && d->NumChannels != 2 && d->NumChannels != 4)) return CUDA_ERROR_INVALID_VALUE;
  return array_new(a, array_bytes(d->Width, d->Height, 1, d->Format, d->NumChannels));
}
EXPORT CUresult cuArray3DCreate_v2(CUarray *a, const CUDA_ARRAY3D_DESCRIPTOR *d) {
  if (d == NULL || d->Width == 0 || (d->NumChannels != 1 && d->NumChannels != 2 && d->NumChannels != 4)) return CUDA_ERROR_INVALID_VALUE;
  return array_new(a, array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels));
}
EXPORT CUresult cuArrayDestroy(CUarray a) { return block_free((uint64_t)(uintptr_t)a, 0); }
EXPORT CUresult cuPointerGetAttributes(unsigned int n, CUpointer_attribute *attrs, void **data, CUdeviceptr p) {
  for (unsigned i = 0; i < n; i++) {
    CUresult r = cuPointerGetAttribute(data[i], attrs[i], p);
    if (r != CUDA_SUCCESS && r != CUDA_ERROR_NOT_SUPPORTED) return r;
  }
  return CUDA_SUCCESS;
}

/* ---- VMM ------------------------------------------------------------------------------------------------- */

EXPORT CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *p, CUmemAllocationGranularity_flags f) {
  (void)p;
  (void)f;
  *g = GRANULE;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t align, CUdeviceptr addr, unsigned long long flags) {
  (void)addr;
  (void)flags;
  if (ptr == NULL || size == 0 || size % GRANULE) return CUDA_ERROR_INVALID_VALUE;
  if (align < GRANULE) align = GRANULE;
  char *raw = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  uintptr_t base = ((uintptr_t)raw + align - 1) / align * align;
  if (base > (uintptr_t)raw) munmap(raw, base - (uintptr_t)raw);
  uintptr_t end = (uintptr_t)raw + size + align;
  if (end > base + size) munmap((void *)(base + size), end - (base + size));
  *ptr = base;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  if (ptr == 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
  munmap((void *)(uintptr_t)ptr, size);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *prop, unsigned long long flags) {
  INIT();
  if (h == NULL || prop == NULL || flags != 0 || size == 0 || size % GRANULE) return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
  switch (prop->location.type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
      if (prop->location.id != 0) return CUDA_ERROR_INVALID_DEVICE;
      break;
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
      if (!S.host_numa || prop->location.id != 0) return CUDA_ERROR_INVALID_VALUE;
      break;
    case CU_MEM_LOCATION_TYPE_HOST:
      /* "HOST allocations are not IPC capable and requestedHandleTypes must be 0" (cuda.h) */
      if (!S.host_plain || prop->requestedHandleTypes != 0) return CUDA_ERROR_INVALID_VALUE;
      break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  CUresult r = injected("cuMemCreate");
  if (r != CUDA_SUCCESS) return r;
  if (prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE && !charge(size)) return CUDA_ERROR_OUT_OF_MEMORY;
  struct handle *hd = calloc(1, sizeof *hd);
  int fd = memfd_create("emuv-sim", MFD_CLOEXEC);
  if (hd == NULL || fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    if (fd >= 0) close(fd);
    free(hd);
    if (prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE) uncharge(size);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  hd->fd = fd;
  hd->size = size;
  hd->prop = *prop;
  *h = (CUmemGenericAllocationHandle)(uintptr_t)hd;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h) {
  struct handle *hd = (struct handle *)(uintptr_t)h;
  if (hd == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (hd->prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE) uncharge(hd->size);
  close(hd->fd); /* mappings keep the pages alive until unmapped, as in the driver */
  hd->fd = -1;
  pthread_mutex_lock(&S.mu);
  int mapped = 0;
  for (int i = 0; i < S.nmaps; i++) mapped |= S.maps[i].h == hd;
  pthread_mutex_unlock(&S.mu);
  if (!mapped) free(hd);
  else hd->size = 0; /* freed when its last mapping goes */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *p, CUmemGenericAllocationHandle h) {
  struct handle *hd = (struct handle *)(uintptr_t)h;
  if (hd == NULL || p == NULL) return CUDA_ERROR_INVALID_VALUE;
  *p = hd->prop;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemExportToShareableHandle(void *out, CUmemGenericAllocationHandle h, CUmemAllocationHandleType t,
                                             unsigned long long flags) {
  struct handle *hd = (struct handle *)(uintptr_t)h;
  if (hd == NULL || out == NULL || flags != 0 || hd->fd < 0) return CUDA_ERROR_INVALID_VALUE;
  if (t != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR || !(hd->prop.requestedHandleTypes & t))
    return CUDA_ERROR_INVALID_VALUE;
  int fd = dup(hd->fd);
  if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
  *(int *)out = fd;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemMap(CUdeviceptr va, size_t size, size_t off, CUmemGenericAllocationHandle h, unsigned long long flags) {
  struct handle *hd = (struct handle *)(uintptr_t)h;
  if (hd == NULL || hd->fd < 0 || flags != 0 || size == 0 || size % GRANULE || va % GRANULE || off + size > hd->size)
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&S.mu);
  for (int i = 0; i < S.nmaps; i++)
    if (va < S.maps[i].va + S.maps[i].size && S.maps[i].va < va + size) {
      pthread_mutex_unlock(&S.mu);
      return CUDA_ERROR_INVALID_VALUE; /* already mapped */
    }
  if (S.nmaps == (int)(sizeof S.maps / sizeof S.maps[0]) ||
      mmap((void *)(uintptr_t)va, size, PROT_NONE, MAP_SHARED | MAP_FIXED, hd->fd, (off_t)off) == MAP_FAILED) {
    pthread_mutex_unlock(&S.mu);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  S.maps[S.nmaps++] = (struct mapping){va, size, hd, 0};
  pthread_mutex_unlock(&S.mu);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemUnmap(CUdeviceptr va, size_t size) {
  pthread_mutex_lock(&S.mu);
  CUresult r = CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < S.nmaps; i++)
    if (S.maps[i].va == va && S.maps[i].size == size) {
      struct handle *hd = S.maps[i].h;
      S.maps[i] = S.maps[--S.nmaps];
      mmap((void *)(uintptr_t)va, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
      int still = 0;
      for (int j = 0; j < S.nmaps; j++) still |= S.maps[j].h == hd;
      if (!still && hd->fd < 0) free(hd);
      r = CUDA_SUCCESS;
      break;
    }
  pthread_mutex_unlock(&S.mu);
  return r;
}
EXPORT CUresult cuMemSetAccess(CUdeviceptr va, size_t size, const CUmemAccessDesc *desc, size_t count) {
  if (desc == NULL || count == 0) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count; i++)
    if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || desc[i].location.id != 0) return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&S.mu);
  uint64_t covered = 0;
  for (int i = 0; i < S.nmaps; i++)
    if (S.maps[i].va >= va && S.maps[i].va + S.maps[i].size <= va + size) covered += S.maps[i].size;
  if (covered != size) { /* every byte of the range must be mapped */
    pthread_mutex_unlock(&S.mu);
    return CUDA_ERROR_INVALID_VALUE;
  }
  int prot = desc[0].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE ? PROT_READ | PROT_WRITE
             : desc[0].flags == CU_MEM_ACCESS_FLAGS_PROT_READ   ? PROT_READ
                                                                 : PROT_NONE;
  mprotect((void *)(uintptr_t)va, size, prot);
  for (int i = 0; i < S.nmaps; i++)
    if (S.maps[i].va >= va && S.maps[i].va + S.maps[i].size <= va + size) S.maps[i].accessible = prot != PROT_NONE;
  pthread_mutex_unlock(&S.mu);
  return CUDA_SUCCESS;
}

static int find_map(uint64_t p, struct mapping *out) {
  pthread_mutex_lock(&S.mu);
  int found = 0;
  for (int i = 0; i < S.nmaps && !found; i++)
    if (p >= S.maps[i].va && p < S.maps[i].va + S.maps[i].size) {
      *out = S.maps[i];
      found = 1;
    }
  pthread_mutex_unlock(&S.mu);
  return found;
}

EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr p) {
  struct mapping m;
  if (find_map(p, &m)) { /* VMM: the range is the mapping, as on the real driver */
    if (base) *base = m.va;
    if (size) *size = m.size;
    return CUDA_SUCCESS;
  }
  struct block *b = block_of(p);
  if (b == NULL) return CUDA_ERROR_NOT_FOUND;
  if (base) *base = p;
  if (size) *size = b->size;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuPointerGetAttribute(void *data, CUpointer_attribute a, CUdeviceptr p) {
  CUdeviceptr base;
  size_t size;
  switch ((int)a) {
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: {
      CUresult r = cuMemGetAddressRange_v2(&base, &size, p);
      if (r != CUDA_SUCCESS) return CUDA_ERROR_INVALID_VALUE;
      if (a == CU_POINTER_ATTRIBUTE_RANGE_START_ADDR) *(CUdeviceptr *)data = base;
      else *(size_t *)data = size;
      return CUDA_SUCCESS;
    }
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *(CUdeviceptr *)data = p; return CUDA_SUCCESS;
    default: return CUDA_ERROR_NOT_SUPPORTED;
  }
}

/* ---- pools and stream-ordered allocation --------------------------------------------------------------- */

EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *pp) {
  INIT();
  if (pool == NULL || pp == NULL) return CUDA_ERROR_INVALID_VALUE;
  if ((pp->location.type == CU_MEM_LOCATION_TYPE_HOST_NUMA && !S.host_numa) ||
      (pp->location.type == CU_MEM_LOCATION_TYPE_HOST && !S.host_plain))
    return CUDA_ERROR_NOT_SUPPORTED;
  struct pool *p = calloc(1, sizeof *p);
  if (p == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  p->loc = pp->location.type;
  p->id = pp->location.id;
  *pool = (CUmemoryPool)p;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool) { free(pool); return CUDA_SUCCESS; }
EXPORT CUresult cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *d, size_t n) {
  return pool && d && n ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool, CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  *pool = (CUmemoryPool)&S.device_pool;
  return CUDA_SUCCESS;
}
static CUresult from_pool(CUdeviceptr *d, size_t n, CUmemoryPool pool) {
  INIT();
  if (d == NULL || n == 0 || pool == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct pool *p = (struct pool *)pool;
  void *ptr;
  CUresult r = block_alloc(&ptr, n, p->loc == CU_MEM_LOCATION_TYPE_DEVICE ? LOC_DEVICE : (int)p->loc);
  if (r == CUDA_SUCCESS) *d = (CUdeviceptr)(uintptr_t)ptr;
  return r;
}
EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *d, size_t n, CUmemoryPool pool, CUstream s) { (void)s; return from_pool(d, n, pool); }
EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *d, size_t n, CUmemoryPool pool, CUstream s) { (void)s; return from_pool(d, n, pool); }
EXPORT CUresult cuMemAllocAsync(CUdeviceptr *d, size_t n, CUstream s) { (void)s; return from_pool(d, n, (CUmemoryPool)&S.device_pool); }
EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *d, size_t n, CUstream s) { (void)s; return from_pool(d, n, (CUmemoryPool)&S.device_pool); }
EXPORT CUresult cuMemFreeAsync(CUdeviceptr d, CUstream s) { (void)s; return block_free(d, 0); }
EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr d, CUstream s) { (void)s; return block_free(d, 0); }

/* ---- streams and capture --------------------------------------------------------------------------------- */

EXPORT CUresult cuStreamCreate(CUstream *s, unsigned int flags) {
  (void)flags;
  *s = (CUstream)calloc(1, sizeof(struct stream));
  return *s ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuStreamDestroy_v2(CUstream s) { free(s); return CUDA_SUCCESS; }
EXPORT CUresult cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode m) {
  (void)m;
  if (s == NULL) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  ((struct stream *)s)->capturing = 1;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamEndCapture(CUstream s, CUgraph *g) {
  if (s == NULL) return CUDA_ERROR_INVALID_VALUE;
  ((struct stream *)s)->capturing = 0;
  if (g) *g = NULL;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *st) {
  *st = s && ((struct stream *)s)->capturing ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream s, CUstreamCaptureStatus *st) { return cuStreamIsCapturing(s, st); }
EXPORT CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *m) {
  if (m == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUstreamCaptureMode old = tl_mode;
  tl_mode = *m;
  *m = old;
  return CUDA_SUCCESS;
}

/* ---- test introspection (not part of the CUDA API) ------------------------------------------------------- */

EXPORT uint64_t emuv_sim_vram_used(void) { return __atomic_load_n(&S.vram_used, __ATOMIC_RELAXED); }
EXPORT uint64_t emuv_sim_vram_total(void) { INIT(); return S.vram; }
/* Location type (CU_MEM_LOCATION_TYPE_*, 100 = managed) of the memory behind a pointer, -1 unknown. */
EXPORT int emuv_sim_location(uint64_t p) {
  struct mapping m;
  if (find_map(p, &m)) return (int)m.h->prop.location.type;
  struct block *b = block_of(p);
  return b ? b->loc : -1;
}
EXPORT const char *emuv_sim_last_call(void) { return tl_last; }
