/*
 * faultfs: an LD_PRELOAD shim that injects disk faults into the sync calls of
 * an unmodified process (here: the real baton-controller binary).
 *
 * Wrapped (via dlsym(RTLD_NEXT)): fsync, fdatasync, sync_file_range, syncfs.
 * `strace -f -e trace=fsync,fdatasync,sync_file_range,msync` on a controller
 * shows redb syncing with fdatasync (every commit) and fsync (the data
 * directory, once, when raft.redb is created); it uses neither msync nor
 * sync_file_range. msync takes an address, not a descriptor, so it cannot be
 * limited to a path prefix and is deliberately not wrapped.
 *
 * Environment (read once, at load):
 *   BATON_FAULTFS_CONTROL  file whose content selects the behaviour:
 *                            ok          pass through (also: missing/unreadable file)
 *                            fail        return -1 with errno EIO, without syncing
 *                            stall <ms>  sleep <ms>, then do the real call
 *                          re-read at most every 10 ms, when its mtime, size or
 *                          inode changed (write a temp file and rename it over).
 *   BATON_FAULTFS_PREFIX   only descriptors whose /proc/self/fd/N target starts
 *                          with this (canonical) path are affected; unset or
 *                          empty: none are (so logs and stderr never are).
 *
 * Every injected fault is reported on stderr as one line starting with
 * "faultfs: " (tests look for it to know the fault really hit).
 *
 * Built by the test harness: cc -shared -fPIC -O2 -o libfaultfs.so faultfs.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_OK = 0, MODE_FAIL = 1, MODE_STALL = 2 };

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_sync_file_range)(int, off64_t, off64_t, unsigned int);
static int (*real_syncfs)(int);

static char control_path[4096];
static char prefix[4096];
static size_t prefix_len;

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static int current_mode = MODE_OK;
static long current_stall_ms = 0;
static long long last_check_ns = -1;
static struct stat last_stat;
static int have_stat = 0;

#define RECHECK_NS (10LL * 1000 * 1000)

static void copy_env(const char *name, char *dst, size_t cap) {
    const char *v = getenv(name);
    if (v == NULL) {
        dst[0] = '\0';
        return;
    }
    strncpy(dst, v, cap - 1);
    dst[cap - 1] = '\0';
}

static void *resolve(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    return f;
}

__attribute__((constructor)) static void faultfs_init(void) {
    copy_env("BATON_FAULTFS_CONTROL", control_path, sizeof control_path);
    copy_env("BATON_FAULTFS_PREFIX", prefix, sizeof prefix);
    prefix_len = strlen(prefix);
    real_fsync = (int (*)(int))resolve("fsync");
    real_fdatasync = (int (*)(int))resolve("fdatasync");
    real_sync_file_range = (int (*)(int, off64_t, off64_t, unsigned int))resolve("sync_file_range");
    real_syncfs = (int (*)(int))resolve("syncfs");
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Parses the control file's content into (mode, stall_ms). */
static void parse_control(const char *text, int *mode, long *stall_ms) {
    while (*text == ' ' || *text == '\t' || *text == '\n') text++;
    if (strncmp(text, "fail", 4) == 0) {
        *mode = MODE_FAIL;
        *stall_ms = 0;
    } else if (strncmp(text, "stall", 5) == 0) {
        long ms = strtol(text + 5, NULL, 10);
        *mode = ms > 0 ? MODE_STALL : MODE_OK;
        *stall_ms = ms > 0 ? ms : 0;
    } else {
        *mode = MODE_OK;
        *stall_ms = 0;
    }
}

/* The behaviour now: re-reads the control file at most every RECHECK_NS. */
static int current(long *stall_ms) {
    pthread_mutex_lock(&state_lock);
    long long now = now_ns();
    if (control_path[0] != '\0' && (last_check_ns < 0 || now - last_check_ns >= RECHECK_NS)) {
        last_check_ns = now;
        struct stat st;
        if (stat(control_path, &st) != 0) {
            current_mode = MODE_OK;
            current_stall_ms = 0;
            have_stat = 0;
        } else if (!have_stat || st.st_ino != last_stat.st_ino || st.st_size != last_stat.st_size ||
                   st.st_mtim.tv_sec != last_stat.st_mtim.tv_sec ||
                   st.st_mtim.tv_nsec != last_stat.st_mtim.tv_nsec) {
            char buf[128];
            int fd = open(control_path, O_RDONLY | O_CLOEXEC);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
            if (fd >= 0) close(fd);
            buf[n > 0 ? n : 0] = '\0';
            parse_control(buf, &current_mode, &current_stall_ms);
            last_stat = st;
            have_stat = 1;
        }
    }
    int mode = current_mode;
    *stall_ms = current_stall_ms;
    pthread_mutex_unlock(&state_lock);
    return mode;
}

/* True when `fd` names a file under the prefix; fills `target`. */
static int under_prefix(int fd, char *target, size_t cap) {
    if (prefix_len == 0) return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, cap - 1);
    if (n < 0) return 0;
    target[n] = '\0';
    return (size_t)n >= prefix_len && strncmp(target, prefix, prefix_len) == 0;
}

static void report(const char *call, int fd, const char *target, const char *what) {
    char line[4096 + 256];
    int n = snprintf(line, sizeof line, "faultfs: %s(%d -> %s): %s\n", call, fd, target, what);
    if (n > 0) {
        ssize_t ignored = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)ignored;
    }
}

/* Applies the fault for a sync of `fd`: 0 to go on with the real call, -1
 * (errno EIO) to fail it. */
static int inject(const char *call, int fd) {
    char target[4096];
    if (!under_prefix(fd, target, sizeof target)) return 0;
    long stall_ms = 0;
    int mode = current(&stall_ms);
    if (mode == MODE_FAIL) {
        report(call, fd, target, "injected EIO");
        errno = EIO;
        return -1;
    }
    if (mode == MODE_STALL) {
        char what[64];
        snprintf(what, sizeof what, "injected stall of %ld ms", stall_ms);
        report(call, fd, target, what);
        struct timespec ts = {stall_ms / 1000, (stall_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return 0;
}

int fsync(int fd) {
    int saved = errno;
    if (inject("fsync", fd) != 0) return -1;
    errno = saved;
    if (real_fsync == NULL) real_fsync = (int (*)(int))resolve("fsync");
    return real_fsync(fd);
}

int fdatasync(int fd) {
    int saved = errno;
    if (inject("fdatasync", fd) != 0) return -1;
    errno = saved;
    if (real_fdatasync == NULL) real_fdatasync = (int (*)(int))resolve("fdatasync");
    return real_fdatasync(fd);
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
    int saved = errno;
    if (inject("sync_file_range", fd) != 0) return -1;
    errno = saved;
    if (real_sync_file_range == NULL)
        real_sync_file_range = (int (*)(int, off64_t, off64_t, unsigned int))resolve("sync_file_range");
    return real_sync_file_range(fd, offset, nbytes, flags);
}

int syncfs(int fd) {
    int saved = errno;
    if (inject("syncfs", fd) != 0) return -1;
    errno = saved;
    if (real_syncfs == NULL) real_syncfs = (int (*)(int))resolve("syncfs");
    return real_syncfs(fd);
}
