/* Internal interface between the parts of the simulated driver (libcuda.so.1: simcuda.c,
 * private_tables.c, sim_state.c) and the simulated NVML (libnvidia-ml.so.1: simnvml.c, sim_state.c).
 * Nothing here is exported. docs/simulated-driver.md describes the whole simulator. */
#ifndef EMUV_SIM_H
#define EMUV_SIM_H

#include <stdint.h>
#include <sys/types.h>

#define SIM_HIDDEN __attribute__((visibility("hidden")))

/* ---- messages -------------------------------------------------------------------------------------- */

/* One line on stderr, "emuv-sim: <text>": something the simulator does not know or cannot do (real
 * software under test must never trigger one). */
SIM_HIDDEN void sim_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "emuv-sim-trace: <text>" when EMUV_SIM_TRACE is set (diagnostics only). */
SIM_HIDDEN void sim_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
SIM_HIDDEN int sim_tracing(void);

/* ---- the simulated card's identity (both libraries agree on it) ----------------------------------- */

struct sim_card {
  uint64_t vram;           /* EMUV_SIM_VRAM, default 8 GiB */
  char name[96];           /* EMUV_SIM_NAME, default "NVIDIA GeForce RTX 4060 (simulated)" */
  unsigned pci_domain, pci_bus, pci_dev, pci_fn; /* EMUV_SIM_PCI_BUS_ID, default 0000:01:00.0 */
  unsigned char uuid[16];  /* GPU-00000000-0000-0000-0000-000000000e11 */
  int driver_version;      /* EMUV_SIM_DRIVER_VERSION, default 13000 (the CUDA version the driver supports) */
};
SIM_HIDDEN const struct sim_card *sim_card(void);
SIM_HIDDEN uint64_t sim_parse_size(const char *s, uint64_t dflt);

/* ---- the card's VRAM, shared by every process that uses it (sim_state.c) ----------------------------
 * A small MAP_SHARED file (EMUV_SIM_STATE, default per user and card size, see sim_state.c) holds one
 * slot per process; a dead process's usage is dropped by the next reader, as the kernel driver frees a
 * dead process's memory. Without the file, usage is per process (one emuv-sim: line says so). */

/* Reserves n bytes of the card for this process; 0 when the card is full (all processes together). */
SIM_HIDDEN int sim_vram_charge(uint64_t n);
SIM_HIDDEN void sim_vram_uncharge(uint64_t n);
/* Drops everything this process holds (its context was destroyed). */
SIM_HIDDEN void sim_vram_uncharge_all(void);
SIM_HIDDEN uint64_t sim_vram_mine(void);
/* Used bytes of the card, all live processes together. */
SIM_HIDDEN uint64_t sim_vram_card_used(void);
struct sim_proc {
  pid_t pid;
  uint64_t used;
};
/* The live processes holding memory on the card (at most max); returns how many there are. */
SIM_HIDDEN unsigned sim_vram_processes(struct sim_proc *out, unsigned max);

/* ---- driver internals used by the private export tables (simcuda.c) -------------------------------- */
#ifdef SIM_DRIVER_INTERNALS
#include <cuda.h>
SIM_HIDDEN CUresult sim_primary_ctx(CUcontext *out, CUdevice dev);
SIM_HIDDEN CUresult sim_current_ctx(CUcontext *out); /* the thread's current context, or NULL */
SIM_HIDDEN CUresult sim_ctx_valid(CUcontext c);
typedef void (*sim_cls_dtor)(CUcontext, void *, void *);
SIM_HIDDEN CUresult sim_cls_put(CUcontext c, void *key, void *value, sim_cls_dtor dtor);
SIM_HIDDEN CUresult sim_cls_get(CUcontext c, void *key, void **value);
SIM_HIDDEN CUresult sim_cls_delete(CUcontext c, void *key);
SIM_HIDDEN CUresult sim_module_from_image(CUmodule *out, const void *image, const char *how);
SIM_HIDDEN int sim_is_inited(void);
#endif

#endif
