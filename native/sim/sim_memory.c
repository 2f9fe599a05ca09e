/* The simulated driver's memory: allocations, copies and memsets, VMM, memory pools, pointer queries.
 *
 * Every live range the device can address is in one ordered registry (a treap keyed by start address):
 * cuMemAlloc/pitch/array blocks, pool (stream-ordered) allocations, managed memory, cuMemHostAlloc
 * memory, registered host memory and VMM mappings. So cuMemGetAddressRange, cuPointerGetAttribute and
 * the copy checks find the allocation of any interior pointer, and a destroyed context's memory can be
 * found and freed. VA reservations (cuMemAddressReserve) are a second registry. One mutex guards both
 * and the VMM handles. Device-located memory is charged to the card's shared usage (sim_state.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim_driver.h"

SIM_HIDDEN int sim_host_numa_vmm(void);
SIM_HIDDEN int sim_host_plain_vmm(void);

enum kind { K_DEVICE = 1, K_ARRAY, K_POOL, K_MANAGED, K_HOST, K_HOSTREG, K_MAP, K_RESERVE };
#define LOC_MANAGED 100

struct pool {
  struct obj o;
  CUmemLocation loc;
  CUmemAllocationHandleType htypes;
  cuuint64_t threshold, used, used_high, reserved_high;
  int reuse[3];
};

struct mhandle { /* a cuMemCreate allocation */
  struct obj o;
  int fd;
  size_t size;
  CUmemAllocationProp prop;
  int refs;  /* cuMemCreate, cuMemRetainAllocationHandle, imports */
  int nmaps; /* live mappings */
  int charged;
  pid_t pid; /* the process the charge belongs to */
  uint64_t id;
};

struct range {
  uint64_t base, size;
  void *mem;       /* backing to free (blocks), NULL otherwise */
  uint64_t memlen; /* 0: malloc'd, else mmap'd length */
  int kind, loc;
  unsigned flags;
  int charged; /* VRAM bytes charged to this process */
  pid_t pid;
  struct ctx *ctx;
  struct pool *pool;    /* K_POOL */
  struct mhandle *h;    /* K_MAP */
  uint64_t off;         /* K_MAP: offset in the handle */
  int prot;             /* K_MAP: access granted by cuMemSetAccess */
  uint64_t id;
  struct advice *adv;   /* K_MANAGED: cuMemAdvise/cuMemPrefetchAsync state, NULL until the first one */
  struct range *l, *r, *next; /* tree children, list link */
  uint32_t prio;
};

/* What cuMemAdvise and cuMemPrefetchAsync left on a managed allocation, kept per allocation rather than
 * per page: advice given to part of an allocation makes that attribute non-uniform (MIXED) for every
 * query of the allocation, which is what the driver answers for a range whose pages disagree. */
#define ADV_MIXED (-100)
struct advice {
  int read_mostly;       /* 0, 1 or ADV_MIXED */
  int pref_type, pref_id; /* CU_MEM_LOCATION_TYPE_INVALID (none) or the location; pref_type ADV_MIXED */
  unsigned by;           /* accessed-by on the whole allocation: bit 0 device 0, bit 1 the host */
  unsigned by_part;      /* accessed-by on part of it only */
  int pf_type, pf_id;    /* last prefetch location, as pref_* */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct range *allocs, *resvs;
static uint64_t next_id = 1;
static uint32_t rnd = 2463534242u;

static pid_t cached_pid;
static pthread_once_t mem_once = PTHREAD_ONCE_INIT;
static void fork_prepare(void) { pthread_mutex_lock(&mu); }
static void fork_parent(void) { pthread_mutex_unlock(&mu); }
static void fork_child(void) { /* a fork child never inherits a held lock, and is a new process */
  pthread_mutex_unlock(&mu);
  cached_pid = getpid();
}
static void mem_init(void) {
  cached_pid = getpid();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}
static void lock(void) {
  pthread_once(&mem_once, mem_init);
  pthread_mutex_lock(&mu);
}
static void unlock(void) { pthread_mutex_unlock(&mu); }

/* Registry nodes come from a free list (allocated 64 at a time, never returned to malloc): the
 * alloc/free fast path then costs one malloc, not two interleaved ones that fragment the heap. */
static struct range *free_nodes;
static struct range *node_get_locked(void) {
  if (free_nodes == NULL) {
    struct range *chunk = malloc(64 * sizeof *chunk);
    if (chunk == NULL) return NULL;
    for (int i = 0; i < 64; i++) {
      chunk[i].next = free_nodes;
      free_nodes = &chunk[i];
    }
  }
  struct range *r = free_nodes;
  free_nodes = r->next;
  memset(r, 0, sizeof *r);
  return r;
}
static void node_put_locked(struct range *r) {
  r->next = free_nodes;
  free_nodes = r;
}
static void node_put(struct range *r) {
  lock();
  node_put_locked(r);
  unlock();
}

/* ---- treap ------------------------------------------------------------------------------------------ */

static struct range *t_merge(struct range *a, struct range *b) {
  if (a == NULL) return b;
  if (b == NULL) return a;
  if (a->prio > b->prio) {
    a->r = t_merge(a->r, b);
    return a;
  }
  b->l = t_merge(a, b->l);
  return b;
}
static void t_split(struct range *t, uint64_t key, struct range **lo, struct range **hi) { /* lo: base < key */
  if (t == NULL) {
    *lo = *hi = NULL;
  } else if (t->base < key) {
    t_split(t->r, key, &t->r, hi);
    *lo = t;
  } else {
    t_split(t->l, key, lo, &t->l);
    *hi = t;
  }
}
static void t_insert(struct range **root, struct range *n) {
  rnd ^= rnd << 13;
  rnd ^= rnd >> 17;
  rnd ^= rnd << 5;
  n->prio = rnd;
  n->l = n->r = NULL;
  struct range *a, *b;
  t_split(*root, n->base, &a, &b);
  *root = t_merge(t_merge(a, n), b);
}
static struct range *t_remove(struct range **root, uint64_t base) {
  struct range *a, *b, *m, *c;
  t_split(*root, base, &a, &b);
  t_split(b, base + 1, &m, &c);
  *root = t_merge(a, c);
  return m;
}
/* the range holding p */
static struct range *t_find(struct range *t, uint64_t p) {
  struct range *best = NULL;
  while (t) {
    if (t->base <= p) {
      best = t;
      t = t->r;
    } else {
      t = t->l;
    }
  }
  return best && p - best->base < best->size ? best : NULL;
}
/* the first range starting at or after p */
static struct range *t_ceil(struct range *t, uint64_t p) {
  struct range *best = NULL;
  while (t) {
    if (t->base >= p) {
      best = t;
      t = t->l;
    } else {
      t = t->r;
    }
  }
  return best;
}
static int t_overlaps(struct range *t, uint64_t p, uint64_t n) {
  if (t_find(t, p)) return 1;
  struct range *c = t_ceil(t, p);
  return c && c->base < p + n;
}
/* Moves every range owned by c (all ranges when c is NULL) of the tree to a list. */
static void t_collect(struct range *t, struct ctx *c, struct range **list) {
  if (t == NULL) return;
  t_collect(t->l, c, list);
  t_collect(t->r, c, list);
  if (c == NULL || t->ctx == c) {
    t->next = *list;
    *list = t;
  }
}

/* ---- charging ---------------------------------------------------------------------------------------- */

static pid_t my_pid(void) {
  pthread_once(&mem_once, mem_init);
  return cached_pid;
}
static void uncharge_range(struct range *r) {
  if (r->charged && r->pid == my_pid()) sim_vram_uncharge(r->size);
  r->charged = 0;
}

/* ---- blocks -------------------------------------------------------------------------------------------- */

static void *backing(uint64_t n, uint64_t *memlen) {
  if (n >= (1u << 20)) { /* large: its own mapping, untouched pages cost nothing */
    uint64_t len = (n + 4095) & ~4095ull;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *memlen = len;
    return p;
  }
  *memlen = 0;
  return malloc(n + 512); /* aligned by the caller (cuMemAlloc alignment); plain malloc reuses chunks well */
}
static uint64_t aligned_base(void *mem, uint64_t memlen) {
  return memlen ? (uint64_t)(uintptr_t)mem : ((uint64_t)(uintptr_t)mem + 511) & ~511ull;
}
static void unback(struct range *r) {
  if (r->mem == NULL) return;
  if (r->memlen) munmap(r->mem, r->memlen);
  else free(r->mem);
  r->mem = NULL;
}

static CUresult block_new(uint64_t n, int kind, int loc, unsigned flags, struct pool *pool, CUdeviceptr *out) {
  if (n == 0) return CUDA_ERROR_INVALID_VALUE;
  int charge = loc == CU_MEM_LOCATION_TYPE_DEVICE;
  if (charge && !sim_vram_charge(n)) return CUDA_ERROR_OUT_OF_MEMORY;
  uint64_t memlen = 0;
  void *mem = backing(n, &memlen);
  struct ctx *c = ctx_for_op();
  pid_t pid = my_pid();
  lock();
  struct range *r = mem ? node_get_locked() : NULL;
  if (r == NULL) {
    unlock();
    if (mem) {
      if (memlen) munmap(mem, memlen);
      else free(mem);
    }
    if (charge) sim_vram_uncharge(n);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  r->mem = mem;
  r->memlen = memlen;
  r->base = aligned_base(mem, memlen);
  r->size = n;
  r->kind = kind;
  r->loc = loc;
  r->flags = flags;
  r->charged = charge;
  r->pid = pid;
  r->ctx = c;
  r->pool = pool;
  r->id = next_id++;
  if (pool) {
    pool->used += n;
    if (pool->used > pool->used_high) pool->used_high = pool->used;
    if (pool->used > pool->reserved_high) pool->reserved_high = pool->used;
  }
  t_insert(&allocs, r);
  unlock();
  *out = r->base;
  return CUDA_SUCCESS;
}

static void range_free(struct range *r) { /* removed from the tree already */
  uncharge_range(r);
  unback(r);
  free(r->adv);
  node_put(r);
}

/* Frees the block starting at p if its kind is allowed (bit mask of kinds). */
static CUresult block_free(uint64_t p, unsigned kinds) {
  lock();
  struct range *r = t_find(allocs, p);
  if (r == NULL || r->base != p || !(kinds & (1u << r->kind))) {
    unlock();
    return CUDA_ERROR_INVALID_VALUE;
  }
  t_remove(&allocs, p);
  if (r->pool) r->pool->used -= r->size;
  struct range copy = *r; /* the node goes back to the free list now; the memory is released unlocked */
  node_put_locked(r);
  unlock();
  uncharge_range(&copy);
  unback(&copy);
  free(copy.adv);
  return CUDA_SUCCESS;
}
#define KM(k) (1u << (k))

int mem_location(uint64_t p) {
  lock();
  struct range *r = t_find(allocs, p);
  int loc = r == NULL ? -1 : r->kind == K_MAP ? (int)r->h->prop.location.type : r->loc;
  unlock();
  return loc;
}

/* [p, p+n) must be covered by adjacent device-addressable ranges (a copy may cross the VRAM|host
 * boundary of a split allocation, i.e. two mappings). Called with mu held. */
static int accessible_locked(uint64_t p, uint64_t n) {
  uint64_t end = p + n;
  if (end < p) return 0;
  while (p < end) {
    struct range *r = t_find(allocs, p);
    if (r == NULL || (r->kind == K_MAP && r->prot == PROT_NONE)) return 0;
    p = r->base + r->size;
  }
  return 1;
}
int mem_device_accessible(uint64_t p, uint64_t n) {
  if (n == 0) return 1;
  lock();
  int ok = accessible_locked(p, n);
  unlock();
  return ok;
}

/* ---- plain allocations ---------------------------------------------------------------------------------- */

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *d, size_t n) {
  if (d == NULL || n == 0) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = sim_injected("cuMemAlloc_v2");
  if (r != CUDA_SUCCESS) return r;
  return block_new(n, K_DEVICE, CU_MEM_LOCATION_TYPE_DEVICE, 0, NULL, d);
}
EXPORT CUresult cuMemAlloc(unsigned int *d, unsigned int n) { /* legacy 32-bit ABI: cannot hold a 64-bit VA */
  (void)d;
  (void)n;
  sim_set_last("cuMemAlloc");
  return CUDA_ERROR_NOT_SUPPORTED;
}
EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *d, size_t *pitch, size_t w, size_t h, unsigned int esz) {
  if (d == NULL || pitch == NULL || w == 0 || h == 0) return CUDA_ERROR_INVALID_VALUE;
  if (esz != 4 && esz != 8 && esz != 16) return CUDA_ERROR_INVALID_VALUE;
  size_t p = (w + 511) / 512 * 512;
  CUresult r = block_new((uint64_t)p * h, K_DEVICE, CU_MEM_LOCATION_TYPE_DEVICE, 0, NULL, d);
  if (r != CUDA_SUCCESS) return r;
  *pitch = p;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr d) {
  if (d == 0) return CUDA_SUCCESS;
  return block_free(d, KM(K_DEVICE) | KM(K_POOL) | KM(K_MANAGED));
}
EXPORT CUresult cuMemGetInfo_v2(size_t *f, size_t *t) {
  if (!sim_is_inited()) return CUDA_ERROR_NOT_INITIALIZED;
  uint64_t total = sim_card()->vram, u = sim_vram_card_used(); /* every process on the card */
  if (f) *f = u > total ? 0 : total - u;
  if (t) *t = total;
  sim_set_last("cuMemGetInfo_v2");
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemHostAlloc(void **pp, size_t n, unsigned int flags) {
  if (pp == NULL || n == 0) return CUDA_ERROR_INVALID_VALUE;
  if (flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED))
    return CUDA_ERROR_INVALID_VALUE;
  CUresult r = sim_injected("cuMemHostAlloc");
  if (r != CUDA_SUCCESS) return r;
  CUdeviceptr b = 0;
  r = block_new(n, K_HOST, CU_MEM_LOCATION_TYPE_HOST, flags, NULL, &b);
  if (r == CUDA_SUCCESS) *pp = (void *)(uintptr_t)b;
  return r;
}
EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t n) { return cuMemHostAlloc(pp, n, 0); }
EXPORT CUresult cuMemFreeHost(void *p) { return block_free((uint64_t)(uintptr_t)p, KM(K_HOST)); }
EXPORT CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *d, void *p, unsigned int flags) {
  if (d == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *r = t_find(allocs, (uint64_t)(uintptr_t)p);
  int ok = r && (r->kind == K_HOST || r->kind == K_HOSTREG);
  unlock();
  if (!ok) return CUDA_ERROR_INVALID_VALUE;
  *d = (CUdeviceptr)(uintptr_t)p; /* unified addressing: the device sees the host address */
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemHostGetFlags(unsigned int *flags, void *p) {
  if (flags == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *r = t_find(allocs, (uint64_t)(uintptr_t)p);
  int ok = r && (r->kind == K_HOST || r->kind == K_HOSTREG);
  if (ok) *flags = r->flags;
  unlock();
  return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned int flags) {
  if (p == NULL || n == 0) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c = ctx_for_op();
  lock();
  if (t_overlaps(allocs, (uint64_t)(uintptr_t)p, n)) {
    unlock();
    return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
  }
  struct range *r = node_get_locked();
  if (r == NULL) {
    unlock();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  r->base = (uint64_t)(uintptr_t)p;
  r->size = n;
  r->kind = K_HOSTREG;
  r->loc = CU_MEM_LOCATION_TYPE_HOST;
  r->flags = flags;
  r->ctx = c;
  r->id = next_id++;
  t_insert(&allocs, r);
  unlock();
  return CUDA_SUCCESS;
}
/* The CUDA 4.0 ABI (the export without _v2): same arguments and semantics. */
EXPORT CUresult cuMemHostRegister(void *p, size_t n, unsigned int flags) { return cuMemHostRegister_v2(p, n, flags); }
EXPORT CUresult cuMemHostUnregister(void *p) {
  if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
  uint64_t a = (uint64_t)(uintptr_t)p;
  lock();
  struct range *r = t_find(allocs, a);
  if (r == NULL || r->kind != K_HOSTREG || r->base != a) {
    unlock();
    return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
  }
  t_remove(&allocs, a);
  node_put_locked(r);
  unlock();
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAllocManaged(CUdeviceptr *d, size_t n, unsigned int flags) {
  if (d == NULL || n == 0) return CUDA_ERROR_INVALID_VALUE;
  if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = sim_injected("cuMemAllocManaged");
  if (r != CUDA_SUCCESS) return r;
  return block_new(n, K_MANAGED, LOC_MANAGED, flags, NULL, d);
}
/* ---- managed memory: prefetch, advice, range attributes ------------------------------------------------ */

/* The managed allocation holding all of [p, p+n), n > 0; called with mu held. */
static struct range *managed_locked(uint64_t p, uint64_t n) {
  struct range *m = t_find(allocs, p);
  if (m == NULL || m->kind != K_MANAGED || n == 0 || n > m->base + m->size - p) return NULL;
  return m;
}
static struct advice *advice_of(struct range *m) {
  if (m->adv == NULL && (m->adv = calloc(1, sizeof *m->adv)) != NULL) m->adv->pf_type = CU_MEM_LOCATION_TYPE_INVALID;
  return m->adv;
}
/* A location as the range attributes report it: HOST_NUMA_CURRENT is the calling thread's node (the
 * simulated machine has one, node 0). */
static CUmemLocation loc_resolved(CUmemLocation l) {
  if (l.type == CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT) l.type = CU_MEM_LOCATION_TYPE_HOST_NUMA, l.id = 0;
  if (l.type == CU_MEM_LOCATION_TYPE_HOST) l.id = 0;
  return l;
}
/* Sets (type, id) on the whole allocation, or on part of it: then the value stays only if it was already
 * the same everywhere. */
static void set_loc(int *type, int *id, CUmemLocation l, int whole) {
  if (whole) *type = (int)l.type, *id = l.id;
  else if (*type != (int)l.type || *id != l.id) *type = ADV_MIXED;
}

static CUresult prefetch(CUdeviceptr p, size_t n, CUmemLocation loc, CUstream s) {
  CUresult r = stream_check(s);
  if (r != CUDA_SUCCESS) return r;
  if (loc.type == CU_MEM_LOCATION_TYPE_DEVICE && loc.id != 0) return CUDA_ERROR_INVALID_DEVICE;
  if (loc.type == CU_MEM_LOCATION_TYPE_HOST_NUMA && loc.id != 0) return CUDA_ERROR_INVALID_VALUE;
  if (loc.type != CU_MEM_LOCATION_TYPE_DEVICE && loc.type != CU_MEM_LOCATION_TYPE_HOST &&
      loc.type != CU_MEM_LOCATION_TYPE_HOST_NUMA && loc.type != CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT)
    return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *m = managed_locked(p, n);
  struct advice *a = m ? advice_of(m) : NULL;
  if (a) set_loc(&a->pf_type, &a->pf_id, loc_resolved(loc), p == m->base && n == m->size);
  unlock();
  return m == NULL ? CUDA_ERROR_INVALID_VALUE : a == NULL ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}
EXPORT CUresult cuMemPrefetchAsync(CUdeviceptr p, size_t n, CUdevice dev, CUstream s) {
  if (dev != 0 && dev != CU_DEVICE_CPU) return CUDA_ERROR_INVALID_DEVICE;
  CUmemLocation loc = {.type = dev == CU_DEVICE_CPU ? CU_MEM_LOCATION_TYPE_HOST : CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
  return prefetch(p, n, loc, s);
}
EXPORT CUresult cuMemPrefetchAsync_ptsz(CUdeviceptr p, size_t n, CUdevice dev, CUstream s) {
  return cuMemPrefetchAsync(p, n, dev, s);
}
EXPORT CUresult cuMemPrefetchAsync_v2(CUdeviceptr p, size_t n, CUmemLocation loc, unsigned int flags, CUstream s) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE; /* "reserved for future use, must be 0" */
  return prefetch(p, n, loc, s);
}
EXPORT CUresult cuMemPrefetchAsync_v2_ptsz(CUdeviceptr p, size_t n, CUmemLocation loc, unsigned int flags, CUstream s) {
  return cuMemPrefetchAsync_v2(p, n, loc, flags, s);
}

/* cuMemAdvise with the rules of cuda.h: the range must be managed memory (the simulated card has no
 * pageable-memory access); SET_PREFERRED_LOCATION takes a device, HOST, HOST_NUMA or HOST_NUMA_CURRENT;
 * SET/UNSET_ACCESSED_BY a device or HOST; the other advice ignores the location. The advice is recorded
 * for cuMemRangeGetAttribute(s); it moves nothing (there is one memory). */
static CUresult advise(CUdeviceptr d, size_t n, CUmem_advise adv, CUmemLocation loc) {
  if (adv < CU_MEM_ADVISE_SET_READ_MOSTLY || adv > CU_MEM_ADVISE_UNSET_ACCESSED_BY) return CUDA_ERROR_INVALID_VALUE;
  int uses_loc = adv == CU_MEM_ADVISE_SET_PREFERRED_LOCATION || adv == CU_MEM_ADVISE_SET_ACCESSED_BY ||
                 adv == CU_MEM_ADVISE_UNSET_ACCESSED_BY;
  if (uses_loc) {
    int host_only = adv != CU_MEM_ADVISE_SET_PREFERRED_LOCATION; /* accessed-by: DEVICE or HOST */
    switch (loc.type) {
      case CU_MEM_LOCATION_TYPE_DEVICE:
        if (loc.id != 0) return CUDA_ERROR_INVALID_DEVICE;
        break;
      case CU_MEM_LOCATION_TYPE_HOST: break;
      case CU_MEM_LOCATION_TYPE_HOST_NUMA:
        if (host_only || loc.id != 0) return CUDA_ERROR_INVALID_VALUE;
        break;
      case CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT:
        if (host_only) return CUDA_ERROR_INVALID_VALUE;
        break;
      default: return CUDA_ERROR_INVALID_VALUE;
    }
  }
  CUresult r = CUDA_SUCCESS;
  lock();
  struct range *m = managed_locked(d, n);
  struct advice *a = m ? advice_of(m) : NULL;
  if (m == NULL) r = CUDA_ERROR_INVALID_VALUE;
  else if (a == NULL) r = CUDA_ERROR_OUT_OF_MEMORY;
  else {
    int whole = d == m->base && n == m->size;
    unsigned bit = loc.type == CU_MEM_LOCATION_TYPE_DEVICE ? 1u : 2u;
    CUmemLocation none = {.type = CU_MEM_LOCATION_TYPE_INVALID, .id = 0};
    switch (adv) {
      case CU_MEM_ADVISE_SET_READ_MOSTLY: a->read_mostly = whole || a->read_mostly == 1 ? 1 : ADV_MIXED; break;
      case CU_MEM_ADVISE_UNSET_READ_MOSTLY: a->read_mostly = whole || a->read_mostly == 0 ? 0 : ADV_MIXED; break;
      case CU_MEM_ADVISE_SET_PREFERRED_LOCATION: set_loc(&a->pref_type, &a->pref_id, loc_resolved(loc), whole); break;
      case CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION: set_loc(&a->pref_type, &a->pref_id, none, whole); break;
      case CU_MEM_ADVISE_SET_ACCESSED_BY:
        if (whole) a->by |= bit, a->by_part &= ~bit;
        else if (!(a->by & bit)) a->by_part |= bit;
        break;
      case CU_MEM_ADVISE_UNSET_ACCESSED_BY:
        if (whole) a->by &= ~bit, a->by_part &= ~bit;
        else if (a->by & bit) a->by &= ~bit, a->by_part |= bit;
        break;
      default: break;
    }
  }
  unlock();
  return r;
}
EXPORT CUresult cuMemAdvise(CUdeviceptr d, size_t n, CUmem_advise a, CUdevice dev) {
  sim_set_last("cuMemAdvise %llx %zu %d dev=%d", (unsigned long long)d, n, (int)a, dev);
  CUresult r = sim_injected("cuMemAdvise");
  if (r != CUDA_SUCCESS) return r;
  /* the CUdevice ABI: CU_DEVICE_CPU is the host; ignored by the advice that takes no location */
  CUmemLocation loc = {.type = dev == CU_DEVICE_CPU ? CU_MEM_LOCATION_TYPE_HOST : CU_MEM_LOCATION_TYPE_DEVICE,
                       .id = dev == CU_DEVICE_CPU ? 0 : dev};
  int uses_dev = a == CU_MEM_ADVISE_SET_PREFERRED_LOCATION || a == CU_MEM_ADVISE_SET_ACCESSED_BY ||
                 a == CU_MEM_ADVISE_UNSET_ACCESSED_BY;
  if (uses_dev && dev != CU_DEVICE_CPU && dev != 0) return CUDA_ERROR_INVALID_DEVICE;
  return advise(d, n, a, loc);
}
EXPORT CUresult cuMemAdvise_v2(CUdeviceptr d, size_t n, CUmem_advise a, CUmemLocation loc) {
  sim_set_last("cuMemAdvise_v2 %llx %zu %d loc=%d:%d", (unsigned long long)d, n, (int)a, (int)loc.type, loc.id);
  CUresult r = sim_injected("cuMemAdvise_v2");
  if (r != CUDA_SUCCESS) return r;
  return advise(d, n, a, loc);
}

/* The int a location answers as in the CUdevice-style attributes: a device ordinal, CU_DEVICE_CPU for any
 * host location, CU_DEVICE_INVALID for none or non-uniform. */
static int loc_as_device(int type, int id) {
  if (type == CU_MEM_LOCATION_TYPE_DEVICE) return id;
  if (type == CU_MEM_LOCATION_TYPE_HOST || type == CU_MEM_LOCATION_TYPE_HOST_NUMA) return CU_DEVICE_CPU;
  return CU_DEVICE_INVALID;
}
static CUresult range_attr_locked(void *data, size_t size, CUmem_range_attribute attr, const struct range *m) {
  static const struct advice none = {.pf_type = CU_MEM_LOCATION_TYPE_INVALID};
  const struct advice *a = m->adv ? m->adv : &none;
  int pt = a->pref_type == ADV_MIXED ? CU_MEM_LOCATION_TYPE_INVALID : a->pref_type;
  int ft = a->pf_type == ADV_MIXED ? CU_MEM_LOCATION_TYPE_INVALID : a->pf_type;
  if (data == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (attr == CU_MEM_RANGE_ATTRIBUTE_ACCESSED_BY) {
    if (size == 0 || size % 4 != 0) return CUDA_ERROR_INVALID_VALUE;
    int *out = data;
    size_t k = 0, cap = size / 4;
    if ((a->by & 1u) && k < cap) out[k++] = 0;
    if ((a->by & 2u) && k < cap) out[k++] = CU_DEVICE_CPU;
    while (k < cap) out[k++] = CU_DEVICE_INVALID;
    return CUDA_SUCCESS;
  }
  if (size != 4) return CUDA_ERROR_INVALID_VALUE;
  int *out = data;
  switch (attr) {
    case CU_MEM_RANGE_ATTRIBUTE_READ_MOSTLY: *out = a->read_mostly == 1; break;
    case CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION: *out = loc_as_device(pt, a->pref_id); break;
    case CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION: *out = loc_as_device(ft, a->pf_id); break;
    case CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE: *out = pt; break;
    case CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID: *out = pt == CU_MEM_LOCATION_TYPE_INVALID ? 0 : a->pref_id; break;
    case CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_TYPE: *out = ft; break;
    case CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_ID: *out = ft == CU_MEM_LOCATION_TYPE_INVALID ? 0 : a->pf_id; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemRangeGetAttribute(void *data, size_t size, CUmem_range_attribute attr, CUdeviceptr p, size_t n) {
  lock();
  struct range *m = managed_locked(p, n);
  CUresult r = m ? range_attr_locked(data, size, attr, m) : CUDA_ERROR_INVALID_VALUE;
  unlock();
  return r;
}
EXPORT CUresult cuMemRangeGetAttributes(void **data, size_t *sizes, CUmem_range_attribute *attrs, size_t count,
                                        CUdeviceptr p, size_t n) {
  if (data == NULL || sizes == NULL || attrs == NULL || count == 0) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *m = managed_locked(p, n);
  CUresult r = m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count && r == CUDA_SUCCESS; i++) r = range_attr_locked(data[i], sizes[i], attrs[i], m);
  unlock();
  return r;
}
EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr d) {
  if (h == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *r = t_find(allocs, d);
  int ok = r && r->kind == K_DEVICE;
  uint64_t base = ok ? r->base : 0;
  unlock();
  if (!ok) return CUDA_ERROR_INVALID_VALUE;
  memset(h, 0, sizeof *h);
  memcpy(h->reserved, &base, sizeof base);
  return CUDA_SUCCESS;
}

/* ---- arrays (sizes only: the simulator keeps arrays as plain blocks) ----------------------------------- */

static uint64_t array_bytes(uint64_t w, uint64_t h, uint64_t d, unsigned f, unsigned ch) {
  uint64_t t = (f == 0x01 || f == 0x08) ? 1 : (f == 0x02 || f == 0x09 || f == 0x10) ? 2 : (f == 0x03 || f == 0x0a || f == 0x20) ? 4 : 0;
  if (t == 0) return 0; /* the simulator supports the scalar formats only */
  return w * (h ? h : 1) * (d ? d : 1) * t * (ch ? ch : 1);
}
static CUresult array_new(CUarray *a, uint64_t n) {
  if (a == NULL || n == 0) return CUDA_ERROR_INVALID_VALUE;
  CUdeviceptr b = 0;
  CUresult r = block_new(n, K_ARRAY, CU_MEM_LOCATION_TYPE_DEVICE, 0, NULL, &b);
  if (r == CUDA_SUCCESS) *a = (CUarray)(uintptr_t)b;
  return r;
}
EXPORT CUresult cuArrayCreate_v2(CUarray *a, const CUDA_ARRAY_DESCRIPTOR *d) {
  if (d == NULL || d->Width == 0 || (d->NumChannels != 1 && d->NumChannels != 2 && d->NumChannels != 4)) return CUDA_ERROR_INVALID_VALUE;
  return array_new(a, array_bytes(d->Width, d->Height, 1, d->Format, d->NumChannels));
}
EXPORT CUresult cuArray3DCreate_v2(CUarray *a, const CUDA_ARRAY3D_DESCRIPTOR *d) {
  if (d == NULL || d->Width == 0 || (d->NumChannels != 1 && d->NumChannels != 2 && d->NumChannels != 4)) return CUDA_ERROR_INVALID_VALUE;
  return array_new(a, array_bytes(d->Width, d->Height, d->Depth, d->Format, d->NumChannels));
}
EXPORT CUresult cuArrayDestroy(CUarray a) {
  if (a == NULL) return CUDA_ERROR_INVALID_HANDLE;
  return block_free((uint64_t)(uintptr_t)a, KM(K_ARRAY)) == CUDA_SUCCESS ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* ---- copies and memsets: done at once, on host memory ------------------------------------------------------ */

static CUresult dev_check(uint64_t p, size_t n) {
  return mem_device_accessible(p, n) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
static CUresult copy(uint64_t dst, int dst_dev, uint64_t src, int src_dev, size_t n) {
  if (n == 0) return CUDA_SUCCESS;
  if ((dst_dev && dev_check(dst, n) != CUDA_SUCCESS) || (src_dev && dev_check(src, n) != CUDA_SUCCESS))
    return CUDA_ERROR_INVALID_VALUE;
  if (dst == 0 || src == 0) return CUDA_ERROR_INVALID_VALUE;
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
  return CUDA_SUCCESS;
}
#define H(p) ((uint64_t)(uintptr_t)(p))
#define ASYNC(call)                          \
  do {                                       \
    CUresult r_ = stream_check(s);           \
    return r_ != CUDA_SUCCESS ? r_ : (call); \
  } while (0)

EXPORT CUresult cuMemcpy(CUdeviceptr d, CUdeviceptr s, size_t n) { return copy(d, 0, s, 0, n); } /* unified */
EXPORT CUresult cuMemcpy_ptds(CUdeviceptr d, CUdeviceptr s, size_t n) { return copy(d, 0, s, 0, n); }
EXPORT CUresult cuMemcpyAsync(CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s) { ASYNC(copy(d, 0, src, 0, n)); }
EXPORT CUresult cuMemcpyAsync_ptsz(CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s) { ASYNC(copy(d, 0, src, 0, n)); }
EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { return copy(d, 1, H(s), 0, n); }
EXPORT CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr d, const void *s, size_t n) { return copy(d, 1, H(s), 0, n); }
EXPORT CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { return copy(H(d), 0, s, 1, n); }
EXPORT CUresult cuMemcpyDtoH_v2_ptds(void *d, CUdeviceptr s, size_t n) { return copy(H(d), 0, s, 1, n); }
EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n) { return copy(d, 1, s, 1, n); }
EXPORT CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr d, CUdeviceptr s, size_t n) { return copy(d, 1, s, 1, n); }
EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *src, size_t n, CUstream s) { ASYNC(copy(d, 1, H(src), 0, n)); }
EXPORT CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr d, const void *src, size_t n, CUstream s) { ASYNC(copy(d, 1, H(src), 0, n)); }
EXPORT CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr src, size_t n, CUstream s) { ASYNC(copy(H(d), 0, src, 1, n)); }
EXPORT CUresult cuMemcpyDtoHAsync_v2_ptsz(void *d, CUdeviceptr src, size_t n, CUstream s) { ASYNC(copy(H(d), 0, src, 1, n)); }
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s) { ASYNC(copy(d, 1, src, 1, n)); }
EXPORT CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s) { ASYNC(copy(d, 1, src, 1, n)); }
static CUresult peer(CUcontext dc, CUcontext sc) {
  return sim_ctx_valid(dc) == CUDA_SUCCESS && sim_ctx_valid(sc) == CUDA_SUCCESS ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}
EXPORT CUresult cuMemcpyPeer(CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n) {
  CUresult r = peer(dc, sc);
  return r != CUDA_SUCCESS ? r : copy(d, 1, s, 1, n);
}
EXPORT CUresult cuMemcpyPeer_ptds(CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n) {
  return cuMemcpyPeer(d, dc, s, sc, n);
}
EXPORT CUresult cuMemcpyPeerAsync(CUdeviceptr d, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n, CUstream s) {
  ASYNC(cuMemcpyPeer(d, dc, src, sc, n));
}
EXPORT CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr d, CUcontext dc, CUdeviceptr src, CUcontext sc, size_t n, CUstream s) {
  ASYNC(cuMemcpyPeer(d, dc, src, sc, n));
}

/* 2D and 3D copies between host and device memory (arrays are not simulated). */
static CUresult side(CUmemorytype t, const void *host, CUdeviceptr dev, uint64_t *addr, int *is_dev) {
  switch (t) {
    case CU_MEMORYTYPE_HOST: *addr = H(host); *is_dev = 0; return CUDA_SUCCESS;
    case CU_MEMORYTYPE_DEVICE: *addr = dev; *is_dev = 1; return CUDA_SUCCESS;
    case CU_MEMORYTYPE_UNIFIED: *addr = dev; *is_dev = 0; return CUDA_SUCCESS;
    case CU_MEMORYTYPE_ARRAY: return sim_not_simulated("copies to or from CUDA arrays are not simulated", CUDA_ERROR_NOT_SUPPORTED);
    default: return CUDA_ERROR_INVALID_VALUE;
  }
}
static CUresult copy3d(const CUDA_MEMCPY3D *c) {
  if (c == NULL) return CUDA_ERROR_INVALID_VALUE;
  uint64_t s = 0, d = 0;
  int sdev = 0, ddev = 0;
  CUresult r = side(c->srcMemoryType, c->srcHost, c->srcDevice, &s, &sdev);
  if (r == CUDA_SUCCESS) r = side(c->dstMemoryType, c->dstHost, c->dstDevice, &d, &ddev);
  if (r != CUDA_SUCCESS) return r;
  size_t w = c->WidthInBytes, h = c->Height ? c->Height : 1, depth = c->Depth ? c->Depth : 1;
  size_t sp = c->srcPitch ? c->srcPitch : w, dp = c->dstPitch ? c->dstPitch : w;
  size_t sh = c->srcHeight ? c->srcHeight : h, dh = c->dstHeight ? c->dstHeight : h;
  if (sp < w + c->srcXInBytes || dp < w + c->dstXInBytes) return CUDA_ERROR_INVALID_VALUE;
  for (size_t z = 0; z < depth; z++)
    for (size_t y = 0; y < h; y++) {
      uint64_t so = s + ((c->srcZ + z) * sh + c->srcY + y) * sp + c->srcXInBytes;
      uint64_t dof = d + ((c->dstZ + z) * dh + c->dstY + y) * dp + c->dstXInBytes;
      r = copy(dof, ddev, so, sdev, w);
      if (r != CUDA_SUCCESS) return r;
    }
  return CUDA_SUCCESS;
}
static CUresult copy2d(const CUDA_MEMCPY2D *c) {
  if (c == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUDA_MEMCPY3D t;
  memset(&t, 0, sizeof t);
  t.srcXInBytes = c->srcXInBytes;
  t.srcY = c->srcY;
  t.srcMemoryType = c->srcMemoryType;
  t.srcHost = c->srcHost;
  t.srcDevice = c->srcDevice;
  t.srcArray = c->srcArray;
  t.srcPitch = c->srcPitch;
  t.dstXInBytes = c->dstXInBytes;
  t.dstY = c->dstY;
  t.dstMemoryType = c->dstMemoryType;
  t.dstHost = c->dstHost;
  t.dstDevice = c->dstDevice;
  t.dstArray = c->dstArray;
  t.dstPitch = c->dstPitch;
  t.WidthInBytes = c->WidthInBytes;
  t.Height = c->Height;
  t.Depth = 1;
  return copy3d(&t);
}
EXPORT CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *c) { return copy2d(c); }
EXPORT CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *c) { return copy2d(c); }
EXPORT CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *c) { return copy2d(c); }
EXPORT CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *c) { return copy2d(c); }
EXPORT CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *c, CUstream s) { ASYNC(copy2d(c)); }
EXPORT CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *c, CUstream s) { ASYNC(copy2d(c)); }
EXPORT CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *c) { return copy3d(c); }
EXPORT CUresult cuMemcpy3D_v2_ptds(const CUDA_MEMCPY3D *c) { return copy3d(c); }
EXPORT CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *c, CUstream s) { ASYNC(copy3d(c)); }
EXPORT CUresult cuMemcpy3DAsync_v2_ptsz(const CUDA_MEMCPY3D *c, CUstream s) { ASYNC(copy3d(c)); }

static CUresult fill(uint64_t d, size_t pitch, const void *v, unsigned esz, size_t w, size_t h) {
  if (w == 0 || h == 0) return CUDA_SUCCESS;
  if (d % esz != 0 || (h > 1 && pitch < w * esz)) return CUDA_ERROR_INVALID_VALUE;
  if (h > 1 ? dev_check(d, pitch * (h - 1) + w * esz) : dev_check(d, w * esz)) return CUDA_ERROR_INVALID_VALUE;
  for (size_t y = 0; y < h; y++) {
    unsigned char *p = (unsigned char *)(uintptr_t)(d + y * pitch);
    if (esz == 1) {
      memset(p, *(const unsigned char *)v, w);
    } else {
      for (size_t i = 0; i < w; i++) memcpy(p + i * esz, v, esz);
    }
  }
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { return fill(d, 0, &v, 1, n, 1); }
EXPORT CUresult cuMemsetD8_v2_ptds(CUdeviceptr d, unsigned char v, size_t n) { return fill(d, 0, &v, 1, n, 1); }
EXPORT CUresult cuMemsetD16_v2(CUdeviceptr d, unsigned short v, size_t n) { return fill(d, 0, &v, 2, n, 1); }
EXPORT CUresult cuMemsetD16_v2_ptds(CUdeviceptr d, unsigned short v, size_t n) { return fill(d, 0, &v, 2, n, 1); }
EXPORT CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int v, size_t n) { return fill(d, 0, &v, 4, n, 1); }
EXPORT CUresult cuMemsetD32_v2_ptds(CUdeviceptr d, unsigned int v, size_t n) { return fill(d, 0, &v, 4, n, 1); }
EXPORT CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream s) { ASYNC(fill(d, 0, &v, 1, n, 1)); }
EXPORT CUresult cuMemsetD8Async_ptsz(CUdeviceptr d, unsigned char v, size_t n, CUstream s) { ASYNC(fill(d, 0, &v, 1, n, 1)); }
EXPORT CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short v, size_t n, CUstream s) { ASYNC(fill(d, 0, &v, 2, n, 1)); }
EXPORT CUresult cuMemsetD16Async_ptsz(CUdeviceptr d, unsigned short v, size_t n, CUstream s) { ASYNC(fill(d, 0, &v, 2, n, 1)); }
EXPORT CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream s) { ASYNC(fill(d, 0, &v, 4, n, 1)); }
EXPORT CUresult cuMemsetD32Async_ptsz(CUdeviceptr d, unsigned int v, size_t n, CUstream s) { ASYNC(fill(d, 0, &v, 4, n, 1)); }
EXPORT CUresult cuMemsetD2D8_v2(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t h) { return fill(d, p, &v, 1, w, h); }
EXPORT CUresult cuMemsetD2D8_v2_ptds(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t h) { return fill(d, p, &v, 1, w, h); }
EXPORT CUresult cuMemsetD2D16_v2(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t h) { return fill(d, p, &v, 2, w, h); }
EXPORT CUresult cuMemsetD2D16_v2_ptds(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t h) { return fill(d, p, &v, 2, w, h); }
EXPORT CUresult cuMemsetD2D32_v2(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t h) { return fill(d, p, &v, 4, w, h); }
EXPORT CUresult cuMemsetD2D32_v2_ptds(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t h) { return fill(d, p, &v, 4, w, h); }
EXPORT CUresult cuMemsetD2D8Async(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t h, CUstream s) { ASYNC(fill(d, p, &v, 1, w, h)); }
EXPORT CUresult cuMemsetD2D8Async_ptsz(CUdeviceptr d, size_t p, unsigned char v, size_t w, size_t h, CUstream s) { ASYNC(fill(d, p, &v, 1, w, h)); }
EXPORT CUresult cuMemsetD2D16Async(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t h, CUstream s) { ASYNC(fill(d, p, &v, 2, w, h)); }
EXPORT CUresult cuMemsetD2D16Async_ptsz(CUdeviceptr d, size_t p, unsigned short v, size_t w, size_t h, CUstream s) { ASYNC(fill(d, p, &v, 2, w, h)); }
EXPORT CUresult cuMemsetD2D32Async(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t h, CUstream s) { ASYNC(fill(d, p, &v, 4, w, h)); }
EXPORT CUresult cuMemsetD2D32Async_ptsz(CUdeviceptr d, size_t p, unsigned int v, size_t w, size_t h, CUstream s) { ASYNC(fill(d, p, &v, 4, w, h)); }

/* ---- VMM ------------------------------------------------------------------------------------------------------ */

EXPORT CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *p, CUmemAllocationGranularity_flags f) {
  (void)f;
  if (g == NULL || p == NULL) return CUDA_ERROR_INVALID_VALUE;
  *g = GRANULE;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t align, CUdeviceptr addr, unsigned long long flags) {
  (void)addr; /* a hint only */
  (void)flags;
  if (ptr == NULL || size == 0 || size % GRANULE) return CUDA_ERROR_INVALID_VALUE;
  if (align < GRANULE) align = GRANULE;
  if (align & (align - 1)) return CUDA_ERROR_INVALID_VALUE;
  char *raw = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  uintptr_t base = ((uintptr_t)raw + align - 1) / align * align;
  if (base > (uintptr_t)raw) munmap(raw, base - (uintptr_t)raw);
  uintptr_t end = (uintptr_t)raw + size + align;
  if (end > base + size) munmap((void *)(base + size), end - (base + size));
  struct ctx *c = ctx_for_op();
  lock();
  struct range *r = node_get_locked();
  if (r == NULL) {
    unlock();
    munmap((void *)base, size);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  r->base = base;
  r->size = size;
  r->kind = K_RESERVE;
  r->ctx = c;
  t_insert(&resvs, r);
  unlock();
  *ptr = base;
  return CUDA_SUCCESS;
}

static void handle_put_locked(struct mhandle *h, struct mhandle **destroy) {
  if (h->refs == 0 && h->nmaps == 0) *destroy = h;
}
static void handle_destroy(struct mhandle *h) { /* no reference, no mapping left: the memory is freed */
  obj_unregister(h);
  if (h->charged && h->pid == my_pid()) sim_vram_uncharge(h->size);
  if (h->fd >= 0) close(h->fd);
  free(h);
}
/* Called with mu held: removes a mapping range (already out of the tree) and returns its handle if the
 * handle is now to be destroyed. */
static struct mhandle *unmap_locked(struct range *m, int keep_reservation) {
  if (keep_reservation)
    mmap((void *)(uintptr_t)m->base, m->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  struct mhandle *h = m->h, *destroy = NULL;
  h->nmaps--;
  handle_put_locked(h, &destroy);
  node_put_locked(m);
  return destroy;
}

EXPORT CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  if (ptr == 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *r = t_find(resvs, ptr);
  if (r == NULL || r->base != ptr || r->size != size) {
    unlock();
    return CUDA_ERROR_INVALID_VALUE;
  }
  t_remove(&resvs, ptr);
  struct mhandle *gone[64];
  int ngone = 0;
  for (struct range *m; (m = t_ceil(allocs, ptr)) != NULL && m->base < ptr + size;) { /* still mapped: unmap */
    t_remove(&allocs, m->base);
    struct mhandle *h = unmap_locked(m, 0);
    if (h && ngone < 64) gone[ngone++] = h;
  }
  node_put_locked(r);
  unlock();
  for (int i = 0; i < ngone; i++) handle_destroy(gone[i]);
  munmap((void *)(uintptr_t)ptr, size);
  return CUDA_SUCCESS;
}

static struct mhandle *handle_get(CUmemGenericAllocationHandle h) {
  struct mhandle *m = obj_get((const void *)(uintptr_t)h, OBJ_MEMHANDLE);
  return m && m->refs > 0 ? m : NULL;
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *prop, unsigned long long flags) {
  if (h == NULL || prop == NULL || flags != 0 || size == 0 || size % GRANULE) return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
  switch (prop->location.type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
      if (prop->location.id != 0) return CUDA_ERROR_INVALID_DEVICE;
      break;
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
      if (!sim_host_numa_vmm() || prop->location.id != 0) return CUDA_ERROR_INVALID_VALUE;
      break;
    case CU_MEM_LOCATION_TYPE_HOST:
      /* "HOST allocations are not IPC capable and requestedHandleTypes must be 0" (cuda.h) */
      if (!sim_host_plain_vmm() || prop->requestedHandleTypes != 0) return CUDA_ERROR_INVALID_VALUE;
      break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  CUresult r = sim_injected("cuMemCreate");
  if (r != CUDA_SUCCESS) return r;
  int dev = prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE;
  if (dev && !sim_vram_charge(size)) return CUDA_ERROR_OUT_OF_MEMORY;
  struct mhandle *hd = calloc(1, sizeof *hd);
  int fd = memfd_create("emuv-sim", MFD_CLOEXEC);
  if (hd == NULL || fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    if (fd >= 0) close(fd);
    free(hd);
    if (dev) sim_vram_uncharge(size);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  hd->fd = fd;
  hd->size = size;
  hd->prop = *prop;
  hd->refs = 1;
  hd->charged = dev;
  hd->pid = my_pid();
  lock();
  hd->id = next_id++;
  unlock();
  obj_register(hd, OBJ_MEMHANDLE, ctx_for_op());
  *h = (CUmemGenericAllocationHandle)(uintptr_t)hd;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h) {
  lock();
  struct mhandle *hd = handle_get(h), *destroy = NULL;
  if (hd == NULL) {
    unlock();
    return CUDA_ERROR_INVALID_VALUE;
  }
  hd->refs--;
  handle_put_locked(hd, &destroy); /* mappings keep the memory until unmapped, as on the driver */
  unlock();
  if (destroy) handle_destroy(destroy);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *h, void *addr) {
  if (h == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *m = t_find(allocs, H(addr));
  int ok = m && m->kind == K_MAP;
  if (ok) {
    m->h->refs++;
    *h = (CUmemGenericAllocationHandle)(uintptr_t)m->h;
  }
  unlock();
  return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *p, CUmemGenericAllocationHandle h) {
  if (p == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct mhandle *hd = handle_get(h);
  if (hd) *p = hd->prop;
  unlock();
  return hd ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuMemExportToShareableHandle(void *out, CUmemGenericAllocationHandle h, CUmemAllocationHandleType t,
                                             unsigned long long flags) {
  if (out == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct mhandle *hd = handle_get(h);
  int fd = hd ? hd->fd : -1;
  int ok = hd && t == CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR && (hd->prop.requestedHandleTypes & t);
  unlock();
  if (!ok) return CUDA_ERROR_INVALID_VALUE;
  int nfd = dup(fd);
  if (nfd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
  *(int *)out = nfd;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *h, void *os, CUmemAllocationHandleType t) {
  if (h == NULL || t != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_INVALID_VALUE;
  int fd = (int)(intptr_t)os;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size <= 0 || (uint64_t)sb.st_size % GRANULE) return CUDA_ERROR_INVALID_VALUE;
  struct mhandle *hd = calloc(1, sizeof *hd);
  if (hd == NULL || (hd->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
    free(hd);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  hd->size = (size_t)sb.st_size;
  hd->prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  hd->prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  hd->prop.requestedHandleTypes = t;
  hd->refs = 1; /* the exporter's process holds the charge */
  lock();
  hd->id = next_id++;
  unlock();
  obj_register(hd, OBJ_MEMHANDLE, ctx_for_op());
  *h = (CUmemGenericAllocationHandle)(uintptr_t)hd;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemMap(CUdeviceptr va, size_t size, size_t off, CUmemGenericAllocationHandle h, unsigned long long flags) {
  if (flags != 0 || size == 0 || size % GRANULE || va % GRANULE) return CUDA_ERROR_INVALID_VALUE;
  struct ctx *c = ctx_for_op();
  lock();
  struct mhandle *hd = handle_get(h);
  struct range *rv = t_find(resvs, va);
  if (hd == NULL || off + size > hd->size || off + size < off || rv == NULL || va + size > rv->base + rv->size ||
      t_overlaps(allocs, va, size)) {
    unlock();
    return CUDA_ERROR_INVALID_VALUE; /* no such handle, outside a reservation, or already mapped */
  }
  struct range *m = node_get_locked();
  if (m == NULL) {
    unlock();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (mmap((void *)(uintptr_t)va, size, PROT_NONE, MAP_SHARED | MAP_FIXED, hd->fd, (off_t)off) == MAP_FAILED) {
    node_put_locked(m);
    unlock();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  m->base = va;
  m->size = size;
  m->kind = K_MAP;
  m->loc = (int)hd->prop.location.type;
  m->h = hd;
  m->off = off;
  m->prot = PROT_NONE;
  m->ctx = c;
  m->id = hd->id;
  hd->nmaps++;
  t_insert(&allocs, m);
  unlock();
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemUnmap(CUdeviceptr va, size_t size) {
  if (size == 0) return CUDA_ERROR_INVALID_VALUE;
  lock();
  /* every mapping in the range must lie wholly inside it */
  struct range *first = t_find(allocs, va);
  if (first != NULL && first->base != va) {
    unlock();
    return CUDA_ERROR_INVALID_VALUE;
  }
  int n = 0;
  for (struct range *m = t_ceil(allocs, va); m && m->base < va + size; m = t_ceil(allocs, m->base + m->size)) {
    if (m->kind != K_MAP || m->base + m->size > va + size) {
      unlock();
      return CUDA_ERROR_INVALID_VALUE;
    }
    n++;
  }
  if (n == 0) {
    unlock();
    return CUDA_ERROR_INVALID_VALUE;
  }
  struct mhandle *gone[64];
  int ngone = 0;
  for (struct range *m; (m = t_ceil(allocs, va)) != NULL && m->base < va + size;) {
    t_remove(&allocs, m->base);
    struct mhandle *h = unmap_locked(m, 1);
    if (h && ngone < 64) gone[ngone++] = h;
  }
  unlock();
  for (int i = 0; i < ngone; i++) handle_destroy(gone[i]);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemSetAccess(CUdeviceptr va, size_t size, const CUmemAccessDesc *desc, size_t count) {
  if (desc == NULL || count == 0) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count; i++)
    if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || desc[i].location.id != 0) return CUDA_ERROR_INVALID_VALUE;
  lock();
  uint64_t covered = 0;
  for (struct range *m = t_ceil(allocs, va); m && m->base + m->size <= va + size; m = t_ceil(allocs, m->base + m->size))
    if (m->kind == K_MAP) covered += m->size;
  if (covered != size || (t_find(allocs, va) && t_find(allocs, va)->base != va)) { /* every byte must be mapped */
    unlock();
    return CUDA_ERROR_INVALID_VALUE;
  }
  int prot = desc[0].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE ? PROT_READ | PROT_WRITE
             : desc[0].flags == CU_MEM_ACCESS_FLAGS_PROT_READ   ? PROT_READ
                                                                 : PROT_NONE;
  mprotect((void *)(uintptr_t)va, size, prot);
  for (struct range *m = t_ceil(allocs, va); m && m->base + m->size <= va + size; m = t_ceil(allocs, m->base + m->size))
    m->prot = prot;
  unlock();
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *loc, CUdeviceptr p) {
  if (flags == NULL || loc == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *m = t_find(allocs, p);
  int ok = m && m->kind == K_MAP;
  if (ok)
    *flags = loc->type != CU_MEM_LOCATION_TYPE_DEVICE || loc->id != 0 ? CU_MEM_ACCESS_FLAGS_PROT_NONE
             : m->prot == (PROT_READ | PROT_WRITE)                   ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE
             : m->prot == PROT_READ                                  ? CU_MEM_ACCESS_FLAGS_PROT_READ
                                                                     : CU_MEM_ACCESS_FLAGS_PROT_NONE;
  unlock();
  return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- pointer queries -------------------------------------------------------------------------------------------- */

EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr p) {
  lock();
  struct range *r = t_find(allocs, p); /* any interior pointer; a VMM mapping's range is the mapping */
  if (r && base) *base = r->base;
  if (r && size) *size = r->size;
  unlock();
  return r ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

static CUresult attr_locked(void *data, int a, uint64_t p, struct range *r) {
  switch (a) {
    case CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data = r->kind == K_MAP ? NULL : (CUcontext)r->ctx; break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
      *(unsigned *)data = r->kind == K_HOST || r->kind == K_HOSTREG ? CU_MEMORYTYPE_HOST
                          : r->kind == K_MAP && r->h->prop.location.type != CU_MEM_LOCATION_TYPE_DEVICE
                              ? CU_MEMORYTYPE_HOST
                              : CU_MEMORYTYPE_DEVICE;
      break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *(CUdeviceptr *)data = p; break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
      if (r->kind != K_HOST && r->kind != K_HOSTREG && r->kind != K_MANAGED) return CUDA_ERROR_INVALID_VALUE;
      *(void **)data = (void *)(uintptr_t)p;
      break;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: *(int *)data = 1; break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID: *(unsigned long long *)data = r->id; break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: *(int *)data = r->kind == K_MANAGED; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: *(int *)data = r->kind == K_DEVICE; break;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *(CUdeviceptr *)data = r->base; break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *(size_t *)data = r->size; break;
    case CU_POINTER_ATTRIBUTE_MAPPED: *(int *)data = 1; break;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
      *(unsigned long long *)data = r->kind == K_MAP ? r->h->prop.requestedHandleTypes
                                    : r->kind == K_POOL && r->pool ? r->pool->htypes
                                                                   : 0;
      break;
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE: *(int *)data = 0; break;
    case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
      *(int *)data = r->kind != K_MAP                    ? CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE
                     : r->prot == (PROT_READ | PROT_WRITE) ? CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE
                     : r->prot == PROT_READ                ? CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READ
                                                           : CU_POINTER_ATTRIBUTE_ACCESS_FLAG_NONE;
      break;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: *(CUmemoryPool *)data = r->kind == K_POOL ? (CUmemoryPool)r->pool : NULL; break;
    case CU_POINTER_ATTRIBUTE_MAPPING_SIZE: *(size_t *)data = r->size; break;
    case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR: *(void **)data = (void *)(uintptr_t)r->base; break;
    case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID: *(unsigned long long *)data = r->id; break;
    case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE: *(int *)data = 0; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
EXPORT CUresult cuPointerGetAttribute(void *data, CUpointer_attribute a, CUdeviceptr p) {
  if (data == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *r = t_find(allocs, p);
  CUresult res = r ? attr_locked(data, (int)a, p, r) : CUDA_ERROR_INVALID_VALUE; /* not CUDA memory */
  unlock();
  return res;
}
/* Unlike the singular call, an unknown pointer is not an error: every attribute gets its empty value. */
EXPORT CUresult cuPointerGetAttributes(unsigned int n, CUpointer_attribute *attrs, void **data, CUdeviceptr p) {
  if (n == 0 || attrs == NULL || data == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  struct range *r = t_find(allocs, p);
  CUresult res = CUDA_SUCCESS;
  for (unsigned i = 0; i < n && res == CUDA_SUCCESS; i++) {
    if (data[i] == NULL) continue;
    if (r == NULL || attr_locked(data[i], (int)attrs[i], p, r) != CUDA_SUCCESS) {
      switch ((int)attrs[i]) {
        case CU_POINTER_ATTRIBUTE_CONTEXT:
        case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
        case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR: *(void **)data[i] = NULL; break;
        case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
        case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
        case CU_POINTER_ATTRIBUTE_IS_MANAGED:
        case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
        case CU_POINTER_ATTRIBUTE_MAPPED:
        case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
        case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
        case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE: *(int *)data[i] = 0; break;
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data[i] = -2; break;
        case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
        case CU_POINTER_ATTRIBUTE_BUFFER_ID:
        case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
        case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
        case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
        case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID: *(uint64_t *)data[i] = 0; break;
        default: res = CUDA_ERROR_INVALID_VALUE;
      }
    }
  }
  unlock();
  return res;
}
EXPORT CUresult cuPointerSetAttribute(const void *value, CUpointer_attribute a, CUdeviceptr p) {
  if (value == NULL || a != CU_POINTER_ATTRIBUTE_SYNC_MEMOPS) return CUDA_ERROR_INVALID_VALUE;
  return mem_device_accessible(p, 1) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- pools and stream-ordered allocation ---------------------------------------------------------------------- */

static struct pool default_pool;
static struct pool *current_pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static void pool_init(void) {
  default_pool.loc.type = CU_MEM_LOCATION_TYPE_DEVICE;
  default_pool.loc.id = 0;
  default_pool.reuse[0] = default_pool.reuse[1] = default_pool.reuse[2] = 1;
  obj_register(&default_pool, OBJ_POOL, NULL);
  current_pool = &default_pool;
}
static struct pool *pool_get(CUmemoryPool p) {
  pthread_once(&pool_once, pool_init);
  return obj_get(p, OBJ_POOL);
}

EXPORT CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *pp) {
  if (pool == NULL || pp == NULL || pp->allocType != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
  switch (pp->location.type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
      if (pp->location.id != 0) return CUDA_ERROR_INVALID_DEVICE;
      break;
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
      if (!sim_host_numa_vmm()) return CUDA_ERROR_NOT_SUPPORTED;
      break;
    case CU_MEM_LOCATION_TYPE_HOST:
      if (!sim_host_plain_vmm()) return CUDA_ERROR_NOT_SUPPORTED;
      break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  struct pool *p = calloc(1, sizeof *p);
  if (p == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  p->loc = pp->location;
  p->htypes = pp->handleTypes;
  p->reuse[0] = p->reuse[1] = p->reuse[2] = 1;
  obj_register(p, OBJ_POOL, NULL);
  *pool = (CUmemoryPool)p;
  return CUDA_SUCCESS;
}
static void forget_pool(struct range *t, struct pool *p) {
  if (t == NULL) return;
  if (t->pool == p) t->pool = NULL;
  forget_pool(t->l, p);
  forget_pool(t->r, p);
}
EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool) {
  struct pool *p = pool_get(pool);
  if (p == NULL || p == &default_pool) return CUDA_ERROR_INVALID_VALUE;
  obj_unregister(p);
  lock();
  forget_pool(allocs, p);
  if (current_pool == p) current_pool = &default_pool;
  unlock();
  free(p);
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *d, size_t n) {
  return pool_get(pool) && d && n ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool pool, CUmemLocation *loc) {
  struct pool *p = pool_get(pool);
  if (p == NULL || flags == NULL || loc == NULL) return CUDA_ERROR_INVALID_VALUE;
  *flags = loc->type == CU_MEM_LOCATION_TYPE_DEVICE && loc->id == 0 ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE
                                                                    : CU_MEM_ACCESS_FLAGS_PROT_NONE;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute a, void *v) {
  struct pool *p = pool_get(pool);
  if (p == NULL || v == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  CUresult r = CUDA_SUCCESS;
  switch (a) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES: p->reuse[a - 1] = *(int *)v; break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: p->threshold = *(cuuint64_t *)v; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
      if (*(cuuint64_t *)v != 0) r = CUDA_ERROR_INVALID_VALUE;
      else p->reserved_high = p->used;
      break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
      if (*(cuuint64_t *)v != 0) r = CUDA_ERROR_INVALID_VALUE;
      else p->used_high = p->used;
      break;
    default: r = CUDA_ERROR_INVALID_VALUE;
  }
  unlock();
  return r;
}
EXPORT CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute a, void *v) {
  struct pool *p = pool_get(pool);
  if (p == NULL || v == NULL) return CUDA_ERROR_INVALID_VALUE;
  lock();
  CUresult r = CUDA_SUCCESS;
  switch (a) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES: *(int *)v = p->reuse[a - 1]; break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: *(cuuint64_t *)v = p->threshold; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: /* freed memory goes back at once: reserved == used */
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: *(cuuint64_t *)v = p->used; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: *(cuuint64_t *)v = p->reserved_high; break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH: *(cuuint64_t *)v = p->used_high; break;
    default: r = CUDA_ERROR_INVALID_VALUE;
  }
  unlock();
  return r;
}
EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep) {
  (void)keep;
  return pool_get(pool) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool, CUdevice d) {
  if (pool == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  pthread_once(&pool_once, pool_init);
  *pool = (CUmemoryPool)&default_pool;
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice d) {
  if (pool == NULL) return CUDA_ERROR_INVALID_VALUE;
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  pthread_once(&pool_once, pool_init);
  lock();
  *pool = (CUmemoryPool)current_pool;
  unlock();
  return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceSetMemPool(CUdevice d, CUmemoryPool pool) {
  if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
  struct pool *p = pool_get(pool);
  if (p == NULL || p->loc.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
  lock();
  current_pool = p;
  unlock();
  return CUDA_SUCCESS;
}
static CUresult from_pool(CUdeviceptr *d, size_t n, struct pool *p, CUstream s) {
  if (d == NULL || n == 0 || p == NULL) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = stream_check(s);
  if (r != CUDA_SUCCESS) return r;
  return block_new(n, K_POOL, (int)p->loc.type, 0, p, d);
}
static struct pool *device_pool(void) {
  pthread_once(&pool_once, pool_init);
  lock();
  struct pool *p = current_pool;
  unlock();
  return p;
}
EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *d, size_t n, CUmemoryPool pool, CUstream s) {
  return from_pool(d, n, pool_get(pool), s);
}
EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *d, size_t n, CUmemoryPool pool, CUstream s) {
  return from_pool(d, n, pool_get(pool), s);
}
EXPORT CUresult cuMemAllocAsync(CUdeviceptr *d, size_t n, CUstream s) { return from_pool(d, n, device_pool(), s); }
EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *d, size_t n, CUstream s) { return from_pool(d, n, device_pool(), s); }
EXPORT CUresult cuMemFreeAsync(CUdeviceptr d, CUstream s) {
  CUresult r = stream_check(s);
  if (r != CUDA_SUCCESS) return r;
  return block_free(d, KM(K_DEVICE) | KM(K_POOL) | KM(K_MANAGED));
}
EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr d, CUstream s) { return cuMemFreeAsync(d, s); }

/* ---- context teardown -------------------------------------------------------------------------------------------- */

void mem_teardown(struct ctx *c) {
  struct range *list = NULL, *rv = NULL, *tofree = NULL;
  struct mhandle *gone[256];
  int ngone = 0;
  lock();
  t_collect(allocs, c, &list);
  t_collect(resvs, c, &rv);
  for (struct range *r = rv; r; r = r->next) t_remove(&resvs, r->base);
  for (struct range *r = rv; r; r = r->next) /* every mapping inside a reservation that goes, whoever made it */
    for (uint64_t q = r->base; q < r->base + r->size;) {
      struct range *m = t_ceil(allocs, q);
      if (m == NULL || m->base >= r->base + r->size) break;
      q = m->base + m->size;
      if (m->ctx == c) continue; /* in the list already: handled below */
      t_remove(&allocs, m->base);
      struct mhandle *h = unmap_locked(m, 0);
      if (h && ngone < 256) gone[ngone++] = h;
    }
  for (struct range *r = list, *next; r; r = next) {
    next = r->next;
    t_remove(&allocs, r->base);
    if (r->kind == K_MAP) {
      struct mhandle *h = unmap_locked(r, 1);
      if (h && ngone < 256) gone[ngone++] = h;
    } else {
      if (r->pool) r->pool->used -= r->size;
      r->next = tofree;
      tofree = r;
    }
  }
  unlock();
  for (struct range *r = tofree, *next; r; r = next) {
    next = r->next;
    range_free(r);
  }
  for (struct range *r = rv, *next; r; r = next) {
    next = r->next;
    munmap((void *)(uintptr_t)r->base, r->size);
    node_put(r);
  }
  for (int i = 0; i < ngone; i++) handle_destroy(gone[i]);
}

/* A VMM handle whose context is gone: its memory goes when its last mapping does. */
void mem_obj_destroy(struct obj *o) {
  if (o->type != OBJ_MEMHANDLE) return;
  struct mhandle *h = (struct mhandle *)o, *destroy = NULL;
  lock();
  h->refs = 0;
  handle_put_locked(h, &destroy);
  unlock();
  if (destroy) handle_destroy(destroy);
}
