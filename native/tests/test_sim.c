/* The simulated driver itself, without the shim (docs/simulated-driver.md): the private export tables
 * cudart needs (and the one line for anything unknown), the integrity hash's building block, interior
 * pointers of every kind of allocation, contexts, events, errors, launches failing clearly, and the card's
 * VRAM shared by processes (another process's allocation shows in cuMemGetInfo and NVML, fills the card,
 * and comes back when that process dies).
 * Usage: test_sim SIM_LIBCUDA SIM_LIBNVML */
#include <signal.h>
#include <sys/wait.h>
#include "t.h"

static void *h;
#define SYM(name) ((__typeof__(&name))dlsym(h, #name))
#define F(name) __typeof__(&name) p_##name = SYM(name)

/* Runs fn with stderr captured; returns the number of lines and copies the first one. */
static int capture_stderr(void (*fn)(void *), void *arg, char *first, size_t n) {
  char path[] = "/tmp/emuv-sim-stderr-XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  unlink(path);
  fflush(stderr);
  dup2(fd, 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char buf[4096] = {0};
  ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  int lines = 0;
  for (ssize_t i = 0; i < got; i++) lines += buf[i] == '\n';
  if (first) {
    snprintf(first, n, "%s", buf);
    char *nl = strchr(first, '\n');
    if (nl) *nl = '\0';
  }
  return lines;
}

static CUresult last_r;
static void unknown_table(void *a) {
  const void *t = (const void *)1;
  CUuuid id = {{0x01, 0x02, 0x03, 0x04}};
  last_r = ((CUresult(*)(const void **, const CUuuid *))a)(&t, &id);
}
static void unknown_slot(void *a) { last_r = ((CUresult(*)(void))a)(); }

static int dtor_calls;
static void cls_dtor(CUcontext c, void *k, void *v) { dtor_calls++; }

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  char dir[512], state[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-sim-XXXXXX")) return 2;
  snprintf(state, sizeof state, "%s/card.state", dir);
  setenv("EMUV_SIM_STATE", state, 1); /* this test's own card */
  setenv("EMUV_SIM_VRAM", "8Gi", 1);
  unsetenv("EMUV_SIM_TRACE");
  h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  void *nv = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL || nv == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  F(cuInit); F(cuGetExportTable); F(cuMemAlloc_v2); F(cuMemFree_v2); F(cuMemGetInfo_v2); F(cuMemGetAddressRange_v2);
  F(cuPointerGetAttribute); F(cuMemAllocPitch_v2); F(cuMemAllocAsync); F(cuMemFreeAsync); F(cuMemAllocManaged);
  F(cuMemHostAlloc); F(cuMemFreeHost); F(cuMemHostRegister_v2); F(cuMemHostUnregister); F(cuMemAddressReserve);
  F(cuMemCreate); F(cuMemMap); F(cuMemSetAccess); F(cuMemUnmap); F(cuMemRelease); F(cuMemAddressFree);
  F(cuDeviceGetAttribute); F(cuCtxGetCurrent); F(cuDevicePrimaryCtxRetain); F(cuCtxPushCurrent_v2);
  F(cuCtxPopCurrent_v2); F(cuDevicePrimaryCtxReset_v2); F(cuDevicePrimaryCtxRelease); F(cuEventCreate);
  F(cuEventRecord); F(cuEventElapsedTime); F(cuEventDestroy_v2); F(cuGetErrorName); F(cuGetErrorString);
  F(cuModuleLoadData); F(cuModuleGetFunction); F(cuLaunchKernel); F(cuMemcpyHtoD_v2); F(cuMemcpyDtoH_v2);
  void (*md2)(const void *, size_t, uint8_t *) = (void (*)(const void *, size_t, uint8_t *))dlsym(h, "emuv_sim_md2");
  uint64_t (*card_used)(void) = (uint64_t (*)(void))dlsym(h, "emuv_sim_card_used");
  CHECK(p_cuInit(0) == CUDA_SUCCESS);

  TEST("an RTX 4060: compute capability 8.9, 24 SMs, 8 GiB") {
    int v[3] = {0};
    p_cuDeviceGetAttribute(&v[0], CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0);
    p_cuDeviceGetAttribute(&v[1], CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0);
    p_cuDeviceGetAttribute(&v[2], CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0);
    CHECK(v[0] == 8 && v[1] == 9 && v[2] == 24);
    size_t f = 0, t = 0;
    CHECK(p_cuMemGetInfo_v2(&f, &t) == CUDA_SUCCESS && t == 8 * GiB && f == t);
    CHECK(p_cuDeviceGetAttribute(&v[0], (CUdevice_attribute)9999, 0) == CUDA_ERROR_INVALID_VALUE);
  }

  TEST("private tables: the ones cudart 12.4 and 13.2 ask for, and one line for an unknown one") {
    static const unsigned char ids[][16] = {
        {0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9},
        {0xf8, 0xcf, 0xf9, 0x51, 0x21, 0x46, 0x8b, 0x4e, 0xb9, 0xe2, 0xfb, 0x46, 0x9e, 0x7c, 0x0d, 0xd9},
        {0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74, 0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66},
        {0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb, 0x47, 0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc},
        {0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11, 0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93},
        {0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43, 0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e},
        {0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b, 0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
      const void *t = NULL;
      CUuuid id;
      memcpy(id.bytes, ids[i], 16);
      CHECK(p_cuGetExportTable(&t, &id) == CUDA_SUCCESS && t != NULL);
    }
    char line[512];
    int n = capture_stderr(unknown_table, (void *)p_cuGetExportTable, line, sizeof line);
    CHECK(last_r == CUDA_ERROR_INVALID_VALUE);
    CHECK(n == 1 && strncmp(line, "emuv-sim: ", 10) == 0 && strstr(line, "01020304-0000") != NULL);
  }

  TEST("private tables: an unimplemented slot says which, once, and fails") {
    const void **t = NULL;
    CUuuid id = {{0x6b, (char)0xd5, (char)0xfb, 0x6c, 0x5b, (char)0xf4, (char)0xe7, 0x4a, (char)0x89, (char)0x87,
                  (char)0xd9, 0x39, 0x12, (char)0xfd, (char)0x9d, (char)0xf9}};
    CHECK(p_cuGetExportTable((const void **)&t, &id) == CUDA_SUCCESS);
    CHECK((uintptr_t)t[0] == 13 * sizeof(void *)); /* the size comes first */
    char line[512];
    int n = capture_stderr(unknown_slot, (void *)t[3], line, sizeof line);
    CHECK(last_r == CUDA_ERROR_NOT_SUPPORTED && n == 1 && strstr(line, "6bd5fb6c-5bf4-e74a-8987-d93912fd9df9") &&
          strstr(line, "slot 3"));
  }

  TEST("private tables: primary context, current context, context-local storage and its destructor") {
    const void **rt = NULL, **tls = NULL, **cls = NULL;
    CUuuid a = {{0x6b, (char)0xd5, (char)0xfb, 0x6c, 0x5b, (char)0xf4, (char)0xe7, 0x4a, (char)0x89, (char)0x87,
                 (char)0xd9, 0x39, 0x12, (char)0xfd, (char)0x9d, (char)0xf9}};
    CUuuid b = {{0x42, (char)0xd8, 0x5a, (char)0x81, 0x23, (char)0xf6, (char)0xcb, 0x47, (char)0x82, (char)0x98,
                 (char)0xf6, (char)0xe7, (char)0x8a, 0x3a, (char)0xec, (char)0xdc}};
    CUuuid c = {{(char)0xc6, (char)0x93, 0x33, 0x6e, 0x11, 0x21, (char)0xdf, 0x11, (char)0xa8, (char)0xc3, 0x68,
                 (char)0xf3, 0x55, (char)0xd8, (char)0x95, (char)0x93}};
    p_cuGetExportTable((const void **)&rt, &a);
    p_cuGetExportTable((const void **)&tls, &b);
    p_cuGetExportTable((const void **)&cls, &c);
    CUcontext prim = NULL, cur = (CUcontext)1, retained = NULL, popped = NULL;
    CHECK(((CUresult(*)(CUcontext *, CUdevice))rt[2])(&prim, 0) == CUDA_SUCCESS && prim != NULL);
    CHECK(p_cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur == NULL); /* nothing current yet */
    CHECK(p_cuDevicePrimaryCtxRetain(&retained, 0) == CUDA_SUCCESS && retained == prim);
    CHECK(p_cuCtxPushCurrent_v2(prim) == CUDA_SUCCESS);
    CHECK(((CUresult(*)(CUcontext *))tls[2])(&cur) == CUDA_SUCCESS && cur == prim);
    int key = 0, value = 7;
    void *got = NULL;
    CUresult (*put)(CUcontext, void *, void *, void (*)(CUcontext, void *, void *)) = (__typeof__(put))cls[0];
    CUresult (*get)(void **, CUcontext, void *) = (__typeof__(get))cls[2];
    CHECK(get(&got, NULL, &key) == CUDA_ERROR_INVALID_HANDLE);
    CHECK(put(NULL, &key, &value, cls_dtor) == CUDA_SUCCESS);
    CHECK(get(&got, prim, &key) == CUDA_SUCCESS && got == &value);
    CHECK(p_cuDevicePrimaryCtxReset_v2(0) == CUDA_SUCCESS); /* the runtime learns its state is gone */
    CHECK(dtor_calls == 1 && get(&got, prim, &key) == CUDA_ERROR_INVALID_HANDLE);
    CHECK(p_cuCtxPopCurrent_v2(&popped) == CUDA_SUCCESS && popped == prim);
    CHECK(p_cuDevicePrimaryCtxRelease(0) == CUDA_SUCCESS); /* a reset does not release */
    CHECK(p_cuDevicePrimaryCtxRelease(0) == CUDA_ERROR_INVALID_CONTEXT);
  }

  TEST("integrity check: MD2 (RFC 1319 vectors) and the constant answers") {
    static const struct { const char *in, *hex; } v[] = {
        {"", "8350e5a3e24c153df2275c9f80692773"},
        {"abc", "da853b0d3f88d99b30283a69e6ded6bb"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
         "d5976f79d83d3a0dc9806c3c66f3efd8"}};
    for (size_t i = 0; i < 3; i++) {
      uint8_t d[16];
      char hex[33];
      md2(v[i].in, strlen(v[i].in), d);
      for (int j = 0; j < 16; j++) sprintf(hex + 2 * j, "%02x", d[j]);
      CHECK(strcmp(hex, v[i].hex) == 0);
    }
    const void **t = NULL;
    CUuuid id = {{(char)0xd4, 0x08, 0x20, 0x55, (char)0xbd, (char)0xe6, 0x70, 0x4b, (char)0x8d, 0x34, (char)0xba, 0x12,
                  0x3c, 0x66, (char)0xe1, (char)0xf2}};
    p_cuGetExportTable((const void **)&t, &id);
    CUresult (*check)(uint32_t, uint64_t, uint64_t *) = (__typeof__(check))t[1];
    uint64_t out[2], out2[2];
    CHECK(check(13020, 1, out) == CUDA_SUCCESS && out[0] == 0x3341181c03cb675cull && out[1] == 0x8ed383aa1f4cd1e8ull);
    CHECK(check(12041, 1, out) == CUDA_SUCCESS && out[0] == 0x1841181c03cb675cull);
    CHECK(check(13022, 1000, out) == CUDA_SUCCESS && check(13022, 1001, out2) == CUDA_SUCCESS);
    CHECK(out[0] != out2[0] || out[1] != out2[1]); /* the seconds are hashed */
  }

  TEST("interior pointers of every kind of allocation give the whole allocation") {
    CUdeviceptr p[6] = {0}, base = 0;
    size_t size = 0, pitch = 0;
    void *host = NULL;
    CHECK(p_cuMemAlloc_v2(&p[0], 3 * MiB + 5) == CUDA_SUCCESS);
    CHECK(p_cuMemAllocPitch_v2(&p[1], &pitch, 1000, 100, 4) == CUDA_SUCCESS);
    CHECK(p_cuMemAllocAsync(&p[2], 5 * MiB, NULL) == CUDA_SUCCESS);
    CHECK(p_cuMemAllocManaged(&p[3], 2 * MiB, CU_MEM_ATTACH_GLOBAL) == CUDA_SUCCESS);
    CHECK(p_cuMemHostAlloc(&host, 1 * MiB, 0) == CUDA_SUCCESS);
    p[4] = (CUdeviceptr)(uintptr_t)host;
    static char reg[1 << 16];
    CHECK(p_cuMemHostRegister_v2(reg, sizeof reg, 0) == CUDA_SUCCESS);
    p[5] = (CUdeviceptr)(uintptr_t)reg;
    size_t sizes[6] = {3 * MiB + 5, pitch * 100, 5 * MiB, 2 * MiB, 1 * MiB, sizeof reg};
    for (int i = 0; i < 6; i++) {
      CUdeviceptr in = p[i] + sizes[i] - 1, start = 0;
      size_t rs = 0;
      CHECK(p_cuMemGetAddressRange_v2(&base, &size, in) == CUDA_SUCCESS && base == p[i] && size == sizes[i]);
      CHECK(p_cuPointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p[i] + sizes[i] / 2) == CUDA_SUCCESS &&
            start == p[i]);
      CHECK(p_cuPointerGetAttribute(&rs, CU_POINTER_ATTRIBUTE_RANGE_SIZE, p[i] + 1) == CUDA_SUCCESS && rs == sizes[i]);
    }
    CHECK(p_cuMemGetAddressRange_v2(&base, &size, p[0] + sizes[0]) != CUDA_SUCCESS || base != p[0]);
    CHECK(p_cuMemFree_v2(p[0] + 1) == CUDA_ERROR_INVALID_VALUE); /* frees need the start */
    CHECK(p_cuMemFree_v2(p[0]) == CUDA_SUCCESS && p_cuMemFree_v2(p[1]) == CUDA_SUCCESS);
    CHECK(p_cuMemFreeAsync(p[2], NULL) == CUDA_SUCCESS && p_cuMemFree_v2(p[3]) == CUDA_SUCCESS);
    CHECK(p_cuMemFreeHost(host) == CUDA_SUCCESS && p_cuMemHostUnregister(reg) == CUDA_SUCCESS);
    CHECK(p_cuMemGetAddressRange_v2(&base, &size, p[0]) == CUDA_ERROR_NOT_FOUND);
    /* VMM: the range of a mapped address is its mapping; a copy may span two mappings */
    CUdeviceptr va = 0;
    CUmemGenericAllocationHandle m[2];
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    CUmemAccessDesc acc = {.location = prop.location, .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    CHECK(p_cuMemAddressReserve(&va, 8 * MiB, 0, 0, 0) == CUDA_SUCCESS);
    for (int i = 0; i < 2; i++) {
      CHECK(p_cuMemCreate(&m[i], 4 * MiB, &prop, 0) == CUDA_SUCCESS);
      CHECK(p_cuMemMap(va + i * 4 * MiB, 4 * MiB, 0, m[i], 0) == CUDA_SUCCESS);
    }
    CHECK(p_cuMemSetAccess(va, 8 * MiB, &acc, 1) == CUDA_SUCCESS);
    CHECK(p_cuMemGetAddressRange_v2(&base, &size, va + 5 * MiB) == CUDA_SUCCESS && base == va + 4 * MiB && size == 4 * MiB);
    static unsigned char src[2 * MiB], back[2 * MiB];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i * 7);
    CHECK(p_cuMemcpyHtoD_v2(va + 3 * MiB, src, sizeof src) == CUDA_SUCCESS);
    CHECK(p_cuMemcpyDtoH_v2(back, va + 3 * MiB, sizeof back) == CUDA_SUCCESS && memcmp(src, back, sizeof src) == 0);
    CHECK(p_cuMemcpyHtoD_v2(va + 7 * MiB, src, sizeof src) == CUDA_ERROR_INVALID_VALUE); /* runs off the mappings */
    for (int i = 0; i < 2; i++) {
      CHECK(p_cuMemUnmap(va + i * 4 * MiB, 4 * MiB) == CUDA_SUCCESS);
      CHECK(p_cuMemRelease(m[i]) == CUDA_SUCCESS);
    }
    CHECK(p_cuMemAddressFree(va, 8 * MiB) == CUDA_SUCCESS);
  }

  TEST("cuMemAdvise follows cuda.h (managed memory only, locations by advice) and the range attributes show it") {
    PFN_cuMemAdvise_v12020 adv2 = (PFN_cuMemAdvise_v12020)dlsym(h, "cuMemAdvise_v2");
    PFN_cuMemAdvise_v8000 adv1 = (PFN_cuMemAdvise_v8000)dlsym(h, "cuMemAdvise");
    PFN_cuMemRangeGetAttribute_v8000 rattr = (PFN_cuMemRangeGetAttribute_v8000)dlsym(h, "cuMemRangeGetAttribute");
    PFN_cuMemRangeGetAttributes_v8000 rattrs = (PFN_cuMemRangeGetAttributes_v8000)dlsym(h, "cuMemRangeGetAttributes");
    PFN_cuMemPrefetchAsync_v12020 pf2 = (PFN_cuMemPrefetchAsync_v12020)dlsym(h, "cuMemPrefetchAsync_v2");
    CUmemLocation host = {.type = CU_MEM_LOCATION_TYPE_HOST}, dev0 = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
    CUmemLocation dev1 = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 1}, numa = {.type = CU_MEM_LOCATION_TYPE_HOST_NUMA};
    CUmemLocation none = {.type = CU_MEM_LOCATION_TYPE_INVALID};
    CUdeviceptr m = 0, plain = 0;
    int v = 99, by[3] = {99, 99, 99}, type = 99;
    CHECK(p_cuMemAllocManaged(&m, 4 * MiB, CU_MEM_ATTACH_GLOBAL) == CUDA_SUCCESS);
    CHECK(p_cuMemAlloc_v2(&plain, 4 * MiB) == CUDA_SUCCESS);
    /* nothing advised yet */
    CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, 4 * MiB) == CUDA_SUCCESS && v == CU_DEVICE_INVALID);
    CHECK(rattr(&by, sizeof by, CU_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, 4 * MiB) == CUDA_SUCCESS &&
          by[0] == CU_DEVICE_INVALID && by[2] == CU_DEVICE_INVALID);
    /* refused: not managed memory, past the allocation, unknown advice, locations the advice does not take */
    CHECK(adv2(plain, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, host) == CUDA_ERROR_INVALID_VALUE);
    CHECK(adv2(m, 4 * MiB + 1, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, host) == CUDA_ERROR_INVALID_VALUE);
    CHECK(adv2(m, 0, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, host) == CUDA_ERROR_INVALID_VALUE);
    CHECK(adv2(m, 4 * MiB, (CUmem_advise)7, host) == CUDA_ERROR_INVALID_VALUE);
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, dev1) == CUDA_ERROR_INVALID_DEVICE);
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, none) == CUDA_ERROR_INVALID_VALUE);
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_SET_ACCESSED_BY, numa) == CUDA_ERROR_INVALID_VALUE);
    CHECK(adv1(m, 4 * MiB, CU_MEM_ADVISE_SET_ACCESSED_BY, 3) == CUDA_ERROR_INVALID_DEVICE);
    CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, plain, 4 * MiB) == CUDA_ERROR_INVALID_VALUE);
    CHECK(rattr(&v, 8, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, 4 * MiB) == CUDA_ERROR_INVALID_VALUE);
    /* the advice emuv gives managed spill: preferred location the host, accessed by device 0 */
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, host) == CUDA_SUCCESS);
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_SET_ACCESSED_BY, dev0) == CUDA_SUCCESS);
    CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m + MiB, MiB) == CUDA_SUCCESS && v == CU_DEVICE_CPU);
    CHECK(rattr(&type, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, m, 4 * MiB) == CUDA_SUCCESS &&
          type == CU_MEM_LOCATION_TYPE_HOST);
    CHECK(rattr(&by, sizeof by, CU_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, 4 * MiB) == CUDA_SUCCESS && by[0] == 0 &&
          by[1] == CU_DEVICE_INVALID && by[2] == CU_DEVICE_INVALID);
    /* the CUdevice ABI says the same thing with CU_DEVICE_CPU; a NUMA node is a host location too */
    CHECK(adv1(m, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, 0) == CUDA_SUCCESS);
    CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, 4 * MiB) == CUDA_SUCCESS && v == 0);
    CHECK(adv1(m, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, CU_DEVICE_CPU) == CUDA_SUCCESS);
    CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, 4 * MiB) == CUDA_SUCCESS && v == CU_DEVICE_CPU);
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, numa) == CUDA_SUCCESS);
    void *data[2] = {&type, &v};
    size_t sizes[2] = {4, 4};
    CUmem_range_attribute which[2] = {CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID};
    CHECK(rattrs(data, sizes, which, 2, m, 4 * MiB) == CUDA_SUCCESS && type == CU_MEM_LOCATION_TYPE_HOST_NUMA && v == 0);
    /* advice on part of the allocation: the attribute is no longer uniform */
    CHECK(adv2(m + 2 * MiB, 2 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, dev0) == CUDA_SUCCESS);
    CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION, m, 4 * MiB) == CUDA_SUCCESS && v == CU_DEVICE_INVALID);
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_UNSET_ACCESSED_BY, dev0) == CUDA_SUCCESS);
    CHECK(rattr(&by, 4, CU_MEM_RANGE_ATTRIBUTE_ACCESSED_BY, m, 4 * MiB) == CUDA_SUCCESS && by[0] == CU_DEVICE_INVALID);
    /* prefetches are recorded; their flags must be 0 */
    CHECK(pf2(m, 4 * MiB, host, 1, NULL) == CUDA_ERROR_INVALID_VALUE);
    CHECK(pf2(m, 4 * MiB, dev0, 0, NULL) == CUDA_SUCCESS);
    CHECK(rattr(&v, 4, CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION, m, 4 * MiB) == CUDA_SUCCESS && v == 0);
    CHECK(p_cuMemFree_v2(m) == CUDA_SUCCESS && p_cuMemFree_v2(plain) == CUDA_SUCCESS);
    CHECK(adv2(m, 4 * MiB, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, host) == CUDA_ERROR_INVALID_VALUE); /* freed */
  }

  TEST("events time what is between them; errors have names; launches fail clearly") {
    CUevent a, b, nt;
    float ms = -1;
    CHECK(p_cuEventCreate(&a, 0) == CUDA_SUCCESS && p_cuEventCreate(&b, 0) == CUDA_SUCCESS);
    CHECK(p_cuEventCreate(&nt, CU_EVENT_DISABLE_TIMING) == CUDA_SUCCESS);
    CHECK(p_cuEventElapsedTime(&ms, a, b) == CUDA_ERROR_INVALID_HANDLE); /* not recorded yet */
    CHECK(p_cuEventRecord(a, NULL) == CUDA_SUCCESS);
    usleep(2000);
    CHECK(p_cuEventRecord(b, NULL) == CUDA_SUCCESS && p_cuEventRecord(nt, NULL) == CUDA_SUCCESS);
    CHECK(p_cuEventElapsedTime(&ms, a, b) == CUDA_SUCCESS && ms >= 1.5f);
    CHECK(p_cuEventElapsedTime(&ms, a, nt) == CUDA_ERROR_INVALID_HANDLE);
    CHECK(p_cuEventDestroy_v2(a) == CUDA_SUCCESS && p_cuEventDestroy_v2(a) == CUDA_ERROR_INVALID_HANDLE);
    const char *s = NULL;
    CHECK(p_cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s) == CUDA_SUCCESS && strcmp(s, "CUDA_ERROR_OUT_OF_MEMORY") == 0);
    CHECK(p_cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s) == CUDA_SUCCESS && strcmp(s, "out of memory") == 0);
    CHECK(p_cuGetErrorName((CUresult)12345, &s) == CUDA_ERROR_INVALID_VALUE);
    CUmodule mod;
    CUfunction fn;
    CHECK(p_cuModuleLoadData(&mod, "not an image") == CUDA_ERROR_INVALID_IMAGE);
    CHECK(p_cuModuleLoadData(&mod, "//\n.version 8.0\n.target sm_89\n") == CUDA_SUCCESS);
    CHECK(p_cuModuleGetFunction(&fn, mod, "k") == CUDA_SUCCESS);
    CHECK(p_cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL) == CUDA_ERROR_NOT_SUPPORTED);
  }

  TEST("the card is shared: another process's memory shows, fills the card, and comes back when it dies") {
    nvmlReturn_t (*ninit)(void) = (__typeof__(ninit))dlsym(nv, "nvmlInit_v2");
    nvmlReturn_t (*nhandle)(unsigned, nvmlDevice_t *) = (__typeof__(nhandle))dlsym(nv, "nvmlDeviceGetHandleByIndex_v2");
    nvmlReturn_t (*nmem)(nvmlDevice_t, nvmlMemory_t *) = (__typeof__(nmem))dlsym(nv, "nvmlDeviceGetMemoryInfo");
    nvmlReturn_t (*nprocs)(nvmlDevice_t, unsigned *, nvmlProcessInfo_t *) =
        (__typeof__(nprocs))dlsym(nv, "nvmlDeviceGetComputeRunningProcesses_v3");
    nvmlDevice_t dev;
    CHECK(ninit() == NVML_SUCCESS && nhandle(0, &dev) == NVML_SUCCESS);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t child = fork();
    if (child == 0) { /* holds 6 GiB until killed */
      CUdeviceptr x = 0;
      char ok = p_cuMemAlloc_v2(&x, 6 * GiB) == CUDA_SUCCESS ? 'y' : 'n';
      if (write(pfd[1], &ok, 1) != 1) _exit(3);
      pause();
      _exit(0);
    }
    char ok = 0;
    CHECK(read(pfd[0], &ok, 1) == 1 && ok == 'y');
    size_t f = 0, t = 0;
    nvmlMemory_t m;
    nvmlProcessInfo_t procs[4];
    unsigned np = 4;
    CHECK(p_cuMemGetInfo_v2(&f, &t) == CUDA_SUCCESS && f == 2 * GiB && card_used() == 6 * GiB);
    CHECK(nmem(dev, &m) == NVML_SUCCESS && m.used == 6 * GiB && m.free == 2 * GiB && m.total == 8 * GiB);
    CHECK(nprocs(dev, &np, procs) == NVML_SUCCESS && np == 1 && procs[0].pid == (unsigned)child &&
          procs[0].usedGpuMemory == 6 * GiB);
    CUdeviceptr y = 0;
    CHECK(p_cuMemAlloc_v2(&y, 3 * GiB) == CUDA_ERROR_OUT_OF_MEMORY); /* the card is full */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CHECK(p_cuMemGetInfo_v2(&f, &t) == CUDA_SUCCESS && f == 8 * GiB); /* a dead process holds nothing */
    CHECK(p_cuMemAlloc_v2(&y, 3 * GiB) == CUDA_SUCCESS && nmem(dev, &m) == NVML_SUCCESS && m.used == 3 * GiB);
    CHECK(p_cuMemFree_v2(y) == CUDA_SUCCESS && card_used() == 0);
  }
  T_DONE();
}
