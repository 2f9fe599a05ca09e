/* Internals shared by the simulated driver's sources (simcuda.c, sim_memory.c, sim_exec.c). */
#ifndef EMUV_SIM_DRIVER_H
#define EMUV_SIM_DRIVER_H

#define __CUDA_API_VERSION_INTERNAL 1
#define SIM_DRIVER_INTERNALS 1
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>

#include "sim.h"

#define EXPORT __attribute__((visibility("default")))
#define GRANULE (2ull << 20)

/* ---- handles ----------------------------------------------------------------------------------------
 * Every handle the driver gives out (context, stream, event, module, function, library, kernel, pool, VMM
 * allocation handle) starts with struct obj and is registered while it lives: a destroyed or foreign
 * handle is recognised (CUDA_ERROR_INVALID_HANDLE / INVALID_CONTEXT) instead of being dereferenced. */
enum obj_type { OBJ_CTX = 1, OBJ_STREAM, OBJ_EVENT, OBJ_MODULE, OBJ_FUNC, OBJ_LIBRARY, OBJ_KERNEL, OBJ_POOL, OBJ_MEMHANDLE };

struct ctx;
struct obj {
  uint32_t type;
  struct obj *hnext; /* registry chain */
  struct ctx *ctx;   /* owner: destroyed with it (NULL: device-level object) */
};
SIM_HIDDEN void obj_register(void *o, enum obj_type t, struct ctx *owner);
SIM_HIDDEN void obj_unregister(void *o);
SIM_HIDDEN void *obj_get(const void *handle, enum obj_type t); /* NULL unless live and of type t */
/* Unregisters and hands to fn every object owned by c (used by context teardown). */
SIM_HIDDEN void obj_drop_owned(struct ctx *c, void (*fn)(struct obj *));

/* ---- contexts ---------------------------------------------------------------------------------------- */
struct cls_entry {
  void *key, *value;
  sim_cls_dtor dtor;
  struct cls_entry *next;
};
struct ctx {
  struct obj o;
  CUdevice dev;
  unsigned flags;
  int primary;
  unsigned long long id;
  size_t limits[16];
  CUfunc_cache cache;
  struct cls_entry *cls;
};
/* The context an operation acts in: the thread's current one, else the device's primary context
 * (the simulator does not insist on a current context for memory operations; see the doc). */
SIM_HIDDEN struct ctx *ctx_for_op(void);
SIM_HIDDEN struct ctx *ctx_current(void); /* NULL when the thread has none */
SIM_HIDDEN struct ctx *ctx_primary(void);
SIM_HIDDEN int sim_driver_version(void);

/* ---- memory (sim_memory.c) ------------------------------------------------------------------------- */
/* Frees every allocation, mapping and reservation c owns (context destroyed or reset). */
SIM_HIDDEN void mem_teardown(struct ctx *c);
SIM_HIDDEN void mem_obj_destroy(struct obj *o); /* a VMM handle of a destroyed context */
SIM_HIDDEN int mem_location(uint64_t p);
/* 0 unless [p, p+n) lies in memory the device can address (allocations, mappings, registered host memory) */
SIM_HIDDEN int mem_device_accessible(uint64_t p, uint64_t n);

/* ---- streams and execution (sim_exec.c) -------------------------------------------------------------- */
/* CUDA_SUCCESS for the NULL, legacy and per-thread streams and for live stream handles. */
SIM_HIDDEN CUresult stream_check(CUstream s);
SIM_HIDDEN void exec_obj_destroy(struct obj *o); /* a stream, event, module... of a destroyed context */

/* ---- misc ---------------------------------------------------------------------------------------------- */
SIM_HIDDEN CUresult sim_injected(const char *export_name); /* EMUV_SIM_FAIL */
SIM_HIDDEN void sim_set_last(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
SIM_HIDDEN CUresult sim_not_simulated(const char *what, CUresult r); /* one emuv-sim: line per `what` */

#endif
