/* Replays the 440 cuGetProcAddress_v2 requests libcudart 13.0 issues at init (the TSV fixture) through
 * the shim and against the simulated driver directly, and checks pointer-identity routing. */

#include "t.h"

static void *shim_self, *sim_self;

static int in_shim(void *p) {
  Dl_info i;
  return p && dladdr(p, &i) && strstr(i.dli_fname, "libemuv-cuda.so") != NULL;
}

int main(int argc, char **argv) {
  const char *tsv = argc > 1 ? argv[1] : "../test/fixtures/cudart13-getprocaddress-requests.tsv";
  const char *simpath = argc > 2 ? argv[2] : "build/sim/libcuda.so.1";
  setenv("EMUV_VRAM_SHARE", "1Gi", 1);
  setenv("EMUV_LIMIT_BYTES", "3Gi", 1);
  struct cu c = cu_load();
  shim_self = c.h;
  char real[4096];
  if (!realpath(simpath, real)) return 2;
  sim_self = dlopen(real, RTLD_NOW | RTLD_NOLOAD);
  PFN_cuGetProcAddress_v12000 sim_gpa = (PFN_cuGetProcAddress_v12000)dlsym(sim_self, "cuGetProcAddress_v2");
  PFN_cuGetProcAddress_v12000 gpa = c.GetProcAddress_v2;
  FILE *f = fopen(tsv, "r");
  if (f == NULL || sim_gpa == NULL) {
    fprintf(stderr, "cannot open %s or the simulated driver\n", tsv);
    return 2;
  }

  int lines = 0, hooked = 0, unhooked = 0, nulls = 0, mism = 0;
  TEST("gpa from dlsym(libcuda.so.1) is the shim's") CHECK(in_shim((void *)gpa));
  TEST("the 440 cudart-13 requests route by pointer identity") {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      if (line[0] == '#') continue;
      char sym[256] = "";
      int ver = 0;
      unsigned long long flags = 0;
      if (line[0] == '\t') sscanf(line, "\t%d\t%llu", &ver, &flags);
      else sscanf(line, "%255[^\t]\t%d\t%llu", sym, &ver, &flags);
      lines++;
      void *p1 = (void *)1, *p2 = (void *)1;
      CUdriverProcAddressQueryResult s1 = 99, s2 = 98;
      CUresult r1 = gpa(sym, &p1, ver, flags, &s1), r2 = sim_gpa(sym, &p2, ver, flags, &s2);
      if (r1 != r2 || s1 != s2) { mism++; fprintf(stderr, "  %s@%d/%llu: status differs\n", sym, ver, flags); continue; }
      if (p2 == NULL) { nulls++; if (p1 != NULL) mism++; continue; }
      Dl_info di;
      if (!dladdr(p2, &di) || di.dli_sname == NULL) { mism++; continue; }
      void *hook = dlsym(shim_self, di.dli_sname); /* shim's export of the same ABI, if hooked */
      if (in_shim(hook)) {
        hooked++;
        if (p1 != hook) { mism++; fprintf(stderr, "  %s@%d/%llu: got %p, want hook %s\n", sym, ver, flags, p1, di.dli_sname); }
      } else {
        unhooked++;
        if (p1 != p2) { mism++; fprintf(stderr, "  %s@%d/%llu: unhooked pointer was changed\n", sym, ver, flags); }
      }
    }
    CHECK_EQ_U64(lines, 440);
    CHECK_EQ_U64(mism, 0);
    CHECK(hooked >= 20); /* 23 with hooks.def v1: both cuGetProcAddress ABIs, cuMemAlloc/Free/GetInfo, async _ptsz twins, ... */
    CHECK(unhooked > 300);
    printf("# replay: %d requests, %d hooked, %d unhooked (driver's own pointer), %d unresolved\n", lines, hooked,
           unhooked, nulls);
  }
  TEST("self-lookup: 11030 gives the 4-argument wrapper, 12000 the 5-argument one") {
    void *p4 = NULL, *p5 = NULL;
    CHECK(gpa("cuGetProcAddress", &p4, 11030, 0, NULL) == CUDA_SUCCESS);
    CHECK(gpa("cuGetProcAddress", &p5, 12000, 0, NULL) == CUDA_SUCCESS);
    CHECK(p4 == dlsym(shim_self, "cuGetProcAddress") && in_shim(p4));
    CHECK(p5 == dlsym(shim_self, "cuGetProcAddress_v2") && in_shim(p5));
    void *x = NULL;
    CHECK(((PFN_cuGetProcAddress_v11030)p4)("cuMemAlloc", &x, 3020, 0) == CUDA_SUCCESS);
    CHECK(x == dlsym(shim_self, "cuMemAlloc_v2"));
  }
  TEST("legacy and per-thread lookups give different hooks") {
    void *a = NULL, *b = NULL;
    CHECK(gpa("cuMemAllocAsync", &a, 11020, 0, NULL) == CUDA_SUCCESS);
    CHECK(gpa("cuMemAllocAsync", &b, 11020, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, NULL) == CUDA_SUCCESS);
    CHECK(in_shim(a) && in_shim(b) && a != b);
    CHECK(b == dlsym(shim_self, "cuMemAllocAsync_ptsz"));
  }
  TEST("ABI families: cuMemAdvise 8000 takes a CUdevice, 12020 a CUmemLocation by value") {
    const char *(*last)(void) = (const char *(*)(void))dlsym(sim_self, "emuv_sim_last_call");
    void *a8 = NULL, *a12 = NULL;
    gpa("cuMemAdvise", &a8, 8000, 0, NULL);
    gpa("cuMemAdvise", &a12, 12020, 0, NULL);
    CHECK(a8 != NULL && a12 != NULL && a8 != a12);
    ((PFN_cuMemAdvise_v8000)a8)(0x1000, 64, CU_MEM_ADVISE_SET_ACCESSED_BY, 0);
    CHECK(strstr(last(), "cuMemAdvise ") != NULL && strstr(last(), "dev=0") != NULL);
    CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_HOST_NUMA, .id = 0};
    ((PFN_cuMemAdvise_v12020)a12)(0x1000, 64, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, loc);
    CHECK(strstr(last(), "cuMemAdvise_v2") != NULL && strstr(last(), "loc=3:0") != NULL);
  }
  TEST("hooked pointers from cuGetProcAddress behave as hooks (virtual cuMemGetInfo at 3020)") {
    void *p = NULL;
    CHECK(gpa("cuMemGetInfo", &p, 3020, 0, NULL) == CUDA_SUCCESS);
    size_t fr = 0, tot = 0;
    CHECK(((PFN_cuMemGetInfo_v3020)p)(&fr, &tot) == CUDA_SUCCESS);
    CHECK_EQ_U64(tot, 3 * GiB);
    void *legacy = NULL;
    CHECK(gpa("cuMemGetInfo", &legacy, 2000, 0, NULL) == CUDA_SUCCESS);
    CHECK(legacy != NULL && !in_shim(legacy)); /* the 32-bit ABI is not hooked: driver's own */
  }
  TEST("version and symbol status follow the driver") {
    void *p = (void *)1;
    CUdriverProcAddressQueryResult s;
    CHECK(gpa("cuMemCreate", &p, 10010, 0, &s) == CUDA_SUCCESS && p == NULL && s == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    CHECK(gpa("cuNoSuchThing", &p, 13000, 0, &s) == CUDA_SUCCESS && p == NULL && s == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    CHECK(gpa("cuMemAlloc", &p, 99000, 0, &s) == CUDA_ERROR_INVALID_VALUE);
  }
  T_DONE();
}
