/* Writes the stats file v1 golden image (deterministic values) that plugin/stats/stats-reader.test.ts
 * decodes, and compares it with the committed copy. argv[1] = output, argv[2] = committed golden. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define CHECKED(x) do { if (!(x)) { fprintf(stderr, "golden: %s failed\n", #x); return 3; } } while (0)

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  struct emuv_stats_hdr *h = calloc(1, EMUV_STATS_FILE_SIZE);
  struct emuv_config cfg = {.vram_share = 7680 * MiB, .limit = 28 * GiB, .headroom = 256 * MiB,
                            .large_threshold = 64 * MiB, .mode = EMUV_MODE_FIXED, .spill = 1};
  snprintf(cfg.gpu, sizeof cfg.gpu, "GPU-5a3c1e0e-7f6b-4c1a-9d2e-0123456789ab");
  emuv_stats_format(h, &cfg, 1764250000123456789ull, 3);
  struct emuv_stats_slot *s0 = emuv_stats_claim(h, 101, 5000, 1764250001000000000ull);
  struct emuv_stats_slot *s1 = emuv_stats_claim(h, 202, 6000, 1764250002000000000ull);
  struct emuv_stats_slot *s2 = emuv_stats_claim(h, 303, 7000, 1764250003000000000ull);
  struct emuv_budget b0 = {.cfg = &cfg, .tot = &h->tot[0], .slot = s0}, b1 = {.cfg = &cfg, .tot = &h->tot[0], .slot = s1};
  /* process 101: a split weight block (6 GiB VRAM + 2 GiB host) and a 512 MiB VRAM block */
  CHECKED(emuv_reserve_total(&b0, 8 * GiB));
  CHECKED(emuv_reserve_vram(&b0, 6 * GiB, 0) == 6 * GiB);
  emuv_commit(&b0, 6 * GiB, 2 * GiB);
  emuv_count_event(&b0, EMUV_EV_SPILL);
  CHECKED(emuv_reserve_total(&b0, 512 * MiB));
  CHECKED(emuv_reserve_vram(&b0, 512 * MiB, 0) == 512 * MiB);
  emuv_commit(&b0, 512 * MiB, 0);
  emuv_slot_add(&b0, EMUV_SLOT_PINNED, 64 * MiB);
  emuv_count_event(&b0, EMUV_EV_DENIED);
  /* process 202: 512 MiB VRAM, one freed 256 MiB block, one refused request */
  CHECKED(emuv_reserve_total(&b1, 512 * MiB));
  CHECKED(emuv_reserve_vram(&b1, 512 * MiB, 0) == 512 * MiB);
  emuv_commit(&b1, 512 * MiB, 0);
  CHECKED(emuv_reserve_total(&b1, 256 * MiB));
  CHECKED(emuv_reserve_vram(&b1, 256 * MiB, 0) == 256 * MiB);
  emuv_commit(&b1, 256 * MiB, 0);
  emuv_release(&b1, 256 * MiB, 0);
  emuv_slot_add(&b1, EMUV_SLOT_MANAGED, 32 * MiB);
  emuv_count_event(&b1, EMUV_EV_OOM);
  /* process 303 left: slot freed */
  emuv_stats_release_slot(h, s2);
  /* what the agent writes */
  s0->host_pid = 40101;
  h->tot[0].overhead = 600 * MiB;
  FILE *f = fopen(argv[1], "wb");
  if (!f || fwrite(h, 1, EMUV_STATS_FILE_SIZE, f) != EMUV_STATS_FILE_SIZE) return 2;
  fclose(f);
  int rc = 0;
  if (argc > 2) {
    FILE *g = fopen(argv[2], "rb");
    static unsigned char want[EMUV_STATS_FILE_SIZE + 1];
    size_t n = g ? fread(want, 1, sizeof want, g) : 0;
    if (g) fclose(g);
    int same = n == EMUV_STATS_FILE_SIZE && memcmp(want, h, EMUV_STATS_FILE_SIZE) == 0;
    printf("%s stats golden v1: the C writer produces the committed golden-v1.bin byte for byte\n", same ? "PASS" : "FAIL");
    rc = !same;
  }
  free(h);
  return rc;
}
