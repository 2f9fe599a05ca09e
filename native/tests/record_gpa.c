/* A recording libcuda.so.1 for the cuGetProcAddress fixtures (test/fixtures/cudart*-getprocaddress-
 * requests.tsv): built with SONAME libcuda.so.1 and DT_NEEDED libemuv-real-cuda.so (the layout of the
 * shim), it appends each distinct (symbol, version, flags) that the runtime asks for to the file named
 * by EMUV_RECORD_GPA, in request order, and forwards to the driver behind it. Every other name resolves
 * to that driver through this library's dependency scope, so the runtime sees the driver unchanged.
 * Test tooling only: never installed. */
#define _GNU_SOURCE
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <cudaTypedefs.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char **seen;
static size_t nseen, capseen;

static void *real_sym(const char *name) {
  void *h = dlopen("libemuv-real-cuda.so", RTLD_NOW | RTLD_NOLOAD);
  return h ? dlsym(h, name) : NULL;
}

static void record(const char *sym, int ver, unsigned long long flags) {
  const char *path = getenv("EMUV_RECORD_GPA");
  if (path == NULL) return;
  char key[512];
  snprintf(key, sizeof key, "%s\t%d\t%llu", sym ? sym : "", ver, flags);
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < nseen; i++)
    if (strcmp(seen[i], key) == 0) {
      pthread_mutex_unlock(&mu);
      return;
    }
  if (nseen == capseen) {
    capseen = capseen ? capseen * 2 : 256;
    seen = realloc(seen, capseen * sizeof *seen);
  }
  seen[nseen++] = strdup(key);
  FILE *f = fopen(path, "a");
  if (f) {
    fprintf(f, "%s\n", key);
    fclose(f);
  }
  pthread_mutex_unlock(&mu);
}

EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *st);
EXPORT CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags);

/* cudart asks for cuGetProcAddress itself and makes every later request through the answer: a
 * self-lookup gets this library's function of the same ABI, as the shim does, or nothing would be seen. */
static void self_lookup(void **pfn) {
  if (pfn == NULL || *pfn == NULL) return;
  if (*pfn == real_sym("cuGetProcAddress")) *pfn = (void *)&cuGetProcAddress;
  else if (*pfn == real_sym("cuGetProcAddress_v2")) *pfn = (void *)&cuGetProcAddress_v2;
}

EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *st) {
  record(sym, ver, flags);
  PFN_cuGetProcAddress_v12000 f = (PFN_cuGetProcAddress_v12000)real_sym("cuGetProcAddress_v2");
  CUresult r = f ? f(sym, pfn, ver, flags, st) : CUDA_ERROR_NOT_INITIALIZED;
  if (r == CUDA_SUCCESS) self_lookup(pfn);
  return r;
}

EXPORT CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags) {
  record(sym, ver, flags);
  PFN_cuGetProcAddress_v11030 f = (PFN_cuGetProcAddress_v11030)real_sym("cuGetProcAddress");
  CUresult r = f ? f(sym, pfn, ver, flags) : CUDA_ERROR_NOT_INITIALIZED;
  if (r == CUDA_SUCCESS) self_lookup(pfn);
  return r;
}
