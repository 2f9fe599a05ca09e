/* Loader behaviour of the SONAME shim (option B). */
#include "t.h"

static const char *file_of(void *p) {
  static char buf[4][512];
  static int k;
  Dl_info i;
  if (!p || !dladdr(p, &i)) return "(none)";
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s", i.dli_fname);
  return buf[k];
}
static int ends(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

int main(int argc, char **argv) {
  const char *simpath = argc > 1 ? argv[1] : "build/sim/libcuda.so.1";
  setenv("EMUV_VRAM_SHARE", "1Gi", 1);
  setenv("EMUV_LIMIT_BYTES", "2Gi", 1);
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  void *n = dlopen("libnvidia-ml.so.1", RTLD_NOW);
  TEST("dlopen(libcuda.so.1) and dlopen(libnvidia-ml.so.1) return the shims") {
    CHECK(h != NULL && n != NULL);
    CHECK(ends(file_of(dlsym(h, "cuMemAlloc_v2")), "libemuv-cuda.so"));
    CHECK(ends(file_of(dlsym(n, "nvmlDeviceGetMemoryInfo")), "libemuv-nvml.so"));
  }
  TEST("unhooked names resolve to the real driver through the shim's dependency scope") {
    CHECK(ends(file_of(dlsym(h, "cuLaunchKernel")), "libemuv-real-cuda.so"));
    CHECK(ends(file_of(dlsym(h, "cuMemcpyHtoD_v2")), "libemuv-real-cuda.so"));
    CHECK(ends(file_of(dlsym(n, "nvmlDeviceGetCount_v2")), "libemuv-real-nvml.so"));
  }
  char real[4096];
  TEST("unhooked entry points are the driver's own pointer (zero overhead)") {
    CHECK(realpath(simpath, real) != NULL);
    void *sim = dlopen(real, RTLD_NOW | RTLD_NOLOAD);
    CHECK(sim != NULL);
    const char *names[] = {"cuLaunchKernel", "cuMemcpyHtoD_v2", "cuStreamCreate", "cuEventRecord", "cuMemsetD8_v2"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) CHECK(dlsym(h, names[i]) == dlsym(sim, names[i]));
  }
  TEST("RTLD_DEFAULT finds the hooks first (the preload leads the global scope)") {
    CHECK(dlsym(RTLD_DEFAULT, "cuMemAlloc_v2") == dlsym(h, "cuMemAlloc_v2"));
    CHECK(dlsym(RTLD_DEFAULT, "cuGetProcAddress_v2") == dlsym(h, "cuGetProcAddress_v2"));
  }
  TEST("absolute-path dlopen of the real file is the documented bypass") {
    void *sim = dlopen(real, RTLD_NOW);
    CHECK(sim != NULL && sim != h);
    CHECK(!ends(file_of(dlsym(sim, "cuMemAlloc_v2")), "libemuv-cuda.so"));
  }
  TEST("hidden internals: only hooks are exported") {
    CHECK(dlsym(h, "emuv_reserve_total") == NULL);
    CHECK(dlsym(h, "emuv_config_load") == NULL);
    CHECK(dlsym(h, "emuv_shim_report") != NULL);
  }
  T_DONE();
}
