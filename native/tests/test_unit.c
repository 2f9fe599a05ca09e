/* Core units, linked statically (no driver): size parsing, configuration fallbacks (one "emuv:" line
 * each), stats layout offsets, allocation table, budget arithmetic, reaping. */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include "t.h"
#include "core.h"

static const char *fake_env[32][2];
static const char *fake_get(const char *n) {
  for (int i = 0; fake_env[i][0]; i++)
    if (strcmp(fake_env[i][0], n) == 0) return fake_env[i][1];
  return NULL;
}
static void set_env(const char *kv[][2]) {
  memset(fake_env, 0, sizeof fake_env);
  for (int i = 0; kv[i][0]; i++) fake_env[i][0] = kv[i][0], fake_env[i][1] = kv[i][1];
}

/* Loads a config with stderr captured; returns the number of lines and the first one. */
static int load_capture(struct emuv_config *c, char *first, size_t cap) {
  fflush(stderr);
  int saved = dup(2);
  FILE *tmp = tmpfile();
  dup2(fileno(tmp), 2);
  emuv_config_load(c, fake_get);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  int lines = 0;
  char buf[600];
  first[0] = '\0';
  while (fgets(buf, sizeof buf, tmp)) {
    if (lines == 0) snprintf(first, cap, "%s", buf);
    lines++;
  }
  fclose(tmp);
  return lines;
}

#define OFF(type, field, want) CHECK_EQ_U64(offsetof(type, field), want)

int main(void) {
  TEST("parse_size accepts exactly the contract grammar") {
    struct { const char *s; int ok; uint64_t v; } cases[] = {
      {"0", 1, 0}, {"1", 1, 1}, {"4096", 1, 4096}, {"1Ki", 1, 1024}, {"7680Mi", 1, 7680ull << 20},
      {"28Gi", 1, 28ull << 30}, {"2Ti", 1, 2ull << 40}, {"9223372036854775807", 1, 9223372036854775807ull},
      {"8388607Ti", 1, 8388607ull << 40},
      {"", 0, 0}, {"7.5Gi", 0, 0}, {"1G", 0, 0}, {"1gi", 0, 0}, {"01", 0, 0}, {"-1", 0, 0}, {"+1", 0, 0},
      {" 1", 0, 0}, {"1 ", 0, 0}, {"1KiB", 0, 0}, {"Ki", 0, 0}, {"9223372036854775808", 0, 0},
      {"8388608Ti", 0, 0}, {"99999999999999999999999", 0, 0}, {"1Pi", 0, 0}, {"0x10", 0, 0}};
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
      uint64_t v = 12345;
      int r = emuv_parse_size(cases[i].s, &v);
      if ((r == 0) != cases[i].ok || (cases[i].ok && v != cases[i].v)) {
        fprintf(stderr, "  parse_size(\"%s\") = %d, %llu\n", cases[i].s, r, (unsigned long long)v);
        t_fail_now++;
      }
    }
  }
  struct emuv_config c;
  char line[600];
  TEST("no EMUV_* at all: silent pass-through") {
    const char *e[][2] = {{NULL, NULL}};
    set_env(e);
    CHECK_EQ_U64(load_capture(&c, line, sizeof line), 0);
    CHECK(c.passthrough);
  }
  TEST("valid contract: share, limit, spill, defaults") {
    const char *e[][2] = {{"EMUV_CONTRACT_VERSION", "1"}, {"EMUV_VRAM_SHARE", "7680Mi"}, {"EMUV_LIMIT_BYTES", "28Gi"},
                          {"EMUV_VRAM_MODE", "fixed"}, {"EMUV_GPU", "GPU-5a3c1e0e-7f6b-4c1a-9d2e-0123456789ab"},
                          {"EMUV_STATS_FILE", "/run/emuv/stats.bin"}, {NULL, NULL}};
    set_env(e);
    CHECK_EQ_U64(load_capture(&c, line, sizeof line), 0);
    CHECK(!c.passthrough && c.spill && c.mode == EMUV_MODE_FIXED);
    CHECK_EQ_U64(c.vram_share, 7680 * MiB);
    CHECK_EQ_U64(c.limit, 28 * GiB);
    CHECK_EQ_U64(c.headroom, 7680 * MiB / 100 * 15);
    CHECK_EQ_U64(c.large_threshold, 64 * MiB);
    CHECK(strcmp(c.stats_path, "/run/emuv/stats.bin") == 0);
  }
  struct { const char *name; const char *kv[6][2]; int passthrough; int spill; const char *msg; } fb[] = {
    {"unknown contract major: pass-through", {{"EMUV_CONTRACT_VERSION", "2"}, {"EMUV_VRAM_SHARE", "1Gi"}}, 1, 0, "EMUV_CONTRACT_VERSION"},
    {"invalid share: pass-through", {{"EMUV_VRAM_SHARE", "7.5Gi"}, {"EMUV_LIMIT_BYTES", "28Gi"}}, 1, 0, "EMUV_VRAM_SHARE"},
    {"missing share: pass-through", {{"EMUV_LIMIT_BYTES", "28Gi"}}, 1, 0, "EMUV_VRAM_SHARE"},
    {"missing limit: no spill, the share caps VRAM", {{"EMUV_VRAM_SHARE", "1Gi"}}, 0, 0, "EMUV_LIMIT_BYTES"},
    {"invalid limit: no spill", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "lots"}}, 0, 0, "EMUV_LIMIT_BYTES"},
    {"limit below share: VRAM capped at the limit", {{"EMUV_VRAM_SHARE", "2Gi"}, {"EMUV_LIMIT_BYTES", "1Gi"}}, 0, 0, "EMUV_LIMIT_BYTES"},
    {"invalid mode: fill", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {"EMUV_VRAM_MODE", "greedy"}}, 0, 1, "EMUV_VRAM_MODE"},
    {"invalid GPU: ignored", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {"EMUV_GPU", "gpu0"}}, 0, 1, "EMUV_GPU"},
    {"relative stats path: per process", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {"EMUV_STATS_FILE", "stats.bin"}}, 0, 1, "EMUV_STATS_FILE"},
    {"invalid log level: warn", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {"EMUV_LOG_LEVEL", "loud"}}, 0, 1, "EMUV_LOG_LEVEL"},
    {"invalid headroom: default", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {"EMUV_HEADROOM", "3Gi"}}, 0, 1, "EMUV_HEADROOM"},
    {"invalid retry mode: auto", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {"EMUV_OOM_RETRY", "yes"}}, 0, 1, "EMUV_OOM_RETRY"},
    {"invalid spill backend: auto", {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {"EMUV_SPILL_BACKEND", "Pinned"}}, 0, 1, "EMUV_SPILL_BACKEND"},
  };
  for (unsigned i = 0; i < sizeof fb / sizeof *fb; i++) {
    char name[160];
    snprintf(name, sizeof name, "config fallback, one emuv: line: %s", fb[i].name);
    TEST(name) {
      const char *e[8][2] = {{NULL, NULL}};
      for (int k = 0; k < 6 && fb[i].kv[k][0]; k++) e[k][0] = fb[i].kv[k][0], e[k][1] = fb[i].kv[k][1], e[k + 1][0] = NULL;
      set_env(e);
      CHECK_EQ_U64(load_capture(&c, line, sizeof line), 1);
      CHECK(strncmp(line, "emuv: ", 6) == 0 && strstr(line, fb[i].msg) != NULL);
      CHECK_EQ_U64(c.passthrough, fb[i].passthrough);
      if (!c.passthrough) {
        CHECK_EQ_U64(c.spill, fb[i].spill);
        CHECK(c.limit >= c.vram_share);
      }
    }
  }
  TEST("spill backend: auto when unset, exactly auto|pinned|managed, anything else auto with one line naming them") {
    const char *e[4][2] = {{"EMUV_VRAM_SHARE", "1Gi"}, {"EMUV_LIMIT_BYTES", "2Gi"}, {NULL, NULL}, {NULL, NULL}};
    set_env(e);
    CHECK_EQ_U64(load_capture(&c, line, sizeof line), 0);
    CHECK_EQ_U64(c.spill_backend, EMUV_SPILL_AUTO);
    /* the contract's list (EMUV_SPILL_BACKENDS, which the TypeScript side checks against its own), in order:
     * the n-th word is EMUV_SPILL_* value n */
    char words[] = EMUV_SPILL_BACKENDS, *save = NULL;
    int n = 0;
    for (char *w = strtok_r(words, "|", &save); w; w = strtok_r(NULL, "|", &save), n++) {
      e[2][0] = "EMUV_SPILL_BACKEND", e[2][1] = w;
      set_env(e);
      CHECK_EQ_U64(load_capture(&c, line, sizeof line), 0);
      CHECK_EQ_U64(c.spill_backend, n);
    }
    CHECK_EQ_U64(n, 3);
    CHECK(EMUV_SPILL_AUTO == 0 && EMUV_SPILL_PINNED == 1 && EMUV_SPILL_MANAGED == 2);
    const char *bad[] = {"", "Managed", "PINNED", "pinned ", "vmm", "managed\n", "auto,pinned"};
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
      e[2][0] = "EMUV_SPILL_BACKEND", e[2][1] = bad[i];
      set_env(e);
      CHECK_EQ_U64(load_capture(&c, line, sizeof line), 1);
      CHECK(strncmp(line, "emuv: EMUV_SPILL_BACKEND=", 25) == 0 && strstr(line, "auto|pinned|managed; using auto") != NULL);
      CHECK_EQ_U64(c.spill_backend, EMUV_SPILL_AUTO);
      CHECK(!c.passthrough && c.spill);
    }
  }
  emuv_log_level = EMUV_LOG_WARN;
  TEST("stats file v1 layout is pinned") {
    CHECK_EQ_U64(sizeof(struct emuv_stats_hdr), 4096);
    CHECK_EQ_U64(sizeof(struct emuv_stats_slot), 256);
    CHECK_EQ_U64(EMUV_STATS_FILE_SIZE, 65536);
    OFF(struct emuv_stats_hdr, magic, 0); OFF(struct emuv_stats_hdr, ver_major, 4); OFF(struct emuv_stats_hdr, ver_minor, 6);
    OFF(struct emuv_stats_hdr, hdr_size, 8); OFF(struct emuv_stats_hdr, slot_size, 12); OFF(struct emuv_stats_hdr, max_slots, 16);
    OFF(struct emuv_stats_hdr, max_devs, 20); OFF(struct emuv_stats_hdr, init_state, 24); OFF(struct emuv_stats_hdr, ndevs, 28);
    OFF(struct emuv_stats_hdr, generation, 32); OFF(struct emuv_stats_hdr, created_ns, 40); OFF(struct emuv_stats_hdr, vram_mode, 48);
    OFF(struct emuv_stats_hdr, contract_version, 52); OFF(struct emuv_stats_hdr, gpu, 56); OFF(struct emuv_stats_hdr, cfg, 128);
    OFF(struct emuv_stats_hdr, tot, 512);
    OFF(struct emuv_devcfg, vram_share, 0); OFF(struct emuv_devcfg, limit_bytes, 8); OFF(struct emuv_devcfg, host_share, 16);
    OFF(struct emuv_devcfg, headroom, 24); OFF(struct emuv_devcfg, large_threshold, 32);
    OFF(struct emuv_devtot, vram_used, 0); OFF(struct emuv_devtot, host_used, 8); OFF(struct emuv_devtot, total_used, 16);
    OFF(struct emuv_devtot, vram_peak, 24); OFF(struct emuv_devtot, host_peak, 32); OFF(struct emuv_devtot, spill_events, 40);
    OFF(struct emuv_devtot, oom_events, 48); OFF(struct emuv_devtot, denied_retries, 56); OFF(struct emuv_devtot, overhead, 64);
    OFF(struct emuv_stats_slot, state, 0); OFF(struct emuv_stats_slot, pid, 4); OFF(struct emuv_stats_slot, host_pid, 8);
    OFF(struct emuv_stats_slot, seq, 16); OFF(struct emuv_stats_slot, start_time, 24); OFF(struct emuv_stats_slot, last_update_ns, 32);
    OFF(struct emuv_stats_slot, dev, 40);
    OFF(struct emuv_stats_slot, flags, 12); /* minor 1 */
    OFF(struct emuv_stats_slot, held_total, 232); OFF(struct emuv_stats_slot, held_vram, 240);
    OFF(struct emuv_stats_slot, held_host, 248);
    CHECK_EQ_U64(EMUV_STATS_VER_MINOR, 1);
    CHECK_EQ_U64(EMUV_SLOT_F_HELD, 1);
    CHECK_EQ_U64(sizeof(struct emuv_slotdev), 48);
    OFF(struct emuv_slotdev, vram, 0); OFF(struct emuv_slotdev, host, 8); OFF(struct emuv_slotdev, managed, 16);
    OFF(struct emuv_slotdev, pinned_host, 24); OFF(struct emuv_slotdev, allocs, 32); OFF(struct emuv_slotdev, frees, 40);
  }
  TEST("allocation table matches a reference under 200,000 random operations") {
    struct emuv_table *t = emuv_table_new();
    enum { N = 5000 };
    static uint64_t ref[N];
    unsigned seed = 7;
    size_t live = 0;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
      seed = seed * 1103515245u + 12345u;
      int k = (int)((seed >> 8) % N);
      uint64_t key = 0x7f0000000000ull + (uint64_t)k * 4096; /* page-aligned keys, as device pointers are */
      struct emuv_alloc a;
      if (ref[k]) {
        if (!emuv_table_remove(t, key, &a) || a.size != ref[k]) bad++;
        if (emuv_table_get(t, key, NULL)) bad++;
        ref[k] = 0;
        live--;
      } else {
        struct emuv_alloc n = {.key = key, .size = seed | 1, .kind = EMUV_KIND_VRAM};
        if (emuv_table_insert(t, &n) != 0) bad++;
        ref[k] = n.size;
        live++;
      }
    }
    for (int k = 0; k < N; k++) {
      struct emuv_alloc a;
      int f = emuv_table_get(t, 0x7f0000000000ull + (uint64_t)k * 4096, &a);
      if (f != (ref[k] != 0) || (f && a.size != ref[k])) bad++;
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(emuv_table_count(t), live);
  }
  TEST("budget: reservations, split sizes and saturating release") {
    static struct emuv_stats_hdr h;
    struct emuv_config cfg = {.vram_share = 100 * MiB, .limit = 300 * MiB, .spill = 1, .headroom = 20 * MiB,
                              .large_threshold = 10 * MiB};
    struct emuv_budget b = {.cfg = &cfg, .tot = &h.tot[0], .slot = NULL};
    CHECK(emuv_reserve_total(&b, 250 * MiB));
    CHECK(!emuv_reserve_total(&b, 51 * MiB));
    CHECK(emuv_reserve_total(&b, 50 * MiB));
    CHECK_EQ_U64(h.tot[0].total_used, 300 * MiB);
    CHECK_EQ_U64(emuv_reserve_vram(&b, 5 * MiB, 1), 5 * MiB);        /* small */
    CHECK_EQ_U64(emuv_reserve_vram(&b, 100 * MiB, 1), 74 * MiB);     /* large: 80 - 5 = 75 -> 74 (2 MiB) */
    CHECK_EQ_U64(emuv_reserve_vram(&b, 20 * MiB, 0), 0);             /* large, no split: 79 + 20 > 80 */
    CHECK_EQ_U64(emuv_reserve_vram(&b, 9 * MiB, 0), 9 * MiB);        /* small may use the headroom */
    CHECK_EQ_U64(emuv_reserve_vram(&b, 12 * MiB, EMUV_RESERVE_FULL), 12 * MiB); /* arrays: the full share */
    CHECK_EQ_U64(emuv_reserve_vram(&b, 1 * MiB, EMUV_RESERVE_FULL), 0);
    emuv_unreserve_vram(&b, 12 * MiB);
    CHECK_EQ_U64(h.tot[0].vram_used, 88 * MiB);
    emuv_commit(&b, 0, 26 * MiB);
    emuv_release(&b, 100 * MiB, 100 * MiB);                           /* more than booked: clamps at 0 */
    CHECK_EQ_U64(h.tot[0].vram_used, 0);
    CHECK_EQ_U64(h.tot[0].host_used, 0);
    CHECK_EQ_U64(h.tot[0].total_used, 100 * MiB);
    uint64_t f, t, u;
    h.tot[0].overhead = 500 * MiB;
    emuv_report(&b, &f, &t, &u);
    CHECK_EQ_U64(f, 0);
    CHECK_EQ_U64(t, 300 * MiB);
  }
  TEST("array size estimates") {
    CHECK_EQ_U64(emuv_array_bytes(256, 256, 0, 0x20, 4), 1 * MiB);
    CHECK_EQ_U64(emuv_array_bytes(64, 64, 64, 0x10, 1), 512 * 1024);
    CHECK_EQ_U64(emuv_array_bytes(100, 0, 0, 0x01, 2), 200);
    CHECK_EQ_U64(emuv_array_bytes(10, 10, 1, 0xc5, 0), 800); /* UNORM_INT16X4: 8 bytes */
    CHECK_EQ_U64(emuv_array_bytes(10, 10, 1, 0xb0, 1), 400); /* NV12: estimated at 4 bytes */
  }
  TEST("reaping: a dead pid's slot is freed and subtracted; a live one is kept") {
    static struct emuv_stats_hdr *h;
    h = calloc(1, EMUV_STATS_FILE_SIZE);
    struct emuv_config cfg = {.vram_share = 100 * MiB, .limit = 300 * MiB, .spill = 1};
    emuv_stats_format(h, &cfg, 1, 1);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    struct emuv_stats_slot *a = emuv_stats_claim(h, (uint32_t)dead, 0, 0);
    struct emuv_stats_slot *me = emuv_stats_claim(h, (uint32_t)getpid(), emuv_proc_start_time((uint32_t)getpid()), 0);
    struct emuv_budget ba = {.cfg = &cfg, .tot = &h->tot[0], .slot = a}, bm = {.cfg = &cfg, .tot = &h->tot[0], .slot = me};
    emuv_reserve_total(&ba, 30 * MiB); emuv_reserve_vram(&ba, 10 * MiB, 0); emuv_commit(&ba, 10 * MiB, 20 * MiB);
    emuv_reserve_total(&bm, 5 * MiB); emuv_reserve_vram(&bm, 5 * MiB, 0); emuv_commit(&bm, 5 * MiB, 0);
    CHECK_EQ_U64(h->tot[0].total_used, 35 * MiB);
    CHECK_EQ_U64(emuv_stats_reap(h, 0), 1);
    CHECK_EQ_U64(a->state, EMUV_SLOT_FREE);
    CHECK_EQ_U64(me->state, EMUV_SLOT_LIVE);
    CHECK_EQ_U64(h->tot[0].total_used, 5 * MiB);
    CHECK_EQ_U64(h->tot[0].vram_used, 5 * MiB);
    CHECK_EQ_U64(h->tot[0].host_used, 0);
    CHECK_EQ_U64(a->seq & EMUV_SEQ_BUSY_MASK, 0);
    CHECK_EQ_U64(emuv_stats_reap(h, 0), 0);
    free(h);
  }
  T_DONE();
}
