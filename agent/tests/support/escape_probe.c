/* escape_probe: what the hostile tests run inside an image task, where
 * busybox has no applet for either: built static by the test.
 *
 *   escape_probe chroot PATH   the classic chroot escape (mkdir x; chroot x;
 *                              climb with ".."; chroot .), then read PATH
 *   escape_probe ptrace        every visible process: its command line and
 *                              whether PTRACE_ATTACH takes it
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int escape(const char *path) {
    mkdir("x", 0755);
    if (chroot("x") != 0) {
        printf("chroot x: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < 64; i++)
        if (chdir("..") != 0)
            break;
    if (chroot(".") != 0) {
        printf("chroot .: %s\n", strerror(errno));
        return 1;
    }
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("open %s: %s\n", path, strerror(errno));
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("READ %s\n", buf);
    return 0;
}

static int trace(void) {
    DIR *proc = opendir("/proc");
    struct dirent *e;
    if (!proc) {
        printf("opendir /proc: %s\n", strerror(errno));
        return 1;
    }
    while ((e = readdir(proc))) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        char path[64], cmd[256] = "";
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, cmd, sizeof cmd - 1);
            close(fd);
            for (ssize_t i = 0; i < n - 1; i++)
                if (!cmd[i])
                    cmd[i] = ' ';
            cmd[n > 0 ? n : 0] = 0;
        }
        if (ptrace(PTRACE_ATTACH, pid, 0, 0) == 0) {
            waitpid(pid, 0, __WALL);
            ptrace(PTRACE_DETACH, pid, 0, 0);
            printf("pid %d [%s]: ATTACHED\n", pid, cmd);
        } else {
            printf("pid %d [%s]: %s\n", pid, cmd, strerror(errno));
        }
    }
    closedir(proc);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc == 3 && !strcmp(argv[1], "chroot"))
        return escape(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "ptrace"))
        return trace();
    fprintf(stderr, "usage: escape_probe chroot PATH | ptrace\n");
    return 2;
}
