/* The demo's workload: what a model server does to the CUDA driver, linked with nothing but -ldl.
 * It opens the driver by SONAME (reaching the emuv shim when preloaded), prints the card it sees
 * (CUDA and NVML), allocates EMUV_DEMO_BYTES (default 20 GiB) in 1 GiB tensors like a model loading
 * its weights, writes into the last one and reads it back, prints what it sees again, then holds
 * its memory until its standard input closes (so the agent can be asked about it), frees and exits. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*gpa_t)(const char *, void **, int, unsigned long long, int *);
typedef int (*init_t)(unsigned);
typedef int (*devget_t)(int *, int);
typedef int (*info_t)(size_t *, size_t *);
typedef int (*total_t)(size_t *, int);
typedef int (*alloc_t)(unsigned long long *, size_t);
typedef int (*free_t)(unsigned long long);
typedef int (*htod_t)(unsigned long long, const void *, size_t);
typedef int (*dtoh_t)(void *, unsigned long long, size_t);
typedef struct { unsigned long long total, free, used; } nvml_memory;
typedef int (*nvml_init_t)(void);
typedef int (*nvml_handle_t)(unsigned, void **);
typedef int (*nvml_mem_t)(void *, nvml_memory *);

#define GiB (1ull << 30)

static void *sym(gpa_t gpa, const char *name, int version) {
  void *p = NULL;
  if (gpa(name, &p, version, 0, NULL) != 0 || !p) {
    fprintf(stderr, "vram-demo: %s unavailable\n", name);
    exit(2);
  }
  return p;
}

int main(void) {
  void *cuda = dlopen("libcuda.so.1", RTLD_NOW);
  if (!cuda) { fprintf(stderr, "vram-demo: %s\n", dlerror()); return 2; }
  gpa_t gpa = (gpa_t)dlsym(cuda, "cuGetProcAddress_v2");
  if (!gpa) { fprintf(stderr, "vram-demo: no cuGetProcAddress_v2\n"); return 2; }
  init_t cuInit = (init_t)sym(gpa, "cuInit", 2000);
  devget_t cuDeviceGet = (devget_t)sym(gpa, "cuDeviceGet", 2000);
  info_t cuMemGetInfo = (info_t)sym(gpa, "cuMemGetInfo", 3020);
  total_t cuDeviceTotalMem = (total_t)sym(gpa, "cuDeviceTotalMem", 3020);
  alloc_t cuMemAlloc = (alloc_t)sym(gpa, "cuMemAlloc", 3020);
  free_t cuMemFree = (free_t)sym(gpa, "cuMemFree", 3020);
  htod_t cuMemcpyHtoD = (htod_t)sym(gpa, "cuMemcpyHtoD", 3020);
  dtoh_t cuMemcpyDtoH = (dtoh_t)sym(gpa, "cuMemcpyDtoH", 3020);
  if (cuInit(0) != 0) { fprintf(stderr, "vram-demo: cuInit failed\n"); return 2; }
  int dev = 0;
  cuDeviceGet(&dev, 0);

  size_t fr = 0, tot = 0, devtot = 0;
  cuMemGetInfo(&fr, &tot);
  cuDeviceTotalMem(&devtot, dev);
  nvml_memory nm = {0};
  void *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  if (nvml) {
    nvml_init_t ni = (nvml_init_t)dlsym(nvml, "nvmlInit_v2");
    nvml_handle_t nh = (nvml_handle_t)dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2");
    nvml_mem_t nmem = (nvml_mem_t)dlsym(nvml, "nvmlDeviceGetMemoryInfo");
    void *h = NULL;
    if (ni && nh && nmem && ni() == 0 && nh(0, &h) == 0) nmem(h, &nm);
  }
  printf("card: cuMemGetInfo total %.1f GiB free %.1f GiB; cuDeviceTotalMem %.1f GiB; NVML total %.1f GiB\n",
         (double)tot / GiB, (double)fr / GiB, (double)devtot / GiB, (double)nm.total / GiB);

  const char *want = getenv("EMUV_DEMO_BYTES");
  unsigned long long bytes = want ? strtoull(want, NULL, 10) : 20 * GiB;
  size_t n = (size_t)((bytes + GiB - 1) / GiB);
  unsigned long long *ptrs = calloc(n, sizeof *ptrs);
  size_t got = 0;
  for (; got < n; got++) {
    int rc = cuMemAlloc(&ptrs[got], GiB);
    if (rc != 0) { printf("allocation %zu of 1 GiB refused (CUDA error %d)\n", got + 1, rc); break; }
  }
  printf("allocated %zu x 1 GiB through cuMemAlloc\n", got);
  if (got > 0) {
    char msg[] = "bytes written to the last tensor, read back through the driver";
    char back[sizeof msg] = "";
    unsigned long long at = ptrs[got - 1] + GiB - sizeof msg;
    int ok = cuMemcpyHtoD(at, msg, sizeof msg) == 0 && cuMemcpyDtoH(back, at, sizeof msg) == 0 && strcmp(back, msg) == 0;
    printf("data check on the last tensor: %s\n", ok ? "ok" : "FAILED");
  }
  cuMemGetInfo(&fr, &tot);
  printf("card after loading: total %.1f GiB, free %.1f GiB\n", (double)tot / GiB, (double)fr / GiB);
  printf("ready\n");
  fflush(stdout);
  char buf[64];
  while (fread(buf, 1, sizeof buf, stdin) > 0) {
  }
  for (size_t i = 0; i < got; i++) cuMemFree(ptrs[i]);
  free(ptrs);
  return got == n ? 0 : 1;
}
