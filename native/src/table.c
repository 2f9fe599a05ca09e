/* Live-allocation table: 64 stripes, each an open-addressing hash table with linear probing and
 * backward-shift deletion under its own mutex. O(1) expected per operation, no list walks, no syscalls
 * (memory for growth comes from malloc). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define STRIPES 64
#define INIT_CAP 16

struct stripe {
  pthread_mutex_t mu;
  size_t cap, count;
  struct emuv_alloc *e;
  char pad[64 - sizeof(pthread_mutex_t) % 64];
};

struct emuv_table {
  struct stripe s[STRIPES];
};

static inline uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

struct emuv_table *emuv_table_new(void) {
  struct emuv_table *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&t->s[i].mu, NULL);
  return t;
}

static struct stripe *stripe_of(struct emuv_table *t, uint64_t h) { return &t->s[h >> 58]; }

static int grow(struct stripe *s) {
  size_t ncap = s->cap ? s->cap * 2 : INIT_CAP;
  struct emuv_alloc *ne = calloc(ncap, sizeof *ne);
  if (ne == NULL) return -1;
  for (size_t i = 0; i < s->cap; i++) {
    if (s->e[i].key == 0) continue;
    size_t j = mix(s->e[i].key) & (ncap - 1);
    while (ne[j].key != 0) j = (j + 1) & (ncap - 1);
    ne[j] = s->e[i];
  }
  free(s->e);
  s->e = ne;
  s->cap = ncap;
  return 0;
}

int emuv_table_insert(struct emuv_table *t, const struct emuv_alloc *a) {
  uint64_t h = mix(a->key);
  struct stripe *s = stripe_of(t, h);
  pthread_mutex_lock(&s->mu);
  if ((s->count + 1) * 2 > s->cap && grow(s) != 0) {
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
  size_t m = s->cap - 1, j = h & m;
  while (s->e[j].key != 0 && s->e[j].key != a->key) j = (j + 1) & m;
  if (s->e[j].key == 0) s->count++;
  s->e[j] = *a;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static size_t find(struct stripe *s, uint64_t key, uint64_t h) {
  if (s->cap == 0) return (size_t)-1;
  size_t m = s->cap - 1, j = h & m;
  while (s->e[j].key != 0) {
    if (s->e[j].key == key) return j;
    j = (j + 1) & m;
  }
  return (size_t)-1;
}

int emuv_table_get(struct emuv_table *t, uint64_t key, struct emuv_alloc *out) {
  uint64_t h = mix(key);
  struct stripe *s = stripe_of(t, h);
  pthread_mutex_lock(&s->mu);
  size_t j = find(s, key, h);
  int found = j != (size_t)-1;
  if (found && out) *out = s->e[j];
  pthread_mutex_unlock(&s->mu);
  return found;
}

int emuv_table_remove(struct emuv_table *t, uint64_t key, struct emuv_alloc *out) {
  uint64_t h = mix(key);
  struct stripe *s = stripe_of(t, h);
  pthread_mutex_lock(&s->mu);
  size_t j = find(s, key, h);
  if (j == (size_t)-1) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  if (out) *out = s->e[j];
  size_t m = s->cap - 1, i = j;
  /* backward-shift deletion keeps probe chains intact without tombstones */
  for (;;) {
    s->e[i].key = 0;
    size_t k = i;
    for (;;) {
      k = (k + 1) & m;
      if (s->e[k].key == 0) goto done;
      size_t home = mix(s->e[k].key) & m;
      if ((k > i && (home <= i || home > k)) || (k < i && (home <= i && home > k))) break;
    }
    s->e[i] = s->e[k];
    i = k;
  }
done:
  s->count--;
  pthread_mutex_unlock(&s->mu);
  return 1;
}

size_t emuv_table_count(struct emuv_table *t) {
  size_t n = 0;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_lock(&t->s[i].mu);
    n += t->s[i].count;
    pthread_mutex_unlock(&t->s[i].mu);
  }
  return n;
}

void emuv_table_lock_all(struct emuv_table *t) {
  for (int i = 0; i < STRIPES; i++) pthread_mutex_lock(&t->s[i].mu);
}

void emuv_table_unlock_all(struct emuv_table *t) {
  for (int i = STRIPES - 1; i >= 0; i--) pthread_mutex_unlock(&t->s[i].mu);
}

/* In a forked child: the parent's allocations are not the child's (its CUDA context is unusable), so
 * the table starts empty; mutexes are re-created because other parent threads may have held them. */
void emuv_table_reset_after_fork(struct emuv_table *t) {
  for (int i = 0; i < STRIPES; i++) {
    struct stripe *s = &t->s[i];
    free(s->e);
    s->e = NULL;
    s->cap = s->count = 0;
    pthread_mutex_init(&s->mu, NULL);
  }
}

void emuv_table_drain(struct emuv_table *t, void (*fn)(const struct emuv_alloc *, void *), void *arg) {
  for (int i = 0; i < STRIPES; i++) {
    struct stripe *s = &t->s[i];
    pthread_mutex_lock(&s->mu);
    struct emuv_alloc *e = s->e;
    size_t cap = s->cap;
    s->e = NULL;
    s->cap = s->count = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t j = 0; j < cap; j++)
      if (e[j].key != 0) fn(&e[j], arg);
    free(e);
  }
}
