/* Processes of different users in one container share one budget even with fs.protected_regular on
 * (systemd's default, Ubuntu's too): the kernel then refuses an O_CREAT open of an existing file in a
 * sticky world-writable directory when the file belongs neither to the opener nor to the directory's
 * owner. The interposer opens an existing stats file without O_CREAT, so the rule does not apply to it;
 * and the agent creates the file itself (owned by the directory's owner, exempt). Both are checked here
 * with the rule really on: the test sets the sysctl for its run and puts the old value back. Needs root
 * (to switch the sysctl and to run processes as two users), like the cluster layer. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "t.h"

#define SYSCTL "/proc/sys/fs/protected_regular"
#define UID_A 61001
#define UID_B 61002

static char old_value[16];

static void restore(void) {
  if (old_value[0] == '\0') return;
  int fd = open(SYSCTL, O_WRONLY);
  if (fd >= 0) {
    (void)!write(fd, old_value, strlen(old_value));
    close(fd);
  }
}

static int set_sysctl(const char *v) {
  int fd = open(SYSCTL, O_RDWR);
  if (fd < 0) return -1;
  ssize_t n = read(fd, old_value, sizeof old_value - 1);
  if (n <= 0) {
    close(fd);
    return -1;
  }
  old_value[n] = '\0';
  atexit(restore);
  int ok = pwrite(fd, v, strlen(v), 0) == (ssize_t)strlen(v);
  close(fd);
  return ok ? 0 : -1;
}

/* Child modes, run as another user: "hold" allocates 8 MiB, says so on fd, and waits to be killed;
 * "probe" tries an O_CREAT open itself (refused when the kernel rule applies to this file), then looks
 * whether it sees the holder's 8 MiB in the shared budget. Exit status: NOT_SHARED | CREAT_REFUSED bits,
 * 10 and up for errors. */
#define NOT_SHARED 1
#define CREAT_REFUSED 2
static int child(const char *mode, int fd, const char *path) {
  struct cu c = cu_load();
  if (strcmp(mode, "hold") == 0) {
    CUdeviceptr p = 0;
    if (c.MemAlloc(&p, 8 * MiB) != CUDA_SUCCESS) return 10;
    if (write(fd, "x", 1) != 1) return 11;
    for (;;) pause();
  }
  int probe = open(path, O_RDWR | O_CREAT, 0666);
  int refused = probe < 0 && errno == EACCES;
  if (probe >= 0) close(probe);
  size_t fr = 0, tot = 0;
  if (c.MemGetInfo(&fr, &tot) != CUDA_SUCCESS) return 12;
  if (tot != 64 * MiB) return 13;
  if (fr != 56 * MiB && fr != 64 * MiB) return 14;
  return (fr == 56 * MiB ? 0 : NOT_SHARED) | (refused ? CREAT_REFUSED : 0);
}

static pid_t spawn(const char *self, const char *mode, uid_t uid, int fd, const char *path) {
  pid_t p = fork();
  if (p == 0) {
    char fds[16];
    snprintf(fds, sizeof fds, "%d", fd);
    if (setgid(uid) != 0 || setuid(uid) != 0) _exit(126);
    execl(self, self, mode, fds, path, (char *)NULL);
    _exit(127);
  }
  return p;
}

static int wait_rc(pid_t p) {
  int st = 0;
  waitpid(p, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* user A holds 8 MiB, user B must see it; returns B's exit code */
static int two_users(const char *self, const char *path, uid_t *file_owner) {
  int pfd[2];
  if (pipe(pfd) != 0) return -1;
  pid_t a = spawn(self, "hold", UID_A, pfd[1], path);
  close(pfd[1]);
  char x;
  int rc = -2;
  if (read(pfd[0], &x, 1) == 1) {
    struct stat st;
    if (stat(path, &st) == 0) *file_owner = st.st_uid;
    rc = wait_rc(spawn(self, "probe", UID_B, -1, path));
  }
  close(pfd[0]);
  kill(a, SIGKILL);
  wait_rc(a);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 3) return child(argv[1], atoi(argv[2]), argv[3]);
  setenv("EMUV_VRAM_SHARE", "16Mi", 1);
  setenv("EMUV_LIMIT_BYTES", "64Mi", 1);
  setenv("EMUV_OOM_RETRY", "off", 1);
  TEST("runs as root with fs.protected_regular switched on for the test") {
    CHECK(geteuid() == 0);
    CHECK(set_sysctl("1") == 0);
  }
  if (t_fail_total) T_DONE();
  /* every user may reach the directories (the test's own TMPDIR is private to root) */
  char base[] = "/tmp/emuv-protected-XXXXXX", dir1[128], dir2[128], path1[160], path2[160];
  if (mkdtemp(base) == NULL || chmod(base, 0755) != 0) return 2;
  snprintf(dir1, sizeof dir1, "%s/created-by-a-process", base);
  snprintf(dir2, sizeof dir2, "%s/created-by-the-agent", base);
  mkdir(dir1, 0755);
  mkdir(dir2, 0755);
  chmod(dir1, 01777); /* the allocation's stats directory: sticky, world-writable, owned by the agent */
  chmod(dir2, 01777);
  snprintf(path1, sizeof path1, "%s/stats.bin", dir1);
  snprintf(path2, sizeof path2, "%s/stats.bin", dir2);

  TEST("the first process's user owns the file; a second user still shares the budget (no O_CREAT on open)") {
    setenv("EMUV_STATS_FILE", path1, 1);
    uid_t owner = 0;
    int rc = two_users(argv[0], path1, &owner);
    CHECK_EQ_U64(owner, UID_A); /* the case the kernel rule is about: neither B's nor the directory owner's */
    CHECK_EQ_U64(rc, CREAT_REFUSED); /* the rule is in force for B, and B shares the budget all the same */
  }
  TEST("the agent's empty file (owned by the directory's owner) is shared by two users") {
    int fd = open(path2, O_RDWR | O_CREAT | O_EXCL, 0666); /* what Allocate does (host-prep.ts) */
    CHECK(fd >= 0);
    if (fd >= 0) {
      fchmod(fd, 0666);
      close(fd);
    }
    setenv("EMUV_STATS_FILE", path2, 1);
    uid_t owner = 99;
    int rc = two_users(argv[0], path2, &owner);
    CHECK_EQ_U64(owner, 0);
    CHECK_EQ_U64(rc, 0); /* exempt from the rule, and shared */
  }
  restore();
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", base);
  (void)!system(cmd);
  T_DONE();
}
