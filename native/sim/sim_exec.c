/* The simulated driver's execution side: streams, events, modules, libraries, functions and kernels,
 * occupancy, launches. Work issued to a stream is done when it is issued (copies, memsets, host
 * functions), so every stream and event is always complete. Modules and libraries are accepted when the
 * image is a fatbinary, a cubin (ELF) or PTX text, and hand out real handles for any function or kernel
 * name asked for, so that a runtime's registration succeeds; running a kernel is impossible on a CPU:
 * every launch fails with CUDA_ERROR_NOT_SUPPORTED and one emuv-sim: line. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim_driver.h"

static pthread_mutex_t ex_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- streams --------------------------------------------------------------------------------------- */

struct stream {
  struct obj o;
  unsigned flags;
  int priority;
  int capturing;
  unsigned long long id, capture_id;
};
static unsigned long long next_stream_id = 3, next_capture_id = 1;
static __thread CUstreamCaptureMode tl_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;

static int special(CUstream s) { return s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD; }
static struct stream *stream_get(CUstream s) { return special(s) ? NULL : obj_get(s, OBJ_STREAM); }
CUresult stream_check(CUstream s) {
  if (special(s)) return CUDA_SUCCESS;
  return obj_get(s, OBJ_STREAM) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static CUresult stream_new(CUstream *out, unsigned flags, int prio) {
  if (out == NULL || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
  struct stream *s = calloc(1, sizeof *s);
  if (s == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  s->flags = flags;
  s->priority = prio > 0 ? 0 : prio < -5 ? -5 : prio; /* clamped to cuCtxGetStreamPriorityRange */
  s->id = __atomic_fetch_add(&next_stream_id, 1, __ATOMIC_RELAXED);
  obj_register(s, OBJ_STREAM, ctx_for_op());
  *out = (CUstream)s;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamCreate(CUstream *s, unsigned int flags) { return stream_new(s, flags, 0); }
EXPORT CUresult cuStreamCreateWithPriority(CUstream *s, unsigned int flags, int prio) { return stream_new(s, flags, prio); }
EXPORT CUresult cuStreamDestroy_v2(CUstream h) {
  struct stream *s = stream_get(h);
  if (s == NULL) return CUDA_ERROR_INVALID_HANDLE;
  obj_unregister(s);
  free(s);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamDestroy(CUstream h) { return cuStreamDestroy_v2(h); }
EXPORT CUresult cuStreamSynchronize(CUstream h) {
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  return s && s->capturing ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}
EXPORT CUresult cuStreamSynchronize_ptsz(CUstream h) { return cuStreamSynchronize(h); }
EXPORT CUresult cuStreamQuery(CUstream h) { return cuStreamSynchronize(h); } /* always idle */
EXPORT CUresult cuStreamQuery_ptsz(CUstream h) { return cuStreamSynchronize(h); }
EXPORT CUresult cuStreamWaitEvent(CUstream h, CUevent e, unsigned int flags) {
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  if (flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL) return CUDA_ERROR_INVALID_VALUE;
  return obj_get(e, OBJ_EVENT) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuStreamWaitEvent_ptsz(CUstream h, CUevent e, unsigned int flags) { return cuStreamWaitEvent(h, e, flags); }
EXPORT CUresult cuStreamGetPriority(CUstream h, int *p) {
  if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  *p = s ? s->priority : 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamGetPriority_ptsz(CUstream h, int *p) { return cuStreamGetPriority(h, p); }
EXPORT CUresult cuStreamGetFlags(CUstream h, unsigned int *f) {
  if (f == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  *f = s ? s->flags : 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamGetFlags_ptsz(CUstream h, unsigned int *f) { return cuStreamGetFlags(h, f); }
EXPORT CUresult cuStreamGetCtx(CUstream h, CUcontext *c) {
  if (c == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  struct ctx *x = s ? s->o.ctx : ctx_current();
  if (x == NULL) return CUDA_ERROR_INVALID_CONTEXT;
  *c = (CUcontext)x;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamGetCtx_ptsz(CUstream h, CUcontext *c) { return cuStreamGetCtx(h, c); }
EXPORT CUresult cuStreamGetCtx_v2(CUstream h, CUcontext *c, CUgreenCtx *g) {
  if (g) *g = NULL;
  return cuStreamGetCtx(h, c);
}
EXPORT CUresult cuStreamGetCtx_v2_ptsz(CUstream h, CUcontext *c, CUgreenCtx *g) { return cuStreamGetCtx_v2(h, c, g); }
static __thread unsigned long long tl_pt_stream_id;
EXPORT CUresult cuStreamGetId(CUstream h, unsigned long long *id) {
  if (id == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  if (s) *id = s->id;
  else if (h == CU_STREAM_PER_THREAD) {
    if (tl_pt_stream_id == 0) tl_pt_stream_id = __atomic_fetch_add(&next_stream_id, 1, __ATOMIC_RELAXED);
    *id = tl_pt_stream_id;
  } else *id = 1; /* the legacy NULL stream */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamGetId_ptsz(CUstream h, unsigned long long *id) {
  return cuStreamGetId(h == NULL ? CU_STREAM_PER_THREAD : h, id);
}
EXPORT CUresult cuStreamGetDevice(CUstream h, CUdevice *d) {
  if (d == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r == CUDA_SUCCESS) *d = 0;
  return r;
}
EXPORT CUresult cuStreamGetDevice_ptsz(CUstream h, CUdevice *d) { return cuStreamGetDevice(h, d); }
EXPORT CUresult cuStreamAddCallback(CUstream h, CUstreamCallback cb, void *user, unsigned int flags) {
  if (cb == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  cb(h, CUDA_SUCCESS, user); /* everything before it in the stream is done */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamAddCallback_ptsz(CUstream h, CUstreamCallback cb, void *user, unsigned int flags) {
  return cuStreamAddCallback(h, cb, user, flags);
}
EXPORT CUresult cuLaunchHostFunc(CUstream h, CUhostFn fn, void *user) {
  if (fn == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  fn(user);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLaunchHostFunc_ptsz(CUstream h, CUhostFn fn, void *user) { return cuLaunchHostFunc(h, fn, user); }
EXPORT CUresult cuStreamAttachMemAsync(CUstream h, CUdeviceptr p, size_t n, unsigned int flags) {
  (void)p;
  (void)n;
  (void)flags;
  return stream_check(h);
}
EXPORT CUresult cuStreamAttachMemAsync_ptsz(CUstream h, CUdeviceptr p, size_t n, unsigned int flags) {
  return cuStreamAttachMemAsync(h, p, n, flags);
}
EXPORT CUresult cuStreamGetAttribute(CUstream h, CUstreamAttrID a, CUstreamAttrValue *v) {
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  memset(v, 0, sizeof *v);
  struct stream *s = stream_get(h);
  if (a == CU_LAUNCH_ATTRIBUTE_PRIORITY) v->priority = s ? s->priority : 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamGetAttribute_ptsz(CUstream h, CUstreamAttrID a, CUstreamAttrValue *v) { return cuStreamGetAttribute(h, a, v); }
EXPORT CUresult cuStreamSetAttribute(CUstream h, CUstreamAttrID a, const CUstreamAttrValue *v) {
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  if (a == CU_LAUNCH_ATTRIBUTE_PRIORITY && s) s->priority = v->priority > 0 ? 0 : v->priority < -5 ? -5 : v->priority;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamSetAttribute_ptsz(CUstream h, CUstreamAttrID a, const CUstreamAttrValue *v) { return cuStreamSetAttribute(h, a, v); }
EXPORT CUresult cuStreamCopyAttributes(CUstream dst, CUstream src) {
  CUresult r = stream_check(dst);
  if (r == CUDA_SUCCESS) r = stream_check(src);
  struct stream *d = stream_get(dst), *s = stream_get(src);
  if (r == CUDA_SUCCESS && d) d->priority = s ? s->priority : 0;
  return r;
}
EXPORT CUresult cuStreamCopyAttributes_ptsz(CUstream dst, CUstream src) { return cuStreamCopyAttributes(dst, src); }

/* capture: the simulator records the state only (no graph is built; nothing runs anyway) */
static CUresult begin_capture(CUstream h, CUstreamCaptureMode m) {
  if (special(h)) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  struct stream *s = stream_get(h);
  if (s == NULL) return CUDA_ERROR_INVALID_HANDLE;
  if (s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
  (void)m;
  s->capturing = 1;
  s->capture_id = __atomic_fetch_add(&next_capture_id, 1, __ATOMIC_RELAXED);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamBeginCapture(CUstream h) { return begin_capture(h, CU_STREAM_CAPTURE_MODE_GLOBAL); }
EXPORT CUresult cuStreamBeginCapture_ptsz(CUstream h) { return begin_capture(h, CU_STREAM_CAPTURE_MODE_GLOBAL); }
EXPORT CUresult cuStreamBeginCapture_v2(CUstream h, CUstreamCaptureMode m) { return begin_capture(h, m); }
EXPORT CUresult cuStreamBeginCapture_v2_ptsz(CUstream h, CUstreamCaptureMode m) { return begin_capture(h, m); }
EXPORT CUresult cuStreamEndCapture(CUstream h, CUgraph *g) {
  if (g == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (special(h)) return CUDA_ERROR_ILLEGAL_STATE;
  struct stream *s = stream_get(h);
  if (s == NULL) return CUDA_ERROR_INVALID_HANDLE;
  if (!s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
  s->capturing = 0;
  *g = NULL;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamEndCapture_ptsz(CUstream h, CUgraph *g) { return cuStreamEndCapture(h, g); }
EXPORT CUresult cuStreamIsCapturing(CUstream h, CUstreamCaptureStatus *st) {
  if (st == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(h);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  *st = s && s->capturing ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream h, CUstreamCaptureStatus *st) { return cuStreamIsCapturing(h, st); }
static CUresult capture_info(CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *g, const CUgraphNode **deps,
                             const CUgraphEdgeData **edges, size_t *n) {
  CUresult r = cuStreamIsCapturing(h, st);
  if (r != CUDA_SUCCESS) return r;
  struct stream *s = stream_get(h);
  if (id && s && s->capturing) *id = s->capture_id;
  if (g) *g = NULL;
  if (deps) *deps = NULL;
  if (edges) *edges = NULL;
  if (n) *n = 0;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamGetCaptureInfo(CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id) {
  return capture_info(h, st, id, NULL, NULL, NULL, NULL);
}
EXPORT CUresult cuStreamGetCaptureInfo_ptsz(CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id) {
  return capture_info(h, st, id, NULL, NULL, NULL, NULL);
}
EXPORT CUresult cuStreamGetCaptureInfo_v2(CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *g,
                                          const CUgraphNode **deps, size_t *n) {
  return capture_info(h, st, id, g, deps, NULL, n);
}
EXPORT CUresult cuStreamGetCaptureInfo_v2_ptsz(CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *g,
                                               const CUgraphNode **deps, size_t *n) {
  return capture_info(h, st, id, g, deps, NULL, n);
}
EXPORT CUresult cuStreamGetCaptureInfo_v3(CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *g,
                                          const CUgraphNode **deps, const CUgraphEdgeData **e, size_t *n) {
  return capture_info(h, st, id, g, deps, e, n);
}
EXPORT CUresult cuStreamGetCaptureInfo_v3_ptsz(CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *g,
                                               const CUgraphNode **deps, const CUgraphEdgeData **e, size_t *n) {
  return capture_info(h, st, id, g, deps, e, n);
}
EXPORT CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *m) {
  if (m == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUstreamCaptureMode old = tl_mode;
  tl_mode = *m;
  *m = old;
  return CUDA_SUCCESS;
}

/* ---- events ------------------------------------------------------------------------------------------ */

struct event {
  struct obj o;
  unsigned flags;
  int recorded;
  struct timespec t;
};
EXPORT CUresult cuEventCreate(CUevent *out, unsigned int flags) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (flags & ~(unsigned)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS))
    return CUDA_ERROR_INVALID_VALUE;
  if ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING)) return CUDA_ERROR_INVALID_VALUE;
  struct event *e = calloc(1, sizeof *e);
  if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  e->flags = flags;
  obj_register(e, OBJ_EVENT, ctx_for_op());
  *out = (CUevent)e;
  return CUDA_SUCCESS;
}
static CUresult record(CUevent h, CUstream s) {
  struct event *e = obj_get(h, OBJ_EVENT);
  if (e == NULL) return CUDA_ERROR_INVALID_HANDLE;
  CUresult r = stream_check(s);
  if (r != CUDA_SUCCESS) return r;
  clock_gettime(CLOCK_MONOTONIC, &e->t); /* everything issued before it is complete now */
  e->recorded = 1;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuEventRecord(CUevent e, CUstream s) { return record(e, s); }
EXPORT CUresult cuEventRecord_ptsz(CUevent e, CUstream s) { return record(e, s); }
EXPORT CUresult cuEventRecordWithFlags(CUevent e, CUstream s, unsigned int flags) {
  if (flags & ~(unsigned)CU_EVENT_RECORD_EXTERNAL) return CUDA_ERROR_INVALID_VALUE;
  return record(e, s);
}
EXPORT CUresult cuEventRecordWithFlags_ptsz(CUevent e, CUstream s, unsigned int flags) { return cuEventRecordWithFlags(e, s, flags); }
EXPORT CUresult cuEventQuery(CUevent h) { return obj_get(h, OBJ_EVENT) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE; }
EXPORT CUresult cuEventSynchronize(CUevent h) { return cuEventQuery(h); }
EXPORT CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) {
  if (ms == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct event *s = obj_get(a, OBJ_EVENT), *e = obj_get(b, OBJ_EVENT);
  if (s == NULL || e == NULL) return CUDA_ERROR_INVALID_HANDLE;
  if ((s->flags | e->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
  if (!s->recorded || !e->recorded) return CUDA_ERROR_INVALID_HANDLE;
  *ms = (float)((double)(e->t.tv_sec - s->t.tv_sec) * 1e3 + (double)(e->t.tv_nsec - s->t.tv_nsec) / 1e6);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b) { return cuEventElapsedTime(ms, a, b); }
EXPORT CUresult cuEventDestroy_v2(CUevent h) {
  struct event *e = obj_get(h, OBJ_EVENT);
  if (e == NULL) return CUDA_ERROR_INVALID_HANDLE;
  obj_unregister(e);
  free(e);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuEventDestroy(CUevent h) { return cuEventDestroy_v2(h); }
EXPORT CUresult cuCtxRecordEvent(CUcontext c, CUevent e) {
  if (sim_ctx_valid(c) != CUDA_SUCCESS) return CUDA_ERROR_INVALID_CONTEXT;
  return record(e, NULL);
}
EXPORT CUresult cuCtxWaitEvent(CUcontext c, CUevent e) {
  if (sim_ctx_valid(c) != CUDA_SUCCESS) return CUDA_ERROR_INVALID_CONTEXT;
  return cuEventQuery(e);
}

/* ---- modules, libraries, functions, kernels ------------------------------------------------------------------ */

struct func;
struct module {
  struct obj o;
  const void *image;
  struct func *funcs;
};
struct func {
  struct obj o; /* owner NULL: a function goes with its module */
  struct module *mod;
  struct func *next;
  int max_dyn_smem, carveout, cluster_allowed;
  CUfunc_cache cache;
  char name[];
};
struct kernel;
struct library {
  struct obj o; /* context-independent (owner NULL), as libraries are */
  const void *code;
  struct module *mod; /* the library's module in the (one) device context */
  struct kernel *kernels;
};
struct kernel {
  struct obj o;
  struct library *lib;
  struct func *fn;
  struct kernel *next;
  char name[];
};

#define FATBINC_MAGIC 0x466243b1u
#define FATBIN_MAGIC 0xba55ed50u

/* A fatbinary wrapper (__fatBinC_Wrapper_t), a fatbinary, a cubin (ELF) or PTX text. */
static int image_ok(const void *img) {
  if (img == NULL) return 0;
  const unsigned char *p = img;
  uint32_t m;
  memcpy(&m, p, 4);
  if (m == FATBINC_MAGIC) {
    const void *data;
    memcpy(&data, p + 8, sizeof data);
    if (data == NULL) return 0;
    memcpy(&m, data, 4);
    return m == FATBIN_MAGIC;
  }
  if (m == FATBIN_MAGIC) return 1;
  if (memcmp(p, "\x7f" "ELF", 4) == 0) return 1;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return (p[0] == '/' && (p[1] == '/' || p[1] == '*')) || p[0] == '.'; /* PTX: comments and directives */
}

static struct module *module_new(const void *image, struct ctx *owner) {
  struct module *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->image = image;
  obj_register(m, OBJ_MODULE, owner);
  return m;
}
CUresult sim_module_from_image(CUmodule *out, const void *image, const char *how) {
  (void)how;
  if (out == NULL || image == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (!image_ok(image)) return CUDA_ERROR_INVALID_IMAGE;
  struct module *m = module_new(image, ctx_for_op());
  if (m == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = (CUmodule)m;
  return CUDA_SUCCESS;
}
static void module_free(struct module *m) {
  obj_unregister(m);
  pthread_mutex_lock(&ex_mu);
  struct func *f = m->funcs;
  m->funcs = NULL;
  pthread_mutex_unlock(&ex_mu);
  while (f) {
    struct func *next = f->next;
    obj_unregister(f);
    free(f);
    f = next;
  }
  free(m);
}

EXPORT CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode) {
  if (mode == NULL) return CUDA_ERROR_INVALID_VALUE;
  const char *e = getenv("CUDA_MODULE_LOADING");
  *mode = e && strcmp(e, "EAGER") == 0 ? CU_MODULE_EAGER_LOADING : CU_MODULE_LAZY_LOADING; /* lazy since 12.2 */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuModuleLoadData(CUmodule *m, const void *image) { return sim_module_from_image(m, image, "cuModuleLoadData"); }
EXPORT CUresult cuModuleLoadDataEx(CUmodule *m, const void *image, unsigned int n, CUjit_option *o, void **v) {
  (void)n;
  (void)o;
  (void)v;
  return sim_module_from_image(m, image, "cuModuleLoadDataEx");
}
EXPORT CUresult cuModuleLoadFatBinary(CUmodule *m, const void *fatbin) {
  return sim_module_from_image(m, fatbin, "cuModuleLoadFatBinary");
}
/* The file is read once to check what it is; the module keeps no copy (nothing will run from it). */
static CUresult check_file(const char *path) {
  if (path == NULL) return CUDA_ERROR_INVALID_VALUE;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CUDA_ERROR_FILE_NOT_FOUND;
  char buf[64] = {0};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 4 && image_ok(buf) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_IMAGE;
}
EXPORT CUresult cuModuleLoad(CUmodule *out, const char *path) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_file(path);
  if (r != CUDA_SUCCESS) return r;
  struct module *m = module_new(NULL, ctx_for_op());
  if (m == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = (CUmodule)m;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuModuleUnload(CUmodule h) {
  struct module *m = obj_get(h, OBJ_MODULE);
  if (m == NULL) return CUDA_ERROR_INVALID_HANDLE;
  module_free(m);
  return CUDA_SUCCESS;
}
static struct func *func_of(struct module *m, const char *name) {
  pthread_mutex_lock(&ex_mu);
  struct func *f = m->funcs;
  while (f && strcmp(f->name, name) != 0) f = f->next;
  if (f == NULL && (f = calloc(1, sizeof *f + strlen(name) + 1)) != NULL) {
    strcpy(f->name, name);
    f->mod = m;
    f->max_dyn_smem = 48 * 1024;
    f->carveout = -1;
    f->cache = CU_FUNC_CACHE_PREFER_NONE;
    f->next = m->funcs;
    m->funcs = f;
    obj_register(f, OBJ_FUNC, NULL);
  }
  pthread_mutex_unlock(&ex_mu);
  return f;
}
EXPORT CUresult cuModuleGetFunction(CUfunction *out, CUmodule h, const char *name) {
  if (out == NULL || name == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct module *m = obj_get(h, OBJ_MODULE);
  if (m == NULL) return CUDA_ERROR_INVALID_HANDLE;
  struct func *f = func_of(m, name);
  if (f == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = (CUfunction)f;
  return CUDA_SUCCESS;
}
/* The simulator does not read the device code, so it knows no global's address or size. */
EXPORT CUresult cuModuleGetGlobal_v2(CUdeviceptr *d, size_t *n, CUmodule h, const char *name) {
  (void)d;
  (void)n;
  if (name == NULL) return CUDA_ERROR_INVALID_VALUE;
  return obj_get(h, OBJ_MODULE) ? CUDA_ERROR_NOT_FOUND : CUDA_ERROR_INVALID_HANDLE;
}

static CUresult library_new(CUlibrary *out, const void *code) {
  struct library *l = calloc(1, sizeof *l);
  if (l == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  l->code = code;
  obj_register(l, OBJ_LIBRARY, NULL);
  *out = (CUlibrary)l;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLibraryLoadData(CUlibrary *out, const void *code, CUjit_option *jo, void **jv, unsigned int nj,
                                  CUlibraryOption *lo, void **lv, unsigned int nl) {
  (void)jo;
  (void)jv;
  (void)nj;
  (void)lo;
  (void)lv;
  (void)nl;
  if (out == NULL || code == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (!image_ok(code)) return CUDA_ERROR_INVALID_IMAGE;
  return library_new(out, code);
}
EXPORT CUresult cuLibraryLoadFromFile(CUlibrary *out, const char *path, CUjit_option *jo, void **jv, unsigned int nj,
                                      CUlibraryOption *lo, void **lv, unsigned int nl) {
  (void)jo;
  (void)jv;
  (void)nj;
  (void)lo;
  (void)lv;
  (void)nl;
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = check_file(path);
  return r != CUDA_SUCCESS ? r : library_new(out, NULL);
}
EXPORT CUresult cuLibraryUnload(CUlibrary h) {
  struct library *l = obj_get(h, OBJ_LIBRARY);
  if (l == NULL) return CUDA_ERROR_INVALID_HANDLE;
  obj_unregister(l);
  pthread_mutex_lock(&ex_mu);
  struct kernel *k = l->kernels;
  l->kernels = NULL;
  pthread_mutex_unlock(&ex_mu);
  while (k) {
    struct kernel *next = k->next;
    obj_unregister(k);
    free(k);
    k = next;
  }
  if (l->mod) module_free(l->mod);
  free(l);
  return CUDA_SUCCESS;
}
static struct module *library_module(struct library *l) {
  pthread_mutex_lock(&ex_mu);
  if (l->mod == NULL) l->mod = module_new(l->code, NULL);
  struct module *m = l->mod;
  pthread_mutex_unlock(&ex_mu);
  return m;
}
EXPORT CUresult cuLibraryGetModule(CUmodule *out, CUlibrary h) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct library *l = obj_get(h, OBJ_LIBRARY);
  if (l == NULL) return CUDA_ERROR_INVALID_HANDLE;
  struct module *m = library_module(l);
  if (m == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = (CUmodule)m;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLibraryGetKernel(CUkernel *out, CUlibrary h, const char *name) {
  if (out == NULL || name == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct library *l = obj_get(h, OBJ_LIBRARY);
  if (l == NULL) return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&ex_mu);
  struct kernel *k = l->kernels;
  while (k && strcmp(k->name, name) != 0) k = k->next;
  if (k == NULL && (k = calloc(1, sizeof *k + strlen(name) + 1)) != NULL) {
    strcpy(k->name, name);
    k->lib = l;
    k->next = l->kernels;
    l->kernels = k;
    obj_register(k, OBJ_KERNEL, NULL);
  }
  pthread_mutex_unlock(&ex_mu);
  if (k == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = (CUkernel)k;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLibraryGetKernelCount(unsigned int *count, CUlibrary h) {
  if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct library *l = obj_get(h, OBJ_LIBRARY);
  if (l == NULL) return CUDA_ERROR_INVALID_HANDLE;
  unsigned n = 0;
  pthread_mutex_lock(&ex_mu);
  for (struct kernel *k = l->kernels; k; k = k->next) n++;
  pthread_mutex_unlock(&ex_mu);
  *count = n;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuLibraryGetGlobal(CUdeviceptr *d, size_t *n, CUlibrary h, const char *name) {
  (void)d;
  (void)n;
  if (name == NULL) return CUDA_ERROR_INVALID_VALUE;
  return obj_get(h, OBJ_LIBRARY) ? CUDA_ERROR_NOT_FOUND : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuLibraryGetManaged(CUdeviceptr *d, size_t *n, CUlibrary h, const char *name) {
  return cuLibraryGetGlobal(d, n, h, name);
}
EXPORT CUresult cuLibraryGetUnifiedFunction(void **fptr, CUlibrary h, const char *name) {
  (void)fptr;
  if (name == NULL) return CUDA_ERROR_INVALID_VALUE;
  return obj_get(h, OBJ_LIBRARY) ? CUDA_ERROR_NOT_FOUND : CUDA_ERROR_INVALID_HANDLE;
}
static struct func *kernel_func(struct kernel *k) {
  if (k->fn == NULL) {
    struct module *m = library_module(k->lib);
    struct func *f = m ? func_of(m, k->name) : NULL;
    pthread_mutex_lock(&ex_mu);
    if (k->fn == NULL) k->fn = f;
    pthread_mutex_unlock(&ex_mu);
  }
  return k->fn;
}
EXPORT CUresult cuKernelGetFunction(CUfunction *out, CUkernel h) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct kernel *k = obj_get(h, OBJ_KERNEL);
  if (k == NULL) return CUDA_ERROR_INVALID_HANDLE;
  struct func *f = kernel_func(k);
  if (f == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = (CUfunction)f;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuKernelGetName(const char **name, CUkernel h) {
  if (name == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct kernel *k = obj_get(h, OBJ_KERNEL);
  if (k == NULL) return CUDA_ERROR_INVALID_HANDLE;
  *name = k->name;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuKernelGetLibrary(CUlibrary *out, CUkernel h) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct kernel *k = obj_get(h, OBJ_KERNEL);
  if (k == NULL) return CUDA_ERROR_INVALID_HANDLE;
  *out = (CUlibrary)k->lib;
  return CUDA_SUCCESS;
}

/* Function attributes of a simple compiled kernel for compute capability 8.9. */
static CUresult func_attr(struct func *f, int a, int *v) {
  switch (a) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES:
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES:
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES:
    case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA:
    case CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
    case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE: *v = 0; break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *v = 32; break;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION:
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *v = 89; break;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *v = f->max_dyn_smem; break;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: *v = f->carveout; break;
    case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED: *v = f->cluster_allowed; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
static CUresult func_set(struct func *f, int a, int v) {
  switch (a) {
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
      if (v < 0 || v > 99 * 1024) return CUDA_ERROR_INVALID_VALUE;
      f->max_dyn_smem = v;
      return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
      if (v < -1 || v > 100) return CUDA_ERROR_INVALID_VALUE;
      f->carveout = v;
      return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
    case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
      return CUDA_ERROR_NOT_SUPPORTED; /* thread block clusters need compute capability 9.0 */
    default: return CUDA_ERROR_INVALID_VALUE;
  }
}
EXPORT CUresult cuFuncGetAttribute(int *v, CUfunction_attribute a, CUfunction h) {
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct func *f = obj_get(h, OBJ_FUNC);
  return f ? func_attr(f, (int)a, v) : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuFuncSetAttribute(CUfunction h, CUfunction_attribute a, int v) {
  struct func *f = obj_get(h, OBJ_FUNC);
  return f ? func_set(f, (int)a, v) : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuKernelGetAttribute(int *v, CUfunction_attribute a, CUkernel h, CUdevice d) {
  if (v == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  struct kernel *k = obj_get(h, OBJ_KERNEL);
  struct func *f = k ? kernel_func(k) : NULL;
  return f ? func_attr(f, (int)a, v) : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuKernelSetAttribute(CUfunction_attribute a, int v, CUkernel h, CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  struct kernel *k = obj_get(h, OBJ_KERNEL);
  struct func *f = k ? kernel_func(k) : NULL;
  return f ? func_set(f, (int)a, v) : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuKernelSetCacheConfig(CUkernel h, CUfunc_cache c, CUdevice d) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  struct kernel *k = obj_get(h, OBJ_KERNEL);
  struct func *f = k ? kernel_func(k) : NULL;
  if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
  f->cache = c;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuFuncSetCacheConfig(CUfunction h, CUfunc_cache c) {
  struct func *f = obj_get(h, OBJ_FUNC);
  if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
  f->cache = c;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuFuncSetSharedMemConfig(CUfunction h, CUsharedconfig c) {
  (void)c;
  return obj_get(h, OBJ_FUNC) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuFuncGetModule(CUmodule *out, CUfunction h) {
  if (out == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct func *f = obj_get(h, OBJ_FUNC);
  if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
  *out = (CUmodule)f->mod;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuFuncGetName(const char **name, CUfunction h) {
  if (name == NULL) return CUDA_ERROR_INVALID_VALUE;
  struct func *f = obj_get(h, OBJ_FUNC);
  if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
  *name = f->name;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuFuncIsLoaded(CUfunctionLoadingState *st, CUfunction h) {
  if (st == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (obj_get(h, OBJ_FUNC) == NULL) return CUDA_ERROR_INVALID_HANDLE;
  *st = CU_FUNCTION_LOADING_STATE_LOADED;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuFuncLoad(CUfunction h) { return obj_get(h, OBJ_FUNC) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE; }

/* ---- occupancy: compute capability 8.9 limits, 32 registers per thread, no static shared memory ------------------ */

static int blocks_per_sm(int block, size_t smem) {
  if (block <= 0 || block > 1024) return 0;
  int warps = (block + 31) / 32;
  int by_threads = 48 / warps;                  /* 1536 threads = 48 warps per SM */
  int by_regs = 65536 / (warps * 32 * 32);      /* 64K registers */
  int by_smem = (int)((100 * 1024) / (smem + 1024)); /* 1 KiB reserved per block */
  int n = by_threads < by_regs ? by_threads : by_regs;
  if (by_smem < n) n = by_smem;
  return n > 24 ? 24 : n;
}
static CUresult occupancy(int *n, CUfunction h, int block, size_t smem) {
  if (n == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (obj_get(h, OBJ_FUNC) == NULL) return CUDA_ERROR_INVALID_HANDLE;
  *n = blocks_per_sm(block, smem);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *n, CUfunction f, int block, size_t smem) {
  return occupancy(n, f, block, smem);
}
EXPORT CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *n, CUfunction f, int block, size_t smem, unsigned int fl) {
  (void)fl;
  return occupancy(n, f, block, smem);
}
static CUresult potential(int *grid, int *block, CUfunction h, CUoccupancyB2DSize b2s, size_t smem, int limit) {
  if (grid == NULL || block == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (obj_get(h, OBJ_FUNC) == NULL) return CUDA_ERROR_INVALID_HANDLE;
  int max = limit > 0 && limit < 1024 ? limit : 1024, best = 0, best_block = 32;
  for (int b = max / 32 * 32; b >= 32; b -= 32) {
    int occ = blocks_per_sm(b, b2s ? b2s(b) : smem) * b;
    if (occ > best) {
      best = occ;
      best_block = b;
    }
  }
  *block = best_block;
  *grid = blocks_per_sm(best_block, b2s ? b2s(best_block) : smem) * 24;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuOccupancyMaxPotentialBlockSize(int *grid, int *block, CUfunction f, CUoccupancyB2DSize b2s, size_t smem, int limit) {
  return potential(grid, block, f, b2s, smem, limit);
}
EXPORT CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(int *grid, int *block, CUfunction f, CUoccupancyB2DSize b2s,
                                                          size_t smem, int limit, unsigned int fl) {
  (void)fl;
  return potential(grid, block, f, b2s, smem, limit);
}
EXPORT CUresult cuOccupancyAvailableDynamicSMemPerBlock(size_t *out, CUfunction h, int nblocks, int block) {
  if (out == NULL || nblocks <= 0 || block <= 0 || block > 1024) return CUDA_ERROR_INVALID_VALUE;
  if (obj_get(h, OBJ_FUNC) == NULL) return CUDA_ERROR_INVALID_HANDLE;
  size_t per = (100 * 1024) / (size_t)nblocks;
  per = per > 1024 ? per - 1024 : 0;
  *out = per > 99 * 1024 ? 99 * 1024 : per;
  return CUDA_SUCCESS;
}

/* ---- launches: impossible on a CPU ----------------------------------------------------------------------------- */

#define NO_LAUNCH(what) \
  sim_not_simulated(what ": kernels cannot run on the simulated GPU (no GPU on this machine): CUDA_ERROR_NOT_SUPPORTED", \
                    CUDA_ERROR_NOT_SUPPORTED)
static CUresult launch_check(CUfunction f, CUstream s) {
  if (obj_get(f, OBJ_FUNC) == NULL && obj_get(f, OBJ_KERNEL) == NULL) return CUDA_ERROR_INVALID_HANDLE;
  return stream_check(s);
}
EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned smem, CUstream s, void **params, void **extra) {
  (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)smem, (void)params, (void)extra;
  CUresult r = launch_check(f, s);
  return r != CUDA_SUCCESS ? r : NO_LAUNCH("cuLaunchKernel");
}
EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                    unsigned bz, unsigned smem, CUstream s, void **params, void **extra) {
  return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, smem, s, params, extra);
}
EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **params, void **extra) {
  (void)params, (void)extra;
  if (c == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = launch_check(f, c->hStream);
  return r != CUDA_SUCCESS ? r : NO_LAUNCH("cuLaunchKernelEx");
}
EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *c, CUfunction f, void **params, void **extra) {
  return cuLaunchKernelEx(c, f, params, extra);
}
EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                          unsigned bz, unsigned smem, CUstream s, void **params) {
  (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)smem, (void)params;
  CUresult r = launch_check(f, s);
  return r != CUDA_SUCCESS ? r : NO_LAUNCH("cuLaunchCooperativeKernel");
}
EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                               unsigned by, unsigned bz, unsigned smem, CUstream s, void **params) {
  return cuLaunchCooperativeKernel(f, gx, gy, gz, bx, by, bz, smem, s, params);
}

/* ---- context teardown ------------------------------------------------------------------------------------------- */

void exec_obj_destroy(struct obj *o) { /* already unregistered */
  switch (o->type) {
    case OBJ_STREAM:
    case OBJ_EVENT: free(o); break;
    case OBJ_MODULE: module_free((struct module *)o); break;
    default: break; /* functions and kernels go with their module or library; pools are device-level */
  }
}
