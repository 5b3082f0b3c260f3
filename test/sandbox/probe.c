/* Probes the sandbox from inside: each line reports what one attempt got. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, int ok) { printf("%s %s\n", what, ok ? "allowed" : "denied"); }

int main(int argc, char **argv) {
  const char *secret_path = argc > 1 ? argv[1] : "/nonexistent";
  report("read_host_file", open(secret_path, O_RDONLY) >= 0);
  report("read_etc_passwd", open("/etc/passwd", O_RDONLY) >= 0);
  report("write_usr", open("/usr/anvil-probe", O_WRONLY | O_CREAT, 0644) >= 0);
  report("write_tmp", open("/tmp/anvil-probe", O_WRONLY | O_CREAT, 0644) >= 0);
  report("socket", socket(AF_INET, SOCK_STREAM, 0) >= 0);
  report("unix_socket", socket(AF_UNIX, SOCK_STREAM, 0) >= 0);
  report("secret_env", getenv("ANVIL_SECRET") != NULL);
  report("root", getuid() == 0);
  int procs = 0;
  DIR *d = opendir("/proc");
  for (struct dirent *e; d && (e = readdir(d));) procs += e->d_name[0] >= '0' && e->d_name[0] <= '9';
  report("see_host_processes", procs > 3);
  int forks = 0;
  for (int i = 0; i < 500; i++) {
    pid_t p = fork();
    if (p == 0) { pause(); _exit(0); }
    if (p < 0) break;
    forks++;
  }
  report("fork_500", forks >= 500);
  fflush(stdout);
  size_t mb = 0;
  for (; mb < 4096; mb += 64) {
    char *p = malloc(64 << 20);
    if (!p) break;
    memset(p, 1, 64 << 20);
    printf("mb %zu\n", mb + 64);
    fflush(stdout);
  }
  report("allocate_4g", mb >= 4096);
  return 0;
}
