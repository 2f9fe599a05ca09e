/* Replays the cuGetProcAddress requests that pinned cudart versions issue at init (the TSV fixtures in
 * test/fixtures/, recorded by test/realsw with tests/record_gpa.c) through the shim and against the
 * simulated driver directly, and checks pointer-identity routing: every request for an entry point emuv
 * hooks, at whatever version it is asked, must land in a hook (build/gen/hook_abis.h, generated from
 * hooks.def and cudaTypedefs.h, says which are hooked); every other answer must be the driver's own.
 * Usage: test_replay SIM_LIBCUDA FIXTURE.tsv... */

#include "t.h"

struct abi {
  const char *base;
  int version, variant;
  const char *export_name;
  int hooked;
};
static const struct abi abis[] = {
#define EMUV_ABI(base, version, variant, export_name, hooked) {base, version, variant, export_name, hooked},
#include "hook_abis.h"
#undef EMUV_ABI
};
#define NABIS (sizeof abis / sizeof abis[0])

static void *shim_self, *sim_self;

static int in_shim(void *p) {
  Dl_info i;
  return p && dladdr(p, &i) && strstr(i.dli_fname, "libemuv-cuda.so") != NULL;
}

static int is_hooked_base(const char *sym) {
  for (size_t i = 0; i < NABIS; i++)
    if (abis[i].hooked && strcmp(abis[i].base, sym) == 0) return 1;
  return 0;
}

struct tally {
  int lines, hooked, unhooked, nulls, mism;
};

static void replay(const char *tsv, PFN_cuGetProcAddress_v12000 gpa, PFN_cuGetProcAddress_v12000 sim_gpa,
                   struct tally *t) {
  FILE *f = fopen(tsv, "r");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", tsv);
    t->mism++;
    return;
  }
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    char sym[256] = "";
    int ver = 0;
    unsigned long long flags = 0;
    if (line[0] == '\t') sscanf(line, "\t%d\t%llu", &ver, &flags);
    else sscanf(line, "%255[^\t]\t%d\t%llu", sym, &ver, &flags);
    t->lines++;
    void *p1 = (void *)1, *p2 = (void *)1;
    CUdriverProcAddressQueryResult s1 = 99, s2 = 98;
    CUresult r1 = gpa(sym, &p1, ver, flags, &s1), r2 = sim_gpa(sym, &p2, ver, flags, &s2);
    if (r1 != r2 || s1 != s2) { t->mism++; fprintf(stderr, "  %s@%d/%llu: status differs\n", sym, ver, flags); continue; }
    if (p2 == NULL) { t->nulls++; if (p1 != NULL) t->mism++; continue; }
    Dl_info di;
    if (!dladdr(p2, &di) || di.dli_sname == NULL) { t->mism++; continue; }
    if (is_hooked_base(sym)) {
      t->hooked++;
      void *hook = dlsym(shim_self, di.dli_sname); /* the shim's export of the ABI the driver chose */
      if (!in_shim(p1) || p1 != hook) {
        t->mism++;
        fprintf(stderr, "  %s@%d/%llu: hooked entry point reaches the driver directly (%s)\n", sym, ver, flags,
                di.dli_sname);
      }
    } else {
      t->unhooked++;
      if (p1 != p2) { t->mism++; fprintf(stderr, "  %s@%d/%llu: unhooked pointer was changed\n", sym, ver, flags); }
    }
  }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: test_replay SIM_LIBCUDA FIXTURE.tsv...\n");
    return 2;
  }
  const char *simpath = argv[1];
  setenv("EMUV_VRAM_SHARE", "1Gi", 1);
  setenv("EMUV_LIMIT_BYTES", "3Gi", 1);
  struct cu c = cu_load();
  shim_self = c.h;
  char real[4096];
  if (!realpath(simpath, real)) return 2;
  sim_self = dlopen(real, RTLD_NOW | RTLD_NOLOAD);
  PFN_cuGetProcAddress_v12000 sim_gpa = (PFN_cuGetProcAddress_v12000)dlsym(sim_self, "cuGetProcAddress_v2");
  PFN_cuGetProcAddress_v12000 gpa = c.GetProcAddress_v2;
  if (sim_gpa == NULL) {
    fprintf(stderr, "cannot open the simulated driver\n");
    return 2;
  }

  TEST("gpa from dlsym(libcuda.so.1) is the shim's") CHECK(in_shim((void *)gpa));
  TEST("every ABI of a hooked entry point is a hook or listed legacy (hook_abis.h)") {
    int hooked = 0, legacy = 0;
    for (size_t i = 0; i < NABIS; i++) {
      void *h = dlsym(shim_self, abis[i].export_name);
      if (abis[i].hooked) {
        hooked++;
        CHECK(in_shim(h));
      } else legacy++;
    }
    CHECK(hooked >= 37);
    printf("# %d hooked ABIs, %d legacy (32-bit) ABIs left to the driver\n", hooked, legacy);
  }
  for (int i = 2; i < argc; i++) {
    struct tally t = {0};
    char name[600];
    snprintf(name, sizeof name, "every request of %s routes by pointer identity", strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i]);
    TEST(name) {
      replay(argv[i], gpa, sim_gpa, &t);
      CHECK(t.lines > 100); /* a fixture that stopped early (a failed init) would prove little */
      CHECK_EQ_U64(t.mism, 0);
      CHECK(t.hooked >= 20);
      CHECK(t.unhooked > 200);
      printf("# replay %s: %d requests, %d hooked, %d unhooked (driver's own pointer), %d unresolved\n", argv[i],
             t.lines, t.hooked, t.unhooked, t.nulls);
    }
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
