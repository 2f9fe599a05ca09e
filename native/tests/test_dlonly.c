/* A program of our users' kind, linked with nothing but -ldl: it opens the driver by SONAME, resolves
 * through cuGetProcAddress like cudart, sees the virtual totals, allocates past the VRAM share and reads
 * its data back from the spilled part. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*gpa_t)(const char *, void **, int, unsigned long long, int *);
typedef int (*init_t)(unsigned);
typedef int (*info_t)(size_t *, size_t *);
typedef int (*alloc_t)(unsigned long long *, size_t);
typedef int (*free_t)(unsigned long long);
typedef int (*htod_t)(unsigned long long, const void *, size_t);
typedef int (*dtoh_t)(void *, unsigned long long, size_t);

int main(void) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  if (!h) { printf("FAIL dlonly: dlopen\n"); return 1; }
  gpa_t gpa = (gpa_t)dlsym(h, "cuGetProcAddress_v2");
  void *p[6] = {0};
  const char *names[6] = {"cuInit", "cuMemGetInfo", "cuMemAlloc", "cuMemFree", "cuMemcpyHtoD", "cuMemcpyDtoH"};
  int vers[6] = {2000, 3020, 3020, 3020, 3020, 3020};
  for (int i = 0; i < 6; i++) gpa(names[i], &p[i], vers[i], 0, NULL);
  int ok = 1;
  ok &= ((init_t)p[0])(0) == 0;
  size_t fr = 0, tot = 0;
  ok &= ((info_t)p[1])(&fr, &tot) == 0;
  int totals = tot == (size_t)6 << 30 && fr == tot;
  printf("%s dlonly: virtual total %zu (EMUV_LIMIT_BYTES=6Gi), free %zu\n", totals ? "PASS" : "FAIL", tot, fr);
  unsigned long long d = 0;
  size_t n = (size_t)3 << 30; /* 3 GiB with a 2 GiB share: spills */
  ok &= ((alloc_t)p[2])(&d, n) == 0;
  size_t fr2 = 0;
  ((info_t)p[1])(&fr2, &tot);
  char msg[] = "written past the VRAM share, read back through the shim";
  ok &= ((htod_t)p[4])(d + n - sizeof msg, msg, sizeof msg) == 0;
  char back[sizeof msg] = "";
  ok &= ((dtoh_t)p[5])(back, d + n - sizeof msg, sizeof msg) == 0;
  int spill = ok && strcmp(back, msg) == 0 && fr2 == tot - n;
  printf("%s dlonly: 3 GiB allocation over a 2 GiB share, data at its end reads back, free %zu\n", spill ? "PASS" : "FAIL", fr2);
  ok &= ((free_t)p[3])(d) == 0;
  return ok && totals && spill ? 0 : 1;
}
