/* EMUV_STATS_FILE names something that is not a stats file emuv may use: a symbolic link (anyone in the
 * container can plant one in the shared directory), a hard link, /dev/null, a FIFO, a directory, a foreign
 * file. The interposer changes nothing there (content, mode), never blocks, says once on stderr why the
 * shared budget is off, and accounts per process. Each case runs in a child of its own (exec of this
 * program under the preloaded shim) whose stderr is kept in a file. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "t.h"

#define LIMIT (32 * MiB)

/* The child: allocate, check per-process (or shared) accounting, exit 0 when it holds. */
static int child(void) {
  alarm(20); /* a hang (a FIFO opened for reading) ends as SIGALRM */
  struct cu c = cu_load();
  CUdeviceptr p = 0;
  if (c.MemAlloc(&p, 8 * MiB) != CUDA_SUCCESS) return 10;
  size_t f = 0, t = 0;
  if (c.MemGetInfo(&f, &t) != CUDA_SUCCESS || t != LIMIT || f != LIMIT - 8 * MiB) return 11;
  if (c.MemFree(p) != CUDA_SUCCESS) return 12;
  return 0;
}

struct result {
  int status;
  int emuv_lines;
  char first[600];
};

static struct result run_case(const char *self, const char *path, int umask077) {
  struct result r = {0};
  char err[640];
  snprintf(err, sizeof err, "%s.stderr", getenv("T_ERRBASE"));
  pid_t p = fork();
  if (p == 0) {
    int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0) _exit(126);
    setenv("EMUV_STATS_FILE", path, 1);
    if (umask077) umask(077);
    execl(self, self, "child", (char *)NULL);
    _exit(127);
  }
  waitpid(p, &r.status, 0);
  FILE *f = fopen(err, "r");
  char line[600];
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, "emuv: ", 6) != 0) continue;
    if (r.emuv_lines++ == 0) snprintf(r.first, sizeof r.first, "%s", line);
  }
  if (f) fclose(f);
  return r;
}

static int exited_ok(int st) { return WIFEXITED(st) && WEXITSTATUS(st) == 0; }

/* One refused path: the child survives with per-process accounting, and says exactly once why. */
static void check_refused(const struct result *r, const char *reason) {
  if (!exited_ok(r->status)) fprintf(stderr, "  child status 0x%x\n", r->status);
  CHECK(exited_ok(r->status));
  CHECK_EQ_U64(r->emuv_lines, 1);
  if (strstr(r->first, reason) == NULL || strstr(r->first, "the shared budget is off") == NULL) {
    fprintf(stderr, "  line: %s  (expected \"%s\")\n", r->first, reason);
    t_fail_now++;
  }
}

static void write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) exit(2);
  fchmod(fd, mode);
  close(fd);
}

static int same_file(const char *path, const char *text, mode_t mode) {
  struct stat st;
  char buf[256] = "";
  if (stat(path, &st) != 0 || (st.st_mode & 07777) != mode) return 0;
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  return strcmp(buf, text) == 0;
}

int main(int argc, char **argv) {
  setenv("EMUV_VRAM_SHARE", "16Mi", 1);
  setenv("EMUV_LIMIT_BYTES", "32Mi", 1);
  setenv("EMUV_OOM_RETRY", "off", 1);
  if (argc > 1) return child();
  char dir[512], path[600], other[600], errbase[600];
  if (!t_mkdtemp(dir, sizeof dir, "emuv-statsfile-XXXXXX")) return 2;
  snprintf(path, sizeof path, "%s/stats.bin", dir);
  snprintf(errbase, sizeof errbase, "%s/child", dir);
  setenv("T_ERRBASE", errbase, 1);
  const char *secret = "the victim's data, not a stats file\n";

  TEST("a symbolic link to another file: the target keeps its mode and content; one emuv: line, per process") {
    snprintf(other, sizeof other, "%s/victim", dir);
    write_file(other, secret, 0600);
    CHECK(symlink(other, path) == 0);
    struct result r = run_case(argv[0], path, 0);
    check_refused(&r, "is a symbolic link");
    CHECK(same_file(other, secret, 0600)); /* before the fix: 0666, world-writable */
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode));
    unlink(path);
    unlink(other);
  }
  TEST("a dangling symbolic link: its target is not created") {
    snprintf(other, sizeof other, "%s/planted-target", dir);
    CHECK(symlink(other, path) == 0);
    struct result r = run_case(argv[0], path, 0);
    check_refused(&r, "is a symbolic link");
    CHECK(access(other, F_OK) != 0 && errno == ENOENT);
    unlink(path);
  }
  TEST("a hard link to another (empty) file: not formatted, mode unchanged; one emuv: line, per process") {
    snprintf(other, sizeof other, "%s/victim2", dir);
    write_file(other, "", 0640);
    CHECK(link(other, path) == 0);
    struct result r = run_case(argv[0], path, 0);
    check_refused(&r, "has 2 links");
    CHECK(same_file(other, "", 0640)); /* before the fix: 64 KiB of stats header, mode 0666 */
    unlink(path);
    unlink(other);
  }
  TEST("a valid stats file that also has a second link is still used (a link alone refuses nothing)") {
    struct result r = run_case(argv[0], path, 0); /* creates and formats it */
    CHECK(exited_ok(r.status));
    snprintf(other, sizeof other, "%s/second-link", dir);
    CHECK(link(path, other) == 0);
    r = run_case(argv[0], path, 0);
    CHECK(exited_ok(r.status));
    CHECK_EQ_U64(r.emuv_lines, 0);
    unlink(other);
    unlink(path);
  }
  TEST("a foreign regular file: content and mode unchanged (no chmod before validation)") {
    write_file(path, secret, 0640);
    struct result r = run_case(argv[0], path, 0);
    check_refused(&r, "is not a stats file");
    CHECK(same_file(path, secret, 0640)); /* before the fix: 0666 */
    unlink(path);
  }
  TEST("EMUV_STATS_FILE=/dev/null: not silently per process, one emuv: line saying why") {
    struct stat before, after;
    CHECK(stat("/dev/null", &before) == 0);
    struct result r = run_case(argv[0], "/dev/null", 0);
    check_refused(&r, "is a character device");
    CHECK(stat("/dev/null", &after) == 0 && after.st_mode == before.st_mode && after.st_uid == before.st_uid);
  }
  TEST("a FIFO: no hang, left as it is, one emuv: line saying why") {
    CHECK(mkfifo(path, 0600) == 0);
    struct result r = run_case(argv[0], path, 0);
    check_refused(&r, "is a FIFO");
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISFIFO(st.st_mode) && (st.st_mode & 07777) == 0600);
    unlink(path);
  }
  TEST("a directory: one emuv: line saying why") {
    CHECK(mkdir(path, 0700) == 0);
    struct result r = run_case(argv[0], path, 0);
    check_refused(&r, "is a directory");
    rmdir(path);
  }
  TEST("no file yet: created as a stats file, mode 0666 despite umask 077, nothing said") {
    struct result r = run_case(argv[0], path, 1);
    CHECK(exited_ok(r.status));
    CHECK_EQ_U64(r.emuv_lines, 0);
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0666 &&
          st.st_size == EMUV_STATS_FILE_SIZE);
    const struct emuv_stats_hdr *h = stats_map(path);
    CHECK(h != NULL && h->magic == EMUV_STATS_MAGIC && h->init_state == EMUV_INIT_READY &&
          h->ver_minor == EMUV_STATS_VER_MINOR);
    if (h) munmap((void *)h, EMUV_STATS_FILE_SIZE);
    unlink(path);
  }
  TEST("an empty file of this user (a creator that died before formatting): formatted, then opened to all") {
    write_file(path, "", 0600);
    struct result r = run_case(argv[0], path, 1);
    CHECK(exited_ok(r.status));
    CHECK_EQ_U64(r.emuv_lines, 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0666 && st.st_size == EMUV_STATS_FILE_SIZE);
    unlink(path);
  }
  TEST("a file left half-formatted (header BUSY, full size): formatted again, not refused") {
    struct emuv_stats_hdr h;
    memset(&h, 0, sizeof h);
    h.magic = EMUV_STATS_MAGIC;
    h.ver_major = EMUV_STATS_VER_MAJOR;
    h.init_state = EMUV_INIT_BUSY;
    h.generation = 41;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0666);
    CHECK(fd >= 0 && pwrite(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && ftruncate(fd, EMUV_STATS_FILE_SIZE) == 0);
    close(fd);
    struct result r = run_case(argv[0], path, 0);
    CHECK(exited_ok(r.status));
    CHECK_EQ_U64(r.emuv_lines, 0);
    const struct emuv_stats_hdr *m = stats_map(path);
    CHECK(m != NULL && m->init_state == EMUV_INIT_READY && m->generation == 42);
    if (m) munmap((void *)m, EMUV_STATS_FILE_SIZE);
    unlink(path);
  }
  unlink(errbase);
  char e2[640];
  snprintf(e2, sizeof e2, "%s.stderr", errbase);
  unlink(e2);
  rmdir(dir);
  T_DONE();
}
