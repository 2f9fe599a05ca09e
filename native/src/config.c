/* Strict parsing of the EMUV_* environment contract (see docs/interposer.md for each safe fallback). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

int emuv_log_level = EMUV_LOG_WARN;
int emuv_log_quiet;

void emuv_log(int level, const char *fmt, ...) {
  if (level > emuv_log_level || emuv_log_quiet) return;
  char buf[512];
  int n = snprintf(buf, sizeof buf, "emuv: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
  buf[len++] = '\n';
  ssize_t w = write(2, buf, len);
  (void)w;
}

/* For messages: at most max bytes of s, each byte outside printable ASCII (newlines, escapes, UTF-8) as
 * \xNN, "..." when cut: a value from the environment can neither forge nor break "emuv:" lines. */
const char *emuv_quote(const char *s, size_t max, char *buf, size_t cap) {
  size_t o = 0, i = 0;
  if (cap == 0) return "";
  for (; s[i] != '\0' && i < max; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
      if (o + 1 >= cap) break;
      buf[o++] = (char)ch;
    } else {
      if (o + 5 >= cap) break;
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
    }
  }
  if (s[i] != '\0' && o + 4 <= cap) memcpy(buf + o, "...", 3), o += 3;
  buf[o] = '\0';
  return buf;
}
#define Q(s) emuv_quote((s), 40, qbuf, sizeof qbuf)

/* Same grammar as parseSize in common/contracts/interposer.ts: ^(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti)?$,
 * at most 2^63-1 bytes. Returns 0 and stores the value, or -1. */
int emuv_parse_size(const char *s, uint64_t *out) {
  if (s == NULL || *s == '\0') return -1;
  const char *p = s;
  if (*p == '0' && p[1] >= '0' && p[1] <= '9') return -1; /* leading zero */
  unsigned __int128 v = 0;
  int digits = 0;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (unsigned)(*p - '0');
    if (v > EMUV_MAX_SIZE_BYTES) return -1;
    p++;
    digits++;
  }
  if (digits == 0) return -1;
  unsigned shift = 0;
  if (*p != '\0') {
    if (p[1] != 'i' || p[2] != '\0') return -1;
    switch (p[0]) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      default: return -1;
    }
  }
  v <<= shift;
  if (v > EMUV_MAX_SIZE_BYTES) return -1;
  *out = (uint64_t)v;
  return 0;
}

static int parse_level(const char *s) {
  if (strcmp(s, "error") == 0) return EMUV_LOG_ERROR;
  if (strcmp(s, "warn") == 0) return EMUV_LOG_WARN;
  if (strcmp(s, "info") == 0) return EMUV_LOG_INFO;
  if (strcmp(s, "debug") == 0) return EMUV_LOG_DEBUG;
  return -1;
}

static int hexdigits(const char **p, int min, int max) {
  int n = 0;
  while (n < max && ((**p >= '0' && **p <= '9') || (**p >= 'a' && **p <= 'f') || (**p >= 'A' && **p <= 'F'))) (*p)++, n++;
  return n >= min;
}

/* A GPU UUID ("GPU-" then hex digits and dashes) or a PCI address [domain:]bus:device.function in hex
 * (domain up to 8 digits, bus and device up to 2, function 0-7). Exact: no signs, spaces, "0x" prefixes or
 * other bytes (the value is copied into the stats header that readers print). */
static int valid_gpu(const char *s) {
  size_t cap = sizeof(((struct emuv_config *)0)->gpu);
  if (strncmp(s, "GPU-", 4) == 0) {
    size_t n = strlen(s);
    if (n <= 4 || n >= cap) return 0;
    for (const char *p = s + 4; *p; p++)
      if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') || *p == '-')) return 0;
    return 1;
  }
  const char *p = s;
  const char *colon2 = strchr(s, ':') ? strchr(strchr(s, ':') + 1, ':') : NULL;
  if (colon2 != NULL) { /* with a domain */
    if (!hexdigits(&p, 1, 8) || *p++ != ':') return 0;
  }
  if (!hexdigits(&p, 1, 2) || *p++ != ':') return 0;
  if (!hexdigits(&p, 1, 2) || *p++ != '.') return 0;
  if (*p < '0' || *p > '7' || p[1] != '\0') return 0;
  return 1;
}

void emuv_config_load(struct emuv_config *c, emuv_getenv_fn get) {
  char qbuf[256];
  memset(c, 0, sizeof *c);
  c->mode = EMUV_MODE_FILL;
  c->oom_retry = EMUV_RETRY_AUTO;
  c->spill_backend = EMUV_SPILL_AUTO;
  c->log_level = EMUV_LOG_WARN;

  const char *lvl = get(EMUV_ENV_LOG_LEVEL);
  if (lvl != NULL) {
    int l = parse_level(lvl);
    if (l < 0) emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not error|warn|info|debug; using warn", EMUV_ENV_LOG_LEVEL, Q(lvl));
    else c->log_level = l;
  }
  emuv_log_level = c->log_level;

  const char *ver = get(EMUV_ENV_CONTRACT_VERSION);
  const char *share = get(EMUV_ENV_VRAM_SHARE);
  const char *limit = get(EMUV_ENV_LIMIT_BYTES);
  c->contract_version = EMUV_CONTRACT_VERSION;
  if (ver == NULL && share == NULL && limit == NULL) {
    c->passthrough = 1; /* not an emuv container: stay invisible */
    return;
  }
  if (ver != NULL && strcmp(ver, "1") != 0) {
    emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not supported (this interposer speaks 1); passing through",
             EMUV_ENV_CONTRACT_VERSION, Q(ver));
    c->passthrough = 1;
    return;
  }
  if (share == NULL || emuv_parse_size(share, &c->vram_share) != 0 || c->vram_share == 0) {
    emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is %s; passing through", EMUV_ENV_VRAM_SHARE, Q(share ? share : ""),
             share ? "not a valid non-zero size" : "missing");
    c->passthrough = 1;
    return;
  }
  c->limit = c->vram_share;
  if (limit == NULL) {
    emuv_log(EMUV_LOG_WARN, "%s is missing; no spill: the VRAM share caps memory and is the reported total",
             EMUV_ENV_LIMIT_BYTES);
  } else {
    uint64_t l;
    if (emuv_parse_size(limit, &l) != 0 || l == 0) { /* 0 would leave an active shim with no memory at all */
      emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not a valid non-zero size; no spill: the VRAM share caps memory",
               EMUV_ENV_LIMIT_BYTES, Q(limit));
    } else if (l < c->vram_share) {
      emuv_log(EMUV_LOG_WARN, "%s=%llu is below the VRAM share %llu; VRAM is capped at the limit, no spill",
               EMUV_ENV_LIMIT_BYTES, (unsigned long long)l, (unsigned long long)c->vram_share);
      c->vram_share = l;
      c->limit = l;
    } else {
      c->limit = l;
    }
  }
  c->spill = c->limit > c->vram_share;

  const char *mode = get(EMUV_ENV_VRAM_MODE);
  if (mode != NULL) {
    if (strcmp(mode, "fill") == 0) c->mode = EMUV_MODE_FILL;
    else if (strcmp(mode, "fixed") == 0) c->mode = EMUV_MODE_FIXED;
    else emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not fill|fixed; using fill", EMUV_ENV_VRAM_MODE, Q(mode));
  }

  /* Headroom: max(1 GiB, 15 % of the share), never more than half the share. */
  uint64_t h = c->vram_share / 100 * 15;
  if (h < EMUV_GIB) h = EMUV_GIB;
  if (h > c->vram_share / 2) h = c->vram_share / 2;
  c->headroom = h;
  const char *hs = get(EMUV_ENV_HEADROOM);
  if (hs != NULL) {
    uint64_t v;
    if (emuv_parse_size(hs, &v) != 0 || v > c->vram_share)
      emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not a size within the VRAM share; using %llu", EMUV_ENV_HEADROOM,
               Q(hs), (unsigned long long)h);
    else c->headroom = v;
  }
  c->large_threshold = 64 * EMUV_MIB;
  const char *lt = get(EMUV_ENV_LARGE_THRESHOLD);
  if (lt != NULL) {
    uint64_t v;
    if (emuv_parse_size(lt, &v) != 0 || v == 0)
      emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not a non-zero size; using 64Mi", EMUV_ENV_LARGE_THRESHOLD, Q(lt));
    else c->large_threshold = v;
  }
  const char *rt = get(EMUV_ENV_OOM_RETRY);
  if (rt != NULL) {
    if (strcmp(rt, "on") == 0) c->oom_retry = EMUV_RETRY_ON;
    else if (strcmp(rt, "off") == 0) c->oom_retry = EMUV_RETRY_OFF;
    else if (strcmp(rt, "auto") == 0) c->oom_retry = EMUV_RETRY_AUTO;
    else emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not auto|on|off; using auto", EMUV_ENV_OOM_RETRY, Q(rt));
  }
  /* Exact, lower case, like every other word of the contract: a writer that sends "Pinned" has a bug that
   * should be seen in the log, not guessed around. */
  const char *sb = get(EMUV_ENV_SPILL_BACKEND);
  if (sb != NULL) {
    if (strcmp(sb, "auto") == 0) c->spill_backend = EMUV_SPILL_AUTO;
    else if (strcmp(sb, "pinned") == 0) c->spill_backend = EMUV_SPILL_PINNED;
    else if (strcmp(sb, "managed") == 0) c->spill_backend = EMUV_SPILL_MANAGED;
    else emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not %s; using auto", EMUV_ENV_SPILL_BACKEND, Q(sb), EMUV_SPILL_BACKENDS);
  }

  const char *gpu = get(EMUV_ENV_GPU);
  if (gpu != NULL) {
    if (valid_gpu(gpu)) snprintf(c->gpu, sizeof c->gpu, "%s", gpu);
    else emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is neither a GPU UUID nor a PCI address; ignored", EMUV_ENV_GPU, Q(gpu));
  }
  const char *sf = get(EMUV_ENV_STATS_FILE);
  if (sf != NULL) {
    if (sf[0] != '/' || strlen(sf) >= sizeof c->stats_path)
      emuv_log(EMUV_LOG_ERROR, "%s=\"%s\" is not an absolute path shorter than %zu bytes; accounting is per process",
               EMUV_ENV_STATS_FILE, emuv_quote(sf, 60, qbuf, sizeof qbuf), sizeof c->stats_path);
    else snprintf(c->stats_path, sizeof c->stats_path, "%s", sf);
  }
}
