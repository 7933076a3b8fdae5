/* A daemon that embeds no control server, for the `ctl signal` tests.
 *
 *   sigd MODE NAME PIDFILE [LOG]
 *
 * MODE says what it does with SIGHUP:
 *   none    nothing: the default action, which terminates it
 *   ignore  signal(SIGHUP, SIG_IGN)
 *   block   sigprocmask(SIG_BLOCK, {SIGHUP})
 *   catch   a handler that sets a flag; the main loop writes "hup" to LOG and reopens nothing
 *   reopen  the same, and the main loop reopens LOG first (open(O_WRONLY|O_APPEND|O_CREAT))
 *
 * NAME becomes its /proc/PID/comm (prctl PR_SET_NAME). With LOG, it writes "line N" lines to
 * it continuously, each with one write(2), N counting from 1; without, it waits in pause().
 * SIGUSR1 makes it write "usr1" to LOG: a test's barrier (a SIGHUP sent before the SIGUSR1 is
 * handled before the "usr1" line is written). It writes PIDFILE (to a temporary name, renamed
 * into place) once its dispositions are set, so a test that sees the pid file sees them.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_hup, got_usr1;

static void on_hup(int sig) { (void)sig; got_hup = 1; }
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static int open_log(const char *path) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror("sigd: open the log");
        exit(2);
    }
    return fd;
}

static void say(int fd, const char *text) {
    if (fd >= 0 && write(fd, text, strlen(text)) < 0) {
        perror("sigd: write");
        exit(2);
    }
}

static void write_pidfile(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        perror("sigd: write the pid file");
        exit(2);
    }
}

static void handle(int sig, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = handler;
    sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: sigd MODE NAME PIDFILE [LOG]\n");
        return 2;
    }
    const char *mode = argv[1], *log = argc > 4 ? argv[4] : NULL;
    prctl(PR_SET_NAME, argv[2], 0, 0, 0);
    handle(SIGUSR1, on_usr1);
    int reopen = !strcmp(mode, "reopen");
    if (!strcmp(mode, "ignore")) {
        signal(SIGHUP, SIG_IGN);
    } else if (!strcmp(mode, "block")) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, NULL);
    } else if (reopen || !strcmp(mode, "catch")) {
        handle(SIGHUP, on_hup);
    } else if (strcmp(mode, "none")) {
        fprintf(stderr, "sigd: unknown mode %s\n", mode);
        return 2;
    }
    int fd = log ? open_log(log) : -1;
    write_pidfile(argv[3]);
    struct timespec between = {0, 200 * 1000};
    for (unsigned long n = 1;; n++) {
        if (got_hup) {
            got_hup = 0;
            if (reopen) {
                int next = open_log(log);
                close(fd);
                fd = next;
            }
            say(fd, "hup\n");
        }
        if (got_usr1) {
            got_usr1 = 0;
            say(fd, "usr1\n");
        }
        if (fd < 0) {
            pause();
            continue;
        }
        char line[64];
        snprintf(line, sizeof line, "line %lu\n", n);
        say(fd, line);
        nanosleep(&between, NULL);
    }
}
