/* The isolation tests' probe (crates/cli/tests/isolation.rs): built static by the test and
 * bound into hako's and Docker's containers, it tries what a container must not be able to do
 * and prints one line per attempt, "PROBE <name> <result>", where the result is "ok" or the
 * errno's name (or "empty", "absent", "present" where said). It never writes to a device or a
 * kernel setting: opening for write is what the isolation checks, so it opens and closes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void result(const char *name, int ok, int err) {
    if (ok)
        printf("PROBE %s ok\n", name);
    else
        printf("PROBE %s %s\n", name, strerrorname_np(err) ? strerrorname_np(err) : "E?");
    fflush(stdout);
}

static void report(const char *name, long rc) { result(name, rc >= 0, errno); }

static int open_mode(const char *mode) {
    if (strcmp(mode, "r") == 0) return O_RDONLY;
    if (strcmp(mode, "w") == 0) return O_WRONLY;
    return O_RDWR;
}

/* Opens an existing path: NAME PATH MODE. */
static void probe_path(const char *name, const char *path, const char *mode) {
    int fd = open(path, open_mode(mode) | O_NOCTTY | O_CLOEXEC);
    int err = errno;
    if (fd >= 0) close(fd);
    result(name, fd >= 0, err);
}

/* Makes a node and opens it: NAME TYPE MAJOR MINOR MODE. Reports NAME.mknod and NAME. */
static void probe_dev(const char *name, const char *type, const char *maj, const char *min,
                      const char *mode) {
    char path[256], label[300];
    mkdir("/tmp", 01777);
    snprintf(path, sizeof path, "/tmp/probe-%s", name);
    unlink(path);
    mode_t kind = strcmp(type, "b") == 0 ? S_IFBLK : S_IFCHR;
    int rc = mknod(path, kind | 0600, makedev(atoi(maj), atoi(min)));
    snprintf(label, sizeof label, "%s.mknod", name);
    report(label, rc);
    if (rc == 0) {
        probe_path(name, path, mode);
        unlink(path);
    } else {
        printf("PROBE %s no-node\n", name);
    }
}

/* Runs fn in a child, so what it changes (namespaces) stays there; the child's exit code is
 * 0 for success or the errno. */
static void in_child(const char *name, int (*fn)(long), long arg) {
    pid_t pid = fork();
    if (pid == 0) _exit(fn(arg) == 0 ? 0 : errno);
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
    result(name, code == 0, code);
}

static int do_unshare(long flag) { return unshare((int)flag); }

static void probe_ptrace(void) {
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    long rc = ptrace(PTRACE_ATTACH, child, 0, 0);
    int err = errno;
    if (rc == 0) {
        waitpid(child, NULL, 0);
        ptrace(PTRACE_DETACH, child, 0, 0);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    result("ptrace", rc == 0, err);
}

static void probe_kcore(void) {
    int fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        result("kcore", 0, errno);
        return;
    }
    char c;
    ssize_t n = read(fd, &c, 1);
    int err = errno;
    close(fd);
    if (n == 0)
        printf("PROBE kcore empty\n");
    else
        result("kcore", n == 1, err);
}

static void probe_sys_write(void) {
    const char *files[] = {"/sys/kernel/uevent_helper", "/sys/kernel/profiling",
                           "/sys/power/state", "/sys/kernel/mm/transparent_hugepage/enabled",
                           "/sys/module/kernel/parameters/panic", NULL};
    for (int i = 0; files[i]; i++) {
        if (access(files[i], F_OK) == 0) {
            probe_path("sys-write", files[i], "w");
            return;
        }
    }
    printf("PROBE sys-write no-file\n");
}

static void probe_cgroup(void) {
    /* cgroup v1 (a directory per hierarchy) or v2 (the container's own directory). */
    const char *dir = access("/sys/fs/cgroup/pids", F_OK) == 0 ? "/sys/fs/cgroup/pids/hako-probe"
                                                                : "/sys/fs/cgroup/hako-probe";
    int rc = mkdir(dir, 0755);
    int err = errno;
    if (rc == 0) rmdir(dir);
    result("cgroup-mkdir", rc == 0, err);
    int found = access("/sys/fs/cgroup/release_agent", F_OK) == 0;
    DIR *d = opendir("/sys/fs/cgroup");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[512];
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s/release_agent", e->d_name);
        if (e->d_name[0] != '.' && access(p, F_OK) == 0) found = 1;
    }
    if (d) closedir(d);
    printf("PROBE release_agent %s\n", found ? "present" : "absent");
}

static void probe_open_by_handle(void) {
    struct {
        struct file_handle h;
        unsigned char bytes[128];
    } fh;
    int mount_id;
    fh.h.handle_bytes = sizeof fh.bytes;
    if (name_to_handle_at(AT_FDCWD, "/etc/hostname", &fh.h, &mount_id, 0) != 0) {
        result("open_by_handle_at", 0, errno);
        return;
    }
    int fd = open_by_handle_at(AT_FDCWD, &fh.h, O_RDONLY);
    int err = errno;
    if (fd >= 0) close(fd);
    result("open_by_handle_at", fd >= 0, err);
}

static void probe_ptmx(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
        result("ptmx", 0, errno);
        return;
    }
    char *name = ptsname(m);
    int s = name ? open(name, O_RDWR | O_NOCTTY) : -1;
    int err = errno;
    if (s >= 0) close(s);
    close(m);
    result("ptmx", s >= 0, err);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *spec = strdup(argv[i]);
        char *f[6] = {0};
        int n = 0;
        for (char *p = strtok(spec, ":"); p && n < 6; p = strtok(NULL, ":")) f[n++] = p;
        const char *what = f[0];
        if (strcmp(what, "dev") == 0 && n == 6) {
            probe_dev(f[1], f[2], f[3], f[4], f[5]);
        } else if (strcmp(what, "path") == 0 && n == 4) {
            probe_path(f[1], f[2], f[3]);
        } else if (strcmp(what, "ptmx") == 0) {
            probe_ptmx();
        } else if (strcmp(what, "add_key") == 0) {
            report("add_key", syscall(SYS_add_key, "user", "hako-probe", "x", 1, -2));
        } else if (strcmp(what, "keyctl") == 0) {
            /* KEYCTL_JOIN_SESSION_KEYRING with a new anonymous keyring. */
            report("keyctl", syscall(SYS_keyctl, 1, NULL));
        } else if (strcmp(what, "init_module") == 0) {
            static const char junk[] = "not a kernel module";
            report("init_module", syscall(SYS_init_module, junk, sizeof junk, ""));
        } else if (strcmp(what, "finit_module") == 0) {
            int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
            report("finit_module", syscall(SYS_finit_module, fd, "", 0));
            if (fd >= 0) close(fd);
        } else if (strcmp(what, "mount") == 0) {
            mkdir("/tmp", 01777);
            long rc = mount("none", "/tmp", "tmpfs", 0, "");
            int err = errno;
            if (rc == 0) umount("/tmp");
            result("mount", rc == 0, err);
        } else if (strcmp(what, "unshare") == 0) {
            struct { const char *name; long flag; } ns[] = {
                {"unshare-user", CLONE_NEWUSER}, {"unshare-mnt", CLONE_NEWNS},
                {"unshare-net", CLONE_NEWNET},   {"unshare-pid", CLONE_NEWPID},
                {"unshare-uts", CLONE_NEWUTS},   {"unshare-ipc", CLONE_NEWIPC},
                {"unshare-cgroup", CLONE_NEWCGROUP}};
            for (unsigned j = 0; j < sizeof ns / sizeof ns[0]; j++)
                in_child(ns[j].name, do_unshare, ns[j].flag);
        } else if (strcmp(what, "clock") == 0) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            report("clock_settime", clock_settime(CLOCK_REALTIME, &now));
        } else if (strcmp(what, "ptrace") == 0) {
            probe_ptrace();
        } else if (strcmp(what, "kcore") == 0) {
            probe_kcore();
        } else if (strcmp(what, "sysctl") == 0) {
            probe_path("sysctl-write", "/proc/sys/vm/drop_caches", "w");
        } else if (strcmp(what, "sys") == 0) {
            probe_sys_write();
        } else if (strcmp(what, "cgroup") == 0) {
            probe_cgroup();
        } else if (strcmp(what, "syslog") == 0) {
            char buf[64];
            report("syslog", klogctl(3, buf, sizeof buf));
        } else if (strcmp(what, "bpf") == 0) {
            unsigned char attr[128] = {0};
            report("bpf", syscall(SYS_bpf, 0, attr, sizeof attr));
        } else if (strcmp(what, "ioperm") == 0) {
            report("ioperm", ioperm(0x80, 1, 1));
        } else if (strcmp(what, "swapon") == 0) {
            report("swapon", syscall(SYS_swapon, "/tmp", 0));
        } else if (strcmp(what, "open_by_handle_at") == 0) {
            probe_open_by_handle();
        } else {
            printf("PROBE %s unknown-probe\n", argv[i]);
        }
        free(spec);
    }
    return 0;
}
