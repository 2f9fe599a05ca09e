/* emuv test probe: the workload container of the cluster tests. Prints what the runtime gave it
 * (environment, mounts, device nodes, the entries of any directory named on the command line) between
 * two marker lines, then stays up until SIGTERM/SIGINT and exits 0.
 * Output lines:  env <NAME>=<value> | mount <mount point> <options> | dev <path> <c|b> <major>:<minor>
 *                | ls <dir>/<name> */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

extern char **environ;

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void print_mounts(void) {
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (!f) return;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    /* fields: id parent major:minor root mountpoint options ... */
    char root[1024], point[1024], opts[512];
    if (sscanf(line, "%*s %*s %*s %1023s %1023s %511s", root, point, opts) == 3)
      printf("mount %s %s\n", point, opts);
  }
  fclose(f);
}

static void print_devices(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (lstat(path, &st) != 0) continue;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
      printf("dev %s %c %u:%u\n", path, S_ISCHR(st.st_mode) ? 'c' : 'b', major(st.st_rdev), minor(st.st_rdev));
  }
  closedir(d);
}

static void print_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    printf("ls %s: cannot open\n", dir);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) printf("ls %s/%s\n", dir, e->d_name);
  closedir(d);
}

int main(int argc, char **argv) {
  struct sigaction stop = {0};
  stop.sa_handler = on_stop;
  sigaction(SIGINT, &stop, NULL);
  sigaction(SIGTERM, &stop, NULL);
  puts("EMUV-PROBE BEGIN");
  for (char **e = environ; *e; e++) printf("env %s\n", *e);
  print_mounts();
  print_devices("/dev");
  for (int i = 1; i < argc; i++) print_dir(argv[i]);
  puts("EMUV-PROBE END");
  fflush(stdout);
  for (;;) pause();
}
