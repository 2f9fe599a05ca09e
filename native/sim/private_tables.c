/* cuGetExportTable: the driver's private interfaces that NVIDIA's runtime (libcudart, static or shared)
 * asks for by UUID before it enumerates a device. The layouts and the meaning of the slots below were
 * established by public reverse-engineering work (docs/simulated-driver.md cites it) and checked here
 * against the pinned cudart 12.4 and 13.2 by tracing every slot they call (EMUV_SIM_TRACE=1 logs each
 * call). Every slot nobody has been seen to call answers CUDA_ERROR_NOT_SUPPORTED and prints one
 * emuv-sim: line naming the table and the slot; an unknown UUID answers CUDA_ERROR_INVALID_VALUE the
 * same way. */
#define _GNU_SOURCE
#define __CUDA_API_VERSION_INTERNAL 1
#define SIM_DRIVER_INTERNALS 1
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

#define EXPORT __attribute__((visibility("default")))

struct table {
  const char *name;
  unsigned char uuid[16];
  const void **slots;
  unsigned nslots;
};

static void uuid_str(const unsigned char *u, char *out) {
  sprintf(out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4],
          u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static CUresult unimplemented_slot(const struct table *t, unsigned slot) {
  char u[40];
  uuid_str(t->uuid, u);
  sim_say("private export table %s (%s) slot %u is not simulated: CUDA_ERROR_NOT_SUPPORTED", u, t->name, slot);
  return CUDA_ERROR_NOT_SUPPORTED;
}

/* One distinct function per unimplemented slot, so that the message names the slot. */
#define UNIMPL(tab, i) \
  static CUresult tab##_unimpl_##i(void) { return unimplemented_slot(&tab, i); }
#define SIZE_OF(n) ((const void *)(uintptr_t)((n) * sizeof(void *)))

/* ---- 6bd5fb6c-5bf4-e74a-8987-d93912fd9df9: the runtime's interface (13 slots, the first the size) --- */

/* slots 1, 6, 8: a module from the fatbinary the runtime registered (__cudaRegisterFatBinary). Slot 1
 * takes the __fatBinC_Wrapper_t, slot 6 the wrapper plus three arguments seen as 0, slot 8 the fatbin
 * header itself first. */
static CUresult rt_module_from_wrapper(CUmodule *out, const void *wrapper) {
  sim_trace("cudart interface slot 1(%p, %p)", (void *)out, wrapper);
  return sim_module_from_image(out, wrapper, "cudart interface slot 1");
}
/* slot 2: the device's primary context, without retaining or activating it */
static CUresult rt_primary_ctx(CUcontext *out, CUdevice dev) {
  sim_trace("cudart interface slot 2(%p, %d)", (void *)out, dev);
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  return sim_primary_ctx(out, dev);
}
static CUresult rt_module_from_wrapper_ext(CUmodule *out, const void *wrapper, void *a3, void *a4, unsigned a5) {
  sim_trace("cudart interface slot 6(%p, %p, %p, %p, %u)", (void *)out, wrapper, a3, a4, a5);
  return sim_module_from_image(out, wrapper, "cudart interface slot 6");
}
/* slot 7: a notification with one integer argument and no result */
static void rt_notify(size_t arg) { sim_trace("cudart interface slot 7(%zu)", arg); }
static CUresult rt_module_from_fatbin_ext(const void *fatbin, CUmodule *out, void *a3, void *a4, unsigned a5) {
  sim_trace("cudart interface slot 8(%p, %p, %p, %p, %u)", fatbin, (void *)out, a3, a4, a5);
  return sim_module_from_image(out, fatbin, "cudart interface slot 8");
}
/* slot 12 (CUDA 13): load the JIT compilers (PTX, NVVM); a CPU has no use for them */
static CUresult rt_load_compilers(void) {
  sim_trace("cudart interface slot 12()");
  return CUDA_SUCCESS;
}

static const void *cudart_slots[13];
static struct table cudart_tab = {"cudart interface",
                                  {0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9},
                                  cudart_slots, 13};
UNIMPL(cudart_tab, 3)
UNIMPL(cudart_tab, 4)
UNIMPL(cudart_tab, 5)
UNIMPL(cudart_tab, 9)
UNIMPL(cudart_tab, 10)
UNIMPL(cudart_tab, 11)
static const void *cudart_slots[13] = {
    SIZE_OF(13), (const void *)rt_module_from_wrapper, (const void *)rt_primary_ctx,
    (const void *)cudart_tab_unimpl_3, (const void *)cudart_tab_unimpl_4, (const void *)cudart_tab_unimpl_5,
    (const void *)rt_module_from_wrapper_ext, (const void *)rt_notify, (const void *)rt_module_from_fatbin_ext,
    (const void *)cudart_tab_unimpl_9, (const void *)cudart_tab_unimpl_10, (const void *)cudart_tab_unimpl_11,
    (const void *)rt_load_compilers,
};

/* ---- 42d85a81-23f6-cb47-8298-f6e78a3aecdc: tools thread-local state (4 slots, the first the size) ---- */

/* slot 2: the calling thread's current context */
static CUresult tls_current_ctx(CUcontext *out) {
  sim_trace("tools TLS slot 2(%p)", (void *)out);
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  return sim_current_ctx(out);
}
static const void *tls_slots[4];
static struct table tls_tab = {"tools TLS",
                               {0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb, 0x47, 0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc},
                               tls_slots, 4};
UNIMPL(tls_tab, 1)
UNIMPL(tls_tab, 3)
static const void *tls_slots[4] = {SIZE_OF(4), (const void *)tls_tab_unimpl_1, (const void *)tls_current_ctx,
                                   (const void *)tls_tab_unimpl_3};

/* ---- a094798c-2e74-2e74-93f2-0800200c0a66: tools runtime callback hooks (7 slots, the first the size) - */

/* slots 2 and 6 hand the runtime two buffers it records its callback state in (1024 and 14 32-bit words) */
static uint32_t hooks_buf1[1024], hooks_buf2[16];
static void hooks_buffer1(void **ptr, size_t *size) {
  sim_trace("callback hooks slot 2(%p, %p)", (void *)ptr, (void *)size);
  if (ptr) *ptr = hooks_buf1;
  if (size) *size = 1024;
}
static void hooks_buffer2(void **ptr, size_t *size) {
  sim_trace("callback hooks slot 6(%p, %p)", (void *)ptr, (void *)size);
  if (ptr) *ptr = hooks_buf2;
  if (size) *size = 14;
}
static const void *hooks_slots[7];
static struct table hooks_tab = {"tools runtime callback hooks",
                                 {0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74, 0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66},
                                 hooks_slots, 7};
UNIMPL(hooks_tab, 1)
UNIMPL(hooks_tab, 3)
UNIMPL(hooks_tab, 4)
UNIMPL(hooks_tab, 5)
static const void *hooks_slots[7] = {SIZE_OF(7), (const void *)hooks_tab_unimpl_1, (const void *)hooks_buffer1,
                                     (const void *)hooks_tab_unimpl_3, (const void *)hooks_tab_unimpl_4,
                                     (const void *)hooks_tab_unimpl_5, (const void *)hooks_buffer2};

/* ---- c693336e-1121-df11-a8c3-68f355d89593: context-local storage (4 slots, no size) -------------------
 * The runtime keeps its per-context state here, keyed by a pointer of its own; the destructor it passes is
 * called when the context is destroyed or reset (cuDevicePrimaryCtxReset, the last release), which is how
 * the runtime learns that its state is gone. A NULL context means the current one. */
static CUresult cls_put(CUcontext c, void *key, void *value, sim_cls_dtor dtor) {
  sim_trace("context-local storage slot 0(%p, %p, %p, %p)", (void *)c, key, value, (void *)dtor);
  return sim_cls_put(c, key, value, dtor);
}
static CUresult cls_delete(CUcontext c, void *key) {
  sim_trace("context-local storage slot 1(%p, %p)", (void *)c, key);
  return sim_cls_delete(c, key);
}
static CUresult cls_get(void **value, CUcontext c, void *key) {
  CUresult r = sim_cls_get(c, key, value);
  sim_trace("context-local storage slot 2(%p, %p, %p) = %d", (void *)value, (void *)c, key, (int)r);
  return r;
}
static const void *cls_slots[4];
static struct table cls_tab = {"context-local storage",
                               {0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11, 0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93},
                               cls_slots, 4};
UNIMPL(cls_tab, 3)
static const void *cls_slots[4] = {(const void *)cls_put, (const void *)cls_delete, (const void *)cls_get,
                                   (const void *)cls_tab_unimpl_3};

/* ---- 263e8860-7cd2-6143-92f6-bbd5006dfa7e: context checks (4 slots, the first the size) --------------- */

/* slot 2: flags of a context (always 0 seen) and an optional pointer (left NULL) */
static CUresult checks_ctx(CUcontext c, uint32_t *flags, const void **detail) {
  sim_trace("context checks slot 2(%p, %p, %p)", (void *)c, (void *)flags, (void *)detail);
  if (flags) *flags = 0;
  if (detail) *detail = NULL;
  return CUDA_SUCCESS;
}
/* slot 3: a global flag word, 0 */
static uint32_t checks_global(void) {
  sim_trace("context checks slot 3()");
  return 0;
}
static const void *checks_slots[4];
static struct table checks_tab = {"context checks",
                                  {0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43, 0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e},
                                  checks_slots, 4};
UNIMPL(checks_tab, 1)
static const void *checks_slots[4] = {SIZE_OF(4), (const void *)checks_tab_unimpl_1, (const void *)checks_ctx,
                                      (const void *)checks_global};

/* ---- d4082055-bde6-704b-8d34-ba123c66e1f2: the runtime/driver integrity check (3 slots) ---------------
 * slot 1 (version, unix seconds, out[2]): the runtime computes the same 16 bytes and compares. For
 * version % 10 == 0 and 1 the answer is a constant; otherwise it is HMAC-MD2 (RFC 1319, RFC 2104, block
 * size 16) under a fixed 16-byte key of: the driver version, the version asked, pid, (32-bit) pthread_self,
 * the addresses of the runtime interface table, of this table and of this function, the seconds; then
 * per device its UUID and PCI domain, bus and device numbers. */

static const uint8_t md2_s[256] = { /* RFC 1319: a permutation built from the digits of pi */
    41,  46,  67,  201, 162, 216, 124, 1,   61,  54,  84,  161, 236, 240, 6,   19,  98,  167, 5,   243, 192, 199,
    115, 140, 152, 147, 43,  217, 188, 76,  130, 202, 30,  155, 87,  60,  253, 212, 224, 22,  103, 66,  111, 24,
    138, 23,  229, 18,  190, 78,  196, 214, 218, 158, 222, 73,  160, 251, 245, 142, 187, 47,  238, 122, 169, 104,
    121, 145, 21,  178, 7,   63,  148, 194, 16,  137, 11,  34,  95,  33,  128, 127, 93,  154, 90,  144, 50,  39,
    53,  62,  204, 231, 191, 247, 151, 3,   255, 25,  48,  179, 72,  165, 181, 209, 215, 94,  146, 42,  172, 86,
    170, 198, 79,  184, 56,  210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4,   241, 69,  157, 112, 89,
    100, 113, 135, 32,  134, 91,  207, 101, 230, 45,  168, 2,   27,  96,  37,  173, 174, 176, 185, 246, 28,  70,
    97,  105, 52,  64,  126, 15,  85,  71,  163, 35,  221, 81,  175, 58,  195, 92,  249, 206, 186, 197, 234, 38,
    44,  83,  13,  110, 133, 40,  132, 9,   211, 223, 205, 244, 65,  129, 77,  82,  106, 220, 55,  200, 108, 193,
    171, 250, 36,  225, 123, 8,   12,  189, 177, 74,  120, 136, 149, 139, 227, 99,  232, 109, 233, 203, 213, 254,
    59,  0,   29,  57,  242, 239, 183, 14,  102, 88,  208, 228, 166, 119, 114, 248, 235, 117, 75,  10,  49,  68,
    80,  180, 143, 237, 31,  26,  219, 153, 141, 51,  159, 17,  131, 20};

struct md2 {
  uint8_t x[48], c[16], buf[16];
  unsigned n;
};
static void md2_block(struct md2 *m, const uint8_t *b) {
  uint8_t l = m->c[15];
  for (int i = 0; i < 16; i++) {
    m->x[16 + i] = b[i];
    m->x[32 + i] = m->x[i] ^ b[i];
    l = m->c[i] ^= md2_s[b[i] ^ l];
  }
  uint8_t t = 0;
  for (int j = 0; j < 18; j++) {
    for (int k = 0; k < 48; k++) t = m->x[k] ^= md2_s[t];
    t = (uint8_t)(t + j);
  }
}
static void md2_init(struct md2 *m) { memset(m, 0, sizeof *m); }
static void md2_update(struct md2 *m, const void *data, size_t len, uint8_t xor_with) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) {
    m->buf[m->n++] = p[i] ^ xor_with;
    if (m->n == 16) {
      md2_block(m, m->buf);
      m->n = 0;
    }
  }
}
static void md2_final(struct md2 *m, uint8_t out[16]) {
  uint8_t pad = (uint8_t)(16 - m->n);
  while (m->n < 16) m->buf[m->n++] = pad;
  md2_block(m, m->buf);
  uint8_t c[16];
  memcpy(c, m->c, 16);
  md2_block(m, c);
  memcpy(out, m->x, 16);
}

static const uint8_t integrity_key[16] = {0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7, 0x52,
                                          0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f};

struct integrity_input { /* hashed as laid out in memory, 48 bytes */
  uint32_t driver_version, version, pid, thread;
  const void *cudart_table, *integrity_table, *fn;
  uint64_t unix_seconds;
};
struct integrity_device { /* 28 bytes */
  unsigned char uuid[16];
  int32_t pci_domain, pci_bus, pci_device;
};
_Static_assert(sizeof(struct integrity_input) == 48, "integrity input layout");
_Static_assert(sizeof(struct integrity_device) == 28, "integrity device layout");

static const void *integrity_slots[3];
static CUresult integrity_check(uint32_t version, uint64_t unix_seconds, uint64_t out[2]);
static CUresult integrity_check(uint32_t version, uint64_t unix_seconds, uint64_t out[2]) {
  sim_trace("integrity check slot 1(%u, %llu, %p)", version, (unsigned long long)unix_seconds, (void *)out);
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (version % 10 == 0 || version % 10 == 1) {
    out[0] = version % 10 == 0 ? 0x3341181c03cb675cull : 0x1841181c03cb675cull;
    out[1] = 0x8ed383aa1f4cd1e8ull;
    return CUDA_SUCCESS;
  }
  const struct sim_card *card = sim_card();
  struct integrity_input in;
  memset(&in, 0, sizeof in);
  in.driver_version = (uint32_t)card->driver_version;
  in.version = version;
  in.pid = (uint32_t)getpid();
  in.thread = (uint32_t)(uintptr_t)pthread_self();
  in.cudart_table = cudart_slots;
  in.integrity_table = integrity_slots;
  in.fn = (const void *)integrity_check;
  in.unix_seconds = unix_seconds;
  struct integrity_device dev;
  memset(&dev, 0, sizeof dev);
  memcpy(dev.uuid, card->uuid, 16);
  dev.pci_domain = (int32_t)card->pci_domain;
  dev.pci_bus = (int32_t)card->pci_bus;
  dev.pci_device = (int32_t)card->pci_dev;

  struct md2 m;
  uint8_t inner[16], digest[16];
  md2_init(&m);
  md2_update(&m, integrity_key, 16, 0x36);
  md2_update(&m, &in, sizeof in, 0);
  md2_update(&m, &dev, sizeof dev, 0); /* one simulated device */
  md2_final(&m, inner);
  md2_init(&m);
  md2_update(&m, integrity_key, 16, 0x5c);
  md2_update(&m, inner, 16, 0);
  md2_final(&m, digest);
  memcpy(out, digest, 16);
  return CUDA_SUCCESS;
}
static struct table integrity_tab = {"integrity check",
                                     {0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b, 0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2},
                                     integrity_slots, 3};
UNIMPL(integrity_tab, 2)
static const void *integrity_slots[3] = {SIZE_OF(3), (const void *)integrity_check, (const void *)integrity_tab_unimpl_2};

/* Test hook for the hash (not part of the CUDA API): MD2 of a buffer, to check the RFC 1319 vectors. */
EXPORT void emuv_sim_md2(const void *data, size_t len, uint8_t out[16]) {
  struct md2 m;
  md2_init(&m);
  md2_update(&m, data, len, 0);
  md2_final(&m, out);
}

/* ---- f8cff951-2146-8b4e-b9e2-fb469e7c0dd9 (CUDA 13) ---------------------------------------------------- */
static const void *f8_slots[37];
static struct table f8_tab = {"cuda 13 table f8cff951",
                              {0xf8, 0xcf, 0xf9, 0x51, 0x21, 0x46, 0x8b, 0x4e, 0xb9, 0xe2, 0xfb, 0x46, 0x9e, 0x7c, 0x0d, 0xd9},
                              f8_slots, 37};
UNIMPL(f8_tab, 1)
UNIMPL(f8_tab, 2)
UNIMPL(f8_tab, 3)
UNIMPL(f8_tab, 4)
UNIMPL(f8_tab, 5)
UNIMPL(f8_tab, 6)
UNIMPL(f8_tab, 7)
UNIMPL(f8_tab, 8)
UNIMPL(f8_tab, 9)
UNIMPL(f8_tab, 10)
UNIMPL(f8_tab, 11)
UNIMPL(f8_tab, 12)
UNIMPL(f8_tab, 13)
UNIMPL(f8_tab, 14)
UNIMPL(f8_tab, 15)
UNIMPL(f8_tab, 16)
UNIMPL(f8_tab, 17)
UNIMPL(f8_tab, 18)
UNIMPL(f8_tab, 19)
UNIMPL(f8_tab, 20)
UNIMPL(f8_tab, 21)
UNIMPL(f8_tab, 22)
UNIMPL(f8_tab, 23)
UNIMPL(f8_tab, 24)
UNIMPL(f8_tab, 25)
UNIMPL(f8_tab, 26)
UNIMPL(f8_tab, 27)
UNIMPL(f8_tab, 28)
UNIMPL(f8_tab, 29)
UNIMPL(f8_tab, 30)
UNIMPL(f8_tab, 31)
UNIMPL(f8_tab, 32)
UNIMPL(f8_tab, 33)
UNIMPL(f8_tab, 34)
UNIMPL(f8_tab, 35)
UNIMPL(f8_tab, 36)
static const void *f8_slots[37] = {
    SIZE_OF(37),
    (const void *)f8_tab_unimpl_1,
    (const void *)f8_tab_unimpl_2,
    (const void *)f8_tab_unimpl_3,
    (const void *)f8_tab_unimpl_4,
    (const void *)f8_tab_unimpl_5,
    (const void *)f8_tab_unimpl_6,
    (const void *)f8_tab_unimpl_7,
    (const void *)f8_tab_unimpl_8,
    (const void *)f8_tab_unimpl_9,
    (const void *)f8_tab_unimpl_10,
    (const void *)f8_tab_unimpl_11,
    (const void *)f8_tab_unimpl_12,
    (const void *)f8_tab_unimpl_13,
    (const void *)f8_tab_unimpl_14,
    (const void *)f8_tab_unimpl_15,
    (const void *)f8_tab_unimpl_16,
    (const void *)f8_tab_unimpl_17,
    (const void *)f8_tab_unimpl_18,
    (const void *)f8_tab_unimpl_19,
    (const void *)f8_tab_unimpl_20,
    (const void *)f8_tab_unimpl_21,
    (const void *)f8_tab_unimpl_22,
    (const void *)f8_tab_unimpl_23,
    (const void *)f8_tab_unimpl_24,
    (const void *)f8_tab_unimpl_25,
    (const void *)f8_tab_unimpl_26,
    (const void *)f8_tab_unimpl_27,
    (const void *)f8_tab_unimpl_28,
    (const void *)f8_tab_unimpl_29,
    (const void *)f8_tab_unimpl_30,
    (const void *)f8_tab_unimpl_31,
    (const void *)f8_tab_unimpl_32,
    (const void *)f8_tab_unimpl_33,
    (const void *)f8_tab_unimpl_34,
    (const void *)f8_tab_unimpl_35,
    (const void *)f8_tab_unimpl_36};

/* ---- the table of tables -------------------------------------------------------------------------------- */

static struct table *const tables[] = {&cudart_tab, &tls_tab, &hooks_tab, &cls_tab, &checks_tab, &integrity_tab, &f8_tab};

EXPORT CUresult cuGetExportTable(const void **table, const CUuuid *id) {
  if (table == NULL || id == NULL) return CUDA_ERROR_INVALID_VALUE;
  char u[40];
  uuid_str((const unsigned char *)id->bytes, u);
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
    if (memcmp(tables[i]->uuid, id->bytes, 16) == 0) {
      sim_trace("cuGetExportTable(%s) = %s", u, tables[i]->name);
      *table = tables[i]->slots;
      return CUDA_SUCCESS;
    }
  *table = NULL;
  sim_say("cuGetExportTable: unknown private table %s: CUDA_ERROR_INVALID_VALUE", u);
  return CUDA_ERROR_INVALID_VALUE;
}
