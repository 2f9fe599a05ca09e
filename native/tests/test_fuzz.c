/* Deterministic fuzzer of the interposer's untrusted inputs, built with ASan+UBSan and linked with the
 * core (no driver): the EMUV_* environment (config.c), the stats file as another process of the container
 * may leave it (open/format/validate in stats.c), slot tables full of garbage (reap, claim), and the budget
 * arithmetic against a model (every byte in the totals is held by a slot; reaping a slot gives back exactly
 * what it held). Fixed seed, bounded number of cases, a few seconds.
 *
 * argv[1]: corpus directory (tests/corpus): every file in it is replayed first. config-*.env holds one
 * environment (NAME=VALUE lines, \xNN escapes); stats-*.bin is a stats file image. When a case crashes
 * (ASan/UBSan abort) it is written to $EMUV_FUZZ_CRASH_DIR (default: the corpus directory) as
 * crash-config-*.env or crash-stats-*.bin, to be kept in the corpus once fixed.
 * argv[2] (optional): multiplies the number of random cases (default 1: the bounded test size);
 * EMUV_FUZZ_SEED (optional, exploration only) replaces the fixed seed. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "t.h"
#include "core.h"

/* ---- randomness (fixed seed) --------------------------------------------------------------------- */
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs;
}
static unsigned rn(unsigned n) { return n ? (unsigned)(rnd() % n) : 0; }

/* ---- saving the case that crashes ------------------------------------------------------------------ */
static char crash_dir[512];
static const char *cur_kind = "";
static char cur_case[70000];
static size_t cur_len;
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
static void save_case(void) {
  char p[700];
  snprintf(p, sizeof p, "%s/crash-%s-%d.%s", crash_dir, cur_kind, getpid(), strcmp(cur_kind, "stats") == 0 ? "bin" : "env");
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ssize_t w = write(fd, cur_case, cur_len);
    (void)w;
    close(fd);
  }
}
static void on_signal(int sig) {
  save_case();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* ---- stderr capture: emuv: lines of one case ------------------------------------------------------ */
static int cap_fd = -1, saved_err = -1;
static void cap_begin(void) {
  if (cap_fd < 0) {
    FILE *f = tmpfile();
    cap_fd = dup(fileno(f));
    fclose(f);
    saved_err = dup(2);
  }
  if (ftruncate(cap_fd, 0) != 0 || lseek(cap_fd, 0, SEEK_SET) != 0) abort();
  dup2(cap_fd, 2);
}
/* Returns the number of lines; -1 when one is not a well-formed "<prefix>...\n" line of at most 512
 * printable ASCII bytes (a value echoed raw could break a line, forge one, or send terminal escapes). */
static const char *line_prefix = "emuv: ";
static int cap_end(char *first, size_t cap) {
  dup2(saved_err, 2);
  static char buf[65536];
  ssize_t n = pread(cap_fd, buf, sizeof buf - 1, 0);
  if (n < 0) n = 0;
  buf[n] = '\0';
  if (first) first[0] = '\0';
  int lines = 0;
  for (char *p = buf; *p;) {
    char *nl = strchr(p, '\n');
    if (nl == NULL || strncmp(p, line_prefix, strlen(line_prefix)) != 0 || nl - p + 1 > 512) return -1;
    for (const char *q = p; q < nl; q++)
      if (*q < 0x20 || *q > 0x7e) return -1;
    if (lines++ == 0 && first) snprintf(first, cap, "%.*s", (int)(nl - p), p);
    p = nl + 1;
  }
  return lines;
}

/* ---- EMUV_* environment ----------------------------------------------------------------------------- */
static const char *const NAMES[] = {EMUV_ENV_CONTRACT_VERSION, EMUV_ENV_LIMIT_BYTES, EMUV_ENV_VRAM_SHARE,
                                    EMUV_ENV_VRAM_MODE, EMUV_ENV_GPU, EMUV_ENV_STATS_FILE, EMUV_ENV_LOG_LEVEL,
                                    EMUV_ENV_HEADROOM, EMUV_ENV_LARGE_THRESHOLD, EMUV_ENV_OOM_RETRY,
                                    EMUV_ENV_SPILL_BACKEND};
#define NVARS (sizeof NAMES / sizeof *NAMES)
static const char *const GOOD[NVARS][5] = {
    {"1", "2", "0", "01", "1 "},
    {"28Gi", "2Gi", "0", "9223372036854775807", "8388607Ti"},
    {"7680Mi", "1Gi", "1", "16Mi", "0"},
    {"fill", "fixed", "FILL", "", "fixed "},
    {"GPU-5a3c1e0e-7f6b-4c1a-9d2e-0123456789ab", "0000:01:00.0", "01:00.0", "00000000:65:00.7", "GPU-"},
    {"/run/emuv/stats.bin", "/", "stats.bin", "/tmp/x", ""},
    {"error", "warn", "info", "debug", "loud"},
    {"1Gi", "0", "256Mi", "8Gi", "1Ki"},
    {"64Mi", "1", "0", "2Mi", "1Ti"},
    {"auto", "on", "off", "yes", "AUTO"},
    {"auto", "pinned", "managed", "Managed", ""},
};
static char env_val[NVARS][6000];
static int env_set[NVARS];
static const char *env_get(const char *n) {
  for (unsigned i = 0; i < NVARS; i++)
    if (env_set[i] && strcmp(n, NAMES[i]) == 0) return env_val[i];
  return NULL;
}

static void mutate_str(char *s, size_t cap) {
  size_t n = strlen(s);
  static const char junk[] = "0123456789KMGTPiBb -+x.:/\t\n\xff\x01GPU-abcdefABCDEF";
  for (unsigned k = 0, m = 1 + rn(4); k < m; k++) {
    switch (rn(6)) {
      case 0: if (n) s[rn((unsigned)n)] = junk[rn(sizeof junk - 1)]; break;                /* replace */
      case 1: if (n + 1 < cap) { size_t at = rn((unsigned)n + 1); memmove(s + at + 1, s + at, n - at + 1); s[at] = junk[rn(sizeof junk - 1)]; n++; } break;
      case 2: if (n) { size_t at = rn((unsigned)n); memmove(s + at, s + at + 1, n - at); n--; } break; /* delete */
      case 3: if (n) { n = rn((unsigned)n); s[n] = '\0'; } break;                            /* truncate */
      case 4: while (n + 1 < cap && rn(8)) { s[n++] = (char)('0' + rn(10)); s[n] = '\0'; } break; /* digits */
      case 5: if (2 * n + 1 < cap) { memcpy(s + n, s, n); n *= 2; s[n] = '\0'; } break;       /* double */
    }
  }
}

static void random_env(void) {
  for (unsigned i = 0; i < NVARS; i++) {
    env_set[i] = rn(10) < 7;
    char *v = env_val[i];
    unsigned k = rn(10);
    if (k < 4) snprintf(v, sizeof env_val[i], "%s", GOOD[i][rn(5)]);
    else if (k < 8) {
      snprintf(v, sizeof env_val[i], "%s", GOOD[i][rn(5)]);
      mutate_str(v, 200);
    } else { /* random bytes, sometimes long */
      size_t n = rn(10) == 0 ? 1000 + rn(4900) : rn(300);
      for (size_t j = 0; j < n; j++) v[j] = (char)(1 + rn(255));
      v[n] = '\0';
      if (i == 5 && rn(2)) v[0] = '/'; /* absolute paths of every length */
    }
  }
}

/* one case as text: NAME=VALUE lines with \xNN escapes (the corpus format) */
static void env_encode(void) {
  cur_len = 0;
  for (unsigned i = 0; i < NVARS; i++) {
    if (!env_set[i]) continue;
    cur_len += (size_t)snprintf(cur_case + cur_len, sizeof cur_case - cur_len, "%s=", NAMES[i]);
    for (const unsigned char *p = (const unsigned char *)env_val[i]; *p && cur_len + 8 < sizeof cur_case; p++) {
      if (*p >= 0x20 && *p < 0x7f && *p != '\\') cur_case[cur_len++] = (char)*p;
      else cur_len += (size_t)snprintf(cur_case + cur_len, sizeof cur_case - cur_len, "\\x%02x", *p);
    }
    if (cur_len + 1 < sizeof cur_case) cur_case[cur_len++] = '\n';
  }
}
static void env_decode(const char *text) {
  memset(env_set, 0, sizeof env_set);
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    for (unsigned i = 0; i < NVARS; i++) {
      size_t k = strlen(NAMES[i]);
      if (len > k && strncmp(line, NAMES[i], k) == 0 && line[k] == '=') {
        size_t o = 0;
        for (size_t j = k + 1; j < len && o + 1 < sizeof env_val[i]; j++) {
          unsigned x;
          if (line[j] == '\\' && j + 3 < len + 1 && sscanf(line + j, "\\x%2x", &x) == 1 && x != 0) env_val[i][o++] = (char)x, j += 3;
          else env_val[i][o++] = line[j];
        }
        env_val[i][o] = '\0';
        env_set[i] = 1;
      }
    }
    line += len + (nl != NULL);
  }
}

/* The strict grammar of EMUV_GPU, written independently of config.c. */
static int ishex(int ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'); }
static int gpu_ok(const char *s) {
  size_t n = strlen(s);
  if (n > 4 && strncmp(s, "GPU-", 4) == 0) {
    if (n >= 72) return 0;
    for (size_t i = 4; i < n; i++)
      if (!ishex(s[i]) && s[i] != '-') return 0;
    return 1;
  }
  /* split on ':' and '.': [d:]b:d.f */
  int parts[4] = {0}, np = 0;
  const char *p = s;
  for (;;) {
    int len = 0;
    while (ishex(p[len])) len++;
    if (len == 0 || np == 4) return 0;
    parts[np++] = len;
    p += len;
    if (*p == ':') p++;
    else break;
  }
  if (*p != '.' || !(p[1] >= '0' && p[1] <= '7') || p[2] != '\0') return 0;
  if (np == 2) return parts[0] <= 2 && parts[1] <= 2;
  if (np == 3) return parts[0] <= 8 && parts[1] <= 2 && parts[2] <= 2;
  return 0;
}

static int check_config_case(char *why, size_t cap) {
  struct emuv_config c;
  cur_kind = "config";
  env_encode();
  int present = 0;
  for (unsigned i = 0; i < NVARS; i++) present += env_set[i];
  cap_begin();
  emuv_config_load(&c, env_get);
  char first[600];
  line_prefix = "emuv: EMUV_"; /* every configuration message starts with the variable's name */
  int lines = cap_end(first, sizeof first);
  line_prefix = "emuv: ";
  emuv_log_level = EMUV_LOG_WARN;
  if (lines < 0) return snprintf(why, cap, "a stderr line is not one printable \"emuv: EMUV_...\" line"), 0;
  if (lines > present + 1) return snprintf(why, cap, "%d lines for %d variables", lines, present), 0;
  if (c.passthrough) return 1;
  if (c.vram_share == 0) return snprintf(why, cap, "share 0 accepted"), 0;
  if (c.limit < c.vram_share) return snprintf(why, cap, "limit below share"), 0;
  if (c.spill != (c.limit > c.vram_share)) return snprintf(why, cap, "spill flag wrong"), 0;
  if (c.headroom > c.vram_share || c.large_threshold == 0) return snprintf(why, cap, "headroom/threshold"), 0;
  if (c.mode != EMUV_MODE_FILL && c.mode != EMUV_MODE_FIXED) return snprintf(why, cap, "mode"), 0;
  if (c.oom_retry < 0 || c.oom_retry > 2 || c.log_level < 0 || c.log_level > 3) return snprintf(why, cap, "enum"), 0;
  if (c.spill_backend < EMUV_SPILL_AUTO || c.spill_backend > EMUV_SPILL_MANAGED) return snprintf(why, cap, "spill backend"), 0;
  if (memchr(c.gpu, '\0', sizeof c.gpu) == NULL || (c.gpu[0] && !gpu_ok(c.gpu)))
    return snprintf(why, cap, "gpu \"%.80s\" accepted", c.gpu), 0;
  if (memchr(c.stats_path, '\0', sizeof c.stats_path) == NULL || (c.stats_path[0] && c.stats_path[0] != '/'))
    return snprintf(why, cap, "stats path"), 0;
  if (env_set[5] && env_val[5][0] == '/' && strlen(env_val[5]) < sizeof c.stats_path && strcmp(c.stats_path, env_val[5]) != 0)
    return snprintf(why, cap, "a valid stats path was not taken"), 0;
  return 1;
}

/* parse_size against an independent reference of ^(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti)?$ <= 2^63-1 */
static int ref_parse_size(const char *s, uint64_t *out) {
  size_t d = strspn(s, "0123456789");
  if (d == 0 || (d > 1 && s[0] == '0')) return -1;
  const char *suf = s + d;
  unsigned shift = !*suf ? 0 : !strcmp(suf, "Ki") ? 10 : !strcmp(suf, "Mi") ? 20 : !strcmp(suf, "Gi") ? 30 : !strcmp(suf, "Ti") ? 40 : 99;
  if (shift == 99 || d > 19) return -1;
  long double ld = strtold(s, NULL) * (long double)(1ull << shift);
  if (ld > 9223372036854775807.0L) return -1;
  unsigned long long v = strtoull(s, NULL, 10);
  if (shift && v > (0x7fffffffffffffffull >> shift)) return -1;
  if (v > 0x7fffffffffffffffull) return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

/* ---- stats files ----------------------------------------------------------------------------------------- */
static char dir[512], spath[600];
static struct emuv_config scfg;
static pid_t dead_pid;

static void write_bytes(const char *p, const void *b, size_t n, mode_t mode) {
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || (n && write(fd, b, n) != (ssize_t)n)) abort();
  fchmod(fd, mode);
  close(fd);
}

static const struct emuv_stats_slot *slot_of(const struct emuv_stats_hdr *h, unsigned i) {
  return (const void *)((const char *)h + EMUV_STATS_HDR_SIZE + (size_t)i * EMUV_STATS_SLOT_SIZE);
}

static uint32_t pick_pid(void) {
  switch (rn(5)) {
    case 0: return 0;
    case 1: return (uint32_t)getpid();
    case 2: return (uint32_t)dead_pid;
    case 3: return 1;
    default: return 4194304u + rn(1u << 30); /* above any pid_max: no such process */
  }
}

/* A stats image as another process (or garbage) may leave it. */
static size_t random_image(unsigned char *img, size_t cap) {
  struct emuv_stats_hdr *h = (struct emuv_stats_hdr *)img;
  memset(img, 0, cap);
  emuv_stats_format(h, &scfg, 1, 1 + rn(5));
  for (unsigned i = 0, n = rn(8); i < n; i++) {
    struct emuv_stats_slot *s = (struct emuv_stats_slot *)(img + EMUV_STATS_HDR_SIZE + (size_t)rn(EMUV_STATS_MAX_SLOTS) * EMUV_STATS_SLOT_SIZE);
    s->state = rn(4) ? EMUV_SLOT_LIVE : (uint32_t)rnd();
    s->pid = pick_pid();
    s->start_time = rn(2) ? 0 : rnd();
    s->flags = (uint32_t)rn(3);
    s->seq = rnd();
    s->dev[0].vram = rnd() >> rn(64);
    s->dev[0].host = rnd() >> rn(64);
    s->held_total = rnd() >> rn(64);
    s->held_vram = rnd() >> rn(64);
    s->held_host = rnd() >> rn(64);
  }
  h->tot[0].total_used = rnd() >> rn(64);
  h->tot[0].vram_used = rnd() >> rn(64);
  h->tot[0].host_used = rnd() >> rn(64);
  for (unsigned k = 0, m = rn(6); k < m; k++) { /* byte flips, mostly in the header's identity */
    size_t at = rn(3) ? rn(64) : rn((unsigned)cap);
    img[at] ^= (unsigned char)(1u << rn(8));
  }
  if (rn(4) == 0) h->init_state = (uint32_t)rn(4);
  static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 65535, 65536, 65536, 65536, 70000};
  size_t n = sizes[rn(sizeof sizes / sizeof *sizes)];
  return n > cap ? cap : n;
}

static int hdr_valid(const struct emuv_stats_hdr *p) {
  return p->magic == EMUV_STATS_MAGIC && p->ver_major == EMUV_STATS_VER_MAJOR && p->hdr_size == EMUV_STATS_HDR_SIZE &&
         p->slot_size == EMUV_STATS_SLOT_SIZE && p->max_slots == EMUV_STATS_MAX_SLOTS && p->max_devs == EMUV_STATS_MAX_DEVS;
}

/* One stats-file case: the image is written, emuv_stats_open runs on it; checks what it did. */
static int check_stats_case(const unsigned char *img, size_t n, char *why, size_t cap) {
  cur_kind = "stats";
  cur_len = n < sizeof cur_case ? n : sizeof cur_case;
  memcpy(cur_case, img, cur_len);
  write_bytes(spath, img, n, 0640);
  const struct emuv_stats_hdr *ph = (const void *)img;
  enum { FORMAT, USE, REFUSE } want;
  if (n == 0) want = FORMAT;
  else if (n >= sizeof *ph && ph->magic == EMUV_STATS_MAGIC && ph->ver_major == EMUV_STATS_VER_MAJOR &&
           ph->init_state != EMUV_INIT_READY) want = FORMAT;
  else if (n >= EMUV_STATS_FILE_SIZE && hdr_valid(ph) && ph->init_state == EMUV_INIT_READY) want = USE;
  else want = REFUSE;
  struct emuv_stats s;
  cap_begin();
  int rc = emuv_stats_open(&s, &scfg, (uint32_t)getpid());
  char first[600];
  int lines = cap_end(first, sizeof first);
  int ok = 1;
  struct stat st;
  if (rc != 0 || s.hdr == NULL) ok = 0, snprintf(why, cap, "open failed");
  else if (lines < 0) ok = 0, snprintf(why, cap, "malformed stderr");
  else if (s.shared != (want != REFUSE)) ok = 0, snprintf(why, cap, "shared=%d, expected %d (%s)", s.shared, want != REFUSE, first);
  else if (want == REFUSE) {
    static unsigned char back[70000 + 1];
    int fd = open(spath, O_RDONLY);
    ssize_t m = fd >= 0 ? read(fd, back, sizeof back) : -1;
    if (fd >= 0) close(fd);
    if (m != (ssize_t)n || memcmp(back, img, n) != 0) ok = 0, snprintf(why, cap, "a refused file was changed");
    else if (stat(spath, &st) != 0 || (st.st_mode & 07777) != 0640) ok = 0, snprintf(why, cap, "a refused file's mode changed");
    else if (lines != 1 || strstr(first, "the shared budget is off") == NULL) ok = 0, snprintf(why, cap, "refusal not said once: %d", lines);
  } else {
    const struct emuv_stats_hdr *h = s.hdr;
    if (!hdr_valid(h) || h->init_state != EMUV_INIT_READY) ok = 0, snprintf(why, cap, "mapped header not ready");
    else if (stat(spath, &st) != 0 || st.st_size < EMUV_STATS_FILE_SIZE) ok = 0, snprintf(why, cap, "file too short");
    else if (want == FORMAT && (h->tot[0].total_used != 0 || h->ver_minor != EMUV_STATS_VER_MINOR)) ok = 0, snprintf(why, cap, "format not clean");
    else if (want == USE) {
      for (unsigned d = 0; d < EMUV_STATS_MAX_DEVS && ok; d++)
        if (h->tot[d].total_used > ph->tot[d].total_used || h->tot[d].vram_used > ph->tot[d].vram_used ||
            h->tot[d].host_used > ph->tot[d].host_used)
          ok = 0, snprintf(why, cap, "reaping raised a total");
    }
    for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS && ok; i++) {
      const struct emuv_stats_slot *sl = slot_of(h, i);
      if (sl->state == EMUV_SLOT_REAPING && slot_of(ph, i)->state != EMUV_SLOT_REAPING) ok = 0, snprintf(why, cap, "slot left REAPING");
    }
    if (ok && (s.slot == NULL ? 0 : (s.slot->state != EMUV_SLOT_LIVE || s.slot->pid != (uint32_t)getpid() ||
                                     !(s.slot->flags & EMUV_SLOT_F_HELD) || s.slot->held_total != 0)))
      ok = 0, snprintf(why, cap, "claimed slot not clean");
  }
  emuv_stats_close(&s);
  unlink(spath);
  return ok;
}

/* ---- reaping and claiming garbage slot tables (in memory) ---------------------------------------------- */
static int check_reap_case(char *why, size_t cap) {
  static unsigned char img[EMUV_STATS_FILE_SIZE], before[EMUV_STATS_FILE_SIZE];
  random_image(img, sizeof img);
  struct emuv_stats_hdr *h = (struct emuv_stats_hdr *)img;
  for (unsigned i = 0, n = rn(40); i < n; i++) { /* more slots, more garbage */
    struct emuv_stats_slot *s = (struct emuv_stats_slot *)(img + EMUV_STATS_HDR_SIZE + (size_t)rn(EMUV_STATS_MAX_SLOTS) * EMUV_STATS_SLOT_SIZE);
    s->state = rn(3) ? EMUV_SLOT_LIVE : rn(5);
    s->pid = pick_pid();
    s->flags = (uint32_t)rnd();
    for (unsigned d = 0; d < EMUV_STATS_MAX_DEVS; d++) s->dev[d].vram = rnd(), s->dev[d].host = rnd() >> rn(64);
    s->held_total = rnd();
  }
  memcpy(before, img, sizeof img);
  uint32_t self = rn(2) ? (uint32_t)getpid() : 0;
  unsigned expect = 0;
  for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
    const struct emuv_stats_slot *s = slot_of((void *)before, i);
    if (s->state != EMUV_SLOT_LIVE || s->pid == self) continue;
    int dead = s->pid == 0 || (kill((pid_t)s->pid, 0) != 0 && errno == ESRCH);
    if (!dead && s->start_time != 0) {
      uint64_t cur = emuv_proc_start_time(s->pid);
      if (cur != 0 && cur != s->start_time) dead = 1;
    }
    expect += (unsigned)dead;
  }
  unsigned got = emuv_stats_reap(h, self);
  if (got != expect) return snprintf(why, cap, "reaped %u, expected %u", got, expect), 0;
  for (unsigned d = 0; d < EMUV_STATS_MAX_DEVS; d++) {
    const struct emuv_devtot *a = &h->tot[d], *b = &((const struct emuv_stats_hdr *)before)->tot[d];
    if (a->total_used > b->total_used || a->vram_used > b->vram_used || a->host_used > b->host_used)
      return snprintf(why, cap, "a total went up (wrapped)"), 0;
  }
  for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) {
    const struct emuv_stats_slot *a = slot_of(h, i), *b = slot_of((void *)before, i);
    if (memcmp(a, b, sizeof *a) == 0) continue;
    if (b->state != EMUV_SLOT_LIVE || a->state != EMUV_SLOT_FREE || a->held_total || a->held_vram || a->held_host ||
        a->dev[0].vram || a->dev[0].host || a->flags || a->pid || (a->seq & EMUV_SEQ_BUSY_MASK))
      return snprintf(why, cap, "slot %u changed without being reaped cleanly", i), 0;
  }
  /* claim: a FREE slot or NULL when there is none */
  unsigned free_before = 0;
  for (unsigned i = 0; i < EMUV_STATS_MAX_SLOTS; i++) free_before += slot_of(h, i)->state == EMUV_SLOT_FREE;
  struct emuv_stats_slot *c = emuv_stats_claim(h, 77, 5, 9);
  if ((c == NULL) != (free_before == 0)) return snprintf(why, cap, "claim"), 0;
  if (c && (c->state != EMUV_SLOT_LIVE || c->pid != 77 || c->held_total || c->flags != EMUV_SLOT_F_HELD))
    return snprintf(why, cap, "claimed slot"), 0;
  return 1;
}

/* ---- budget against a model ------------------------------------------------------------------------------ */
struct model_alloc {
  int slot;
  uint64_t vram, host;
};
static int check_budget_case(char *why, size_t cap) {
  static unsigned char img[EMUV_STATS_FILE_SIZE];
  struct emuv_stats_hdr *h = (struct emuv_stats_hdr *)img;
  struct emuv_config cfg = {.vram_share = (1 + rn(64)) * EMUV_SPLIT_GRANULE, .spill = 1, .large_threshold = (1 + rn(16)) * MiB};
  cfg.limit = cfg.vram_share * (1 + rn(4));
  cfg.spill = cfg.limit > cfg.vram_share;
  cfg.headroom = rn(2) ? 0 : cfg.vram_share / 4;
  memset(img, 0, sizeof img);
  emuv_stats_format(h, &cfg, 1, 1);
  memset(&emuv_own, 0, sizeof emuv_own);
  enum { S = 3, A = 64 };
  struct emuv_budget b[S];
  /* every slot belongs to a live process (this one) until the model kills it */
  for (int i = 0; i < S; i++) b[i] = (struct emuv_budget){.cfg = &cfg, .tot = &h->tot[0], .slot = emuv_stats_claim(h, (uint32_t)getpid(), 0, 0)};
  struct model_alloc live[A];
  int nlive = 0;
#define INVARIANT(where)                                                                                  \
  do {                                                                                                    \
    uint64_t st = 0, sv = 0, sh = 0;                                                                      \
    for (int i_ = 0; i_ < S; i_++) st += b[i_].slot->held_total, sv += b[i_].slot->held_vram, sh += b[i_].slot->held_host; \
    if (st != h->tot[0].total_used || sv != h->tot[0].vram_used || sh != h->tot[0].host_used)             \
      return snprintf(why, cap, "%s: totals %llu/%llu/%llu, slots hold %llu/%llu/%llu", where,            \
                      (unsigned long long)h->tot[0].total_used, (unsigned long long)h->tot[0].vram_used,   \
                      (unsigned long long)h->tot[0].host_used, (unsigned long long)st, (unsigned long long)sv, \
                      (unsigned long long)sh), 0;                                                          \
    if (h->tot[0].total_used > cfg.limit) return snprintf(why, cap, "%s: over the limit", where), 0;      \
  } while (0)
  for (int step = 0; step < 300; step++) {
    int k = (int)rn(S);
    unsigned op = rn(10);
    if (op < 5 && nlive < A) { /* an allocation: reserve, then commit or give up */
      uint64_t n = rn(8) ? (1 + rn(cfg.limit / 4096)) * 4096 : rnd() >> rn(64);
      if (n == 0) n = 1;
      if (!emuv_reserve_total(&b[k], n)) {
        INVARIANT("refused");
        continue;
      }
      INVARIANT("total reserved");
      uint64_t v = emuv_reserve_vram(&b[k], n, (int)rn(3));
      if (v > n) return snprintf(why, cap, "vram %llu > request %llu", (unsigned long long)v, (unsigned long long)n), 0;
      INVARIANT("vram reserved");
      if (rn(4) == 0) {
        if (v) emuv_unreserve_vram(&b[k], v);
        emuv_unreserve_total(&b[k], n);
        INVARIANT("given up");
        continue;
      }
      emuv_commit(&b[k], v, n - v);
      INVARIANT("committed");
      live[nlive++] = (struct model_alloc){k, v, n - v};
    } else if (op < 8 && nlive > 0) { /* a free */
      int i = (int)rn((unsigned)nlive);
      emuv_release(&b[live[i].slot], live[i].vram, live[i].host);
      live[i] = live[--nlive];
      INVARIANT("released");
    } else if (op == 8) { /* the process of slot k dies: reaped; its allocations are gone with it */
      uint64_t held = b[k].slot->held_total, before = h->tot[0].total_used;
      __atomic_store_n(&b[k].slot->pid, (uint32_t)dead_pid, __ATOMIC_RELAXED);
      if (emuv_stats_reap(h, 0) != 1) return snprintf(why, cap, "reaped other than the dead slot"), 0;
      if (h->tot[0].total_used != before - held) return snprintf(why, cap, "reaping did not give back exactly what it held"), 0;
      for (int i = 0; i < nlive;)
        if (live[i].slot == k) live[i] = live[--nlive];
        else i++;
      b[k].slot = emuv_stats_claim(h, (uint32_t)getpid(), 0, 0);
      INVARIANT("reaped");
    }
  }
#undef INVARIANT
  return 1;
}

/* ---- corpus ----------------------------------------------------------------------------------------------- */
static int replay_corpus(const char *corpus, int *files) {
  DIR *d = opendir(corpus);
  int bad = 0;
  *files = 0;
  if (d == NULL) return 0;
  struct dirent *e;
  static unsigned char buf[70000];
  while ((e = readdir(d)) != NULL) {
    int is_env = strstr(e->d_name, ".env") != NULL, is_bin = strstr(e->d_name, ".bin") != NULL;
    if (!is_env && !is_bin) continue;
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", corpus, e->d_name);
    int fd = open(p, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (n < 0) continue;
    (*files)++;
    char why[300] = "";
    int ok;
    if (is_env) {
      buf[n] = '\0';
      env_decode((const char *)buf);
      ok = check_config_case(why, sizeof why);
    } else {
      ok = check_stats_case(buf, (size_t)n, why, sizeof why);
    }
    if (!ok) {
      fprintf(stderr, "  corpus %s: %s\n", e->d_name, why);
      bad++;
    }
  }
  closedir(d);
  return bad;
}

int main(int argc, char **argv) {
  const char *corpus = argc > 1 ? argv[1] : "tests/corpus";
  long scale = argc > 2 ? atol(argv[2]) : 1;
  const char *seed = getenv("EMUV_FUZZ_SEED"); /* exploration runs only; the test uses the fixed seed */
  if (seed && strtoull(seed, NULL, 0)) rs = strtoull(seed, NULL, 0);
  const char *cd = getenv("EMUV_FUZZ_CRASH_DIR");
  snprintf(crash_dir, sizeof crash_dir, "%s", cd && *cd ? cd : corpus);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_case);
  signal(SIGSEGV, on_signal);
  signal(SIGABRT, on_signal);
  if (!t_mkdtemp(dir, sizeof dir, "emuv-fuzz-XXXXXX")) return 2;
  snprintf(spath, sizeof spath, "%s/stats.bin", dir);
  scfg = (struct emuv_config){.vram_share = 1 * GiB, .limit = 2 * GiB, .spill = 1, .headroom = 256 * MiB,
                              .large_threshold = 64 * MiB};
  snprintf(scfg.stats_path, sizeof scfg.stats_path, "%s", spath);
  dead_pid = fork();
  if (dead_pid == 0) _exit(0);
  waitpid(dead_pid, NULL, 0);

  int files = 0, bad = replay_corpus(corpus, &files);
  char name[200];
  snprintf(name, sizeof name, "fuzz corpus: %d crashers and edge cases of %s replay cleanly", files, corpus);
  TEST(name) CHECK_EQ_U64(bad, 0);

  long n_size = 200000 * scale, n_cfg = 20000 * scale, n_stats = 1500 * scale, n_reap = 3000 * scale, n_budget = 300 * scale;
  char why[300];
  snprintf(name, sizeof name, "fuzz: %ld random sizes, parse_size agrees with an independent reference", n_size);
  TEST(name) {
    int bad_n = 0;
    static const char alpha[] = "0000111223456789KMGTPiiB -+.x";
    for (long i = 0; i < n_size; i++) {
      char s[40];
      size_t len = rn(26);
      for (size_t j = 0; j < len; j++) s[j] = alpha[rn(sizeof alpha - 1)];
      s[len] = '\0';
      if (rn(4) == 0) snprintf(s, sizeof s, "%llu%s", (unsigned long long)(rnd() >> rn(64)), rn(2) ? "" : (const char *[]){"Ki", "Mi", "Gi", "Ti"}[rn(4)]);
      uint64_t a = 1, b2 = 2;
      int ra = emuv_parse_size(s, &a), rb = ref_parse_size(s, &b2);
      if (ra != rb || (ra == 0 && a != b2)) {
        if (bad_n++ < 5) fprintf(stderr, "  parse_size(\"%s\") = %d %llu, reference %d %llu\n", s, ra, (unsigned long long)a, rb, (unsigned long long)b2);
      }
    }
    CHECK_EQ_U64(bad_n, 0);
  }
  snprintf(name, sizeof name, "fuzz: %ld random EMUV_* environments load within the contract's invariants", n_cfg);
  TEST(name) {
    int bad_n = 0;
    for (long i = 0; i < n_cfg; i++) {
      random_env();
      if (!check_config_case(why, sizeof why) && bad_n++ < 5) {
        fprintf(stderr, "  config case %ld: %s\n    %.*s\n", i, why, (int)(cur_len > 300 ? 300 : cur_len), cur_case);
        char p[700];
        snprintf(p, sizeof p, "%s/fail-config-%ld.env", dir, i);
        write_bytes(p, cur_case, cur_len, 0644);
      }
    }
    CHECK_EQ_U64(bad_n, 0);
  }
  snprintf(name, sizeof name, "fuzz: %ld damaged stats files: used, formatted or refused untouched, never a crash", n_stats);
  TEST(name) {
    int bad_n = 0;
    static unsigned char img[70000];
    for (long i = 0; i < n_stats; i++) {
      size_t n = random_image(img, sizeof img);
      if (!check_stats_case(img, n, why, sizeof why) && bad_n++ < 5) fprintf(stderr, "  stats case %ld (%zu bytes): %s\n", i, n, why);
    }
    CHECK_EQ_U64(bad_n, 0);
  }
  snprintf(name, sizeof name, "fuzz: %ld garbage slot tables: reap frees exactly the dead, totals never wrap; claim takes a free slot", n_reap);
  TEST(name) {
    int bad_n = 0;
    for (long i = 0; i < n_reap; i++)
      if (!check_reap_case(why, sizeof why) && bad_n++ < 5) fprintf(stderr, "  reap case %ld: %s\n", i, why);
    CHECK_EQ_U64(bad_n, 0);
  }
  snprintf(name, sizeof name, "fuzz: %ld x 300 budget steps over 3 slots: the totals are always what the slots hold", n_budget);
  TEST(name) {
    int bad_n = 0;
    for (long i = 0; i < n_budget; i++)
      if (!check_budget_case(why, sizeof why) && bad_n++ < 5) fprintf(stderr, "  budget case %ld: %s\n", i, why);
    CHECK_EQ_U64(bad_n, 0);
  }
  rmdir(dir);
  T_DONE();
}
