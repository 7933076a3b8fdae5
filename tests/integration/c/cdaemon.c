/*
 * cdaemon: a daemon in C served by the ctl control plane through ctl_server.h.
 *
 *     cdaemon NAME CONFIG LOG PORT_FILE
 *
 * - writes numbered lines `seq=N rate=R` to LOG through ctl_log_write_line, one every 200 us
 *   (`ctl rotate` reopens it: no line lost or split);
 * - CONFIG holds the rate, one number from 1 to 1000 on its first line that is not blank or a
 *   `#` comment; `ctl reload` re-reads it, and refuses a bad one naming the line, keeping the
 *   old rate; `ctl check` validates it without applying;
 * - listens on 127.0.0.1 (port written to PORT_FILE each time it opens), greets each client on
 *   a thread of its own as a unit of work, and closes the listener on `ctl drain`, opening it
 *   again on `ctl resume`;
 * - status fields `rate`, `lines_written` and `drain_callbacks` (calls of its drain callback,
 *   the callback form beside the blocking one); counters `lines.written` and `clients.served`;
 * - the command `set-rate rate=N` (an integer from 1 to 1000, checked by the schema);
 * - SIGTERM or SIGINT: stops writing, logs `stopped lines=N`, shuts the server down, exits 0.
 */
#define _GNU_SOURCE
#include "ctl_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *name, *config_path, *port_path;
static _Atomic unsigned long rate = 0;
static _Atomic unsigned long lines_written = 0;
static atomic_int stopping = 0;
static _Atomic unsigned long drain_callbacks = 0;
/* Reload and check never overlap, but set-rate may run beside a reload. */
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static ctl_log *log_file;
static ctl_work *work;
static ctl_counter *lines_counter, *clients_counter;

static void die(const char *what) {
    fprintf(stderr, "cdaemon: %s: %s\n", what, ctl_last_error());
    exit(1);
}

/* Reads the rate from CONFIG: 0 and the value in *out, or -1 with why in msg. */
static int load_config(unsigned long *out, char *msg, size_t msg_len) {
    FILE *f = fopen(config_path, "r");
    if (!f) {
        snprintf(msg, msg_len, "%s: %s", config_path, strerror(errno));
        return -1;
    }
    char line[256];
    int number = 0;
    while (fgets(line, sizeof line, f)) {
        number++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\0' || *p == '#') continue;
        line[strcspn(line, "\n")] = '\0';
        char *end;
        errno = 0;
        unsigned long value = strtoul(p, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        fclose(f);
        if (errno || end == p || *end != '\0' || value < 1 || value > 1000) {
            snprintf(msg, msg_len, "invalid config %s: line %d: `%s` is not a rate (1 to 1000)",
                     config_path, number, p);
            return -1;
        }
        *out = value;
        return 0;
    }
    fclose(f);
    snprintf(msg, msg_len, "invalid config %s: no rate in it", config_path);
    return -1;
}

static int on_reload(void *user, char *msg, size_t msg_len) {
    (void)user;
    unsigned long value;
    pthread_mutex_lock(&config_lock);
    int rc = load_config(&value, msg, msg_len);
    if (rc == 0) {
        unsigned long old = atomic_exchange(&rate, value);
        snprintf(msg, msg_len, "rate %lu -> %lu", old, value);
    }
    pthread_mutex_unlock(&config_lock);
    return rc;
}

static int on_check(void *user, char *msg, size_t msg_len) {
    (void)user;
    unsigned long value;
    if (load_config(&value, msg, msg_len) != 0) return -1;
    snprintf(msg, msg_len, "rate %lu -> %lu", atomic_load(&rate), value);
    return 0;
}

static int on_status(void *user, ctl_status *s) {
    (void)user;
    if (ctl_status_field_u64(s, "rate", atomic_load(&rate)) != 0) return -1;
    if (ctl_status_field_u64(s, "lines_written", atomic_load(&lines_written)) != 0) return -1;
    return ctl_status_field_u64(s, "drain_callbacks", atomic_load(&drain_callbacks));
}

/* The callback form of drain, beside the blocking one the listener uses: only counted. */
static int on_drain(void *user, int draining) {
    (void)user;
    (void)draining;
    atomic_fetch_add(&drain_callbacks, 1);
    return 0;
}

/* `set-rate`: the schema has checked `rate` is an integer from 1 to 1000. */
static int on_set_rate(void *user, const char *args_json, char **reply) {
    (void)user;
    const char *p = strstr(args_json, "\"rate\":");
    if (!p) {
        *reply = strdup("no rate in the arguments");
        return -1;
    }
    unsigned long value = strtoul(p + strlen("\"rate\":"), NULL, 10);
    pthread_mutex_lock(&config_lock);
    unsigned long old = atomic_exchange(&rate, value);
    pthread_mutex_unlock(&config_lock);
    char buf[64];
    snprintf(buf, sizeof buf, "{\"rate\":%lu,\"previous\":%lu}", value, old);
    *reply = strdup(buf);
    return 0;
}

static void *writer(void *arg) {
    (void)arg;
    char line[64];
    while (!atomic_load(&stopping)) {
        unsigned long seq = atomic_load(&lines_written);
        int len = snprintf(line, sizeof line, "seq=%lu rate=%lu", seq, atomic_load(&rate));
        if (ctl_log_write_line(log_file, line, (size_t)len) != 0) {
            fprintf(stderr, "cdaemon: write: %s\n", ctl_last_error());
        } else {
            atomic_store(&lines_written, seq + 1);
            ctl_counter_add(lines_counter, 1);
        }
        usleep(200);
    }
    return NULL;
}

struct client {
    int fd;
    int64_t token;
};

static void *serve_client(void *arg) {
    struct client *c = arg;
    char greeting[128];
    int len = snprintf(greeting, sizeof greeting, "hello %s\n", name);
    if (write(c->fd, greeting, (size_t)len) < 0) { /* the client went away */ }
    close(c->fd);
    ctl_counter_add(clients_counter, 1);
    ctl_work_end(work, c->token);
    free(c);
    return NULL;
}

static void *drain_waker(void *arg) {
    int fd = *(int *)arg;
    ctl_work_wait_draining(work, -1);
    /* A blocked accept returns at once on a listener shut down for reading. */
    shutdown(fd, SHUT_RD);
    return NULL;
}

static void write_port(int port) {
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", port_path);
    FILE *f = fopen(partial, "w");
    if (!f) return;
    fprintf(f, "%d\n", port);
    fclose(f);
    rename(partial, port_path);
}

/* Accepts clients until a drain begins; listens again on resume. Forever. */
static void *listener(void *arg) {
    (void)arg;
    for (;;) {
        ctl_work_wait_resumed(work, -1);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t addr_len = sizeof addr;
        if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0 ||
            getsockname(fd, (struct sockaddr *)&addr, &addr_len) != 0) {
            perror("cdaemon: listen");
            exit(1);
        }
        write_port(ntohs(addr.sin_port));
        pthread_t waker;
        pthread_create(&waker, NULL, drain_waker, &fd);
        for (;;) {
            int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
            if (client < 0) {
                if (errno == EINVAL || ctl_work_is_draining(work)) break;
                usleep(10000);
                continue;
            }
            int64_t token = ctl_work_begin(work);
            if (token < 0) { /* draining: refused */
                close(client);
                continue;
            }
            struct client *c = malloc(sizeof *c);
            c->fd = client;
            c->token = token;
            pthread_t t;
            pthread_create(&t, NULL, serve_client, c);
            pthread_detach(t);
        }
        close(fd);
        pthread_join(waker, NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: cdaemon NAME CONFIG LOG PORT_FILE\n");
        return 2;
    }
    name = argv[1];
    config_path = argv[2];
    port_path = argv[4];
    char msg[CTL_MSG_LEN];
    unsigned long initial;
    if (load_config(&initial, msg, sizeof msg) != 0) {
        fprintf(stderr, "cdaemon: %s\n", msg);
        return 1;
    }
    atomic_store(&rate, initial);

    /* Blocked in every thread, the server's included (they inherit the mask): main waits. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    ctl_builder *b = ctl_builder_new(name);
    if (!b) die("ctl_builder_new");
    if (ctl_builder_version(b, "1.0.0") != 0) die("version");
    if (ctl_builder_reload(b, on_reload, NULL) != 0) die("reload");
    if (ctl_builder_check(b, on_check, NULL) != 0) die("check");
    if (ctl_builder_log_file(b, argv[3], &log_file) != 0) die("log file");
    if (ctl_builder_work_tracker(b, &work) != 0) die("work tracker");
    if (ctl_builder_on_drain(b, on_drain, NULL) != 0) die("on drain");
    if (ctl_builder_status(b, on_status, NULL) != 0) die("status");
    if (ctl_builder_counter(b, "lines.written", "Lines written to the log", &lines_counter) != 0)
        die("counter");
    if (ctl_builder_counter(b, "clients.served", "Clients greeted", &clients_counter) != 0)
        die("counter");
    if (ctl_builder_command(b, "set-rate", "Set the rate until the next reload", CTL_OPERATE,
                            "{\"type\":\"object\",\"properties\":{\"rate\":{\"type\":\"integer\","
                            "\"minimum\":1,\"maximum\":1000,\"description\":\"The new rate\"}},"
                            "\"required\":[\"rate\"],\"additionalProperties\":false}",
                            on_set_rate, NULL) != 0)
        die("command");
    ctl_server *server = ctl_builder_start(b);
    if (!server) die("start");

    pthread_t writer_thread, listener_thread;
    pthread_create(&writer_thread, NULL, writer, NULL);
    pthread_create(&listener_thread, NULL, listener, NULL);
    pthread_detach(listener_thread);

    int sig;
    sigwait(&stop, &sig);
    atomic_store(&stopping, 1);
    pthread_join(writer_thread, NULL);
    int len = snprintf(msg, sizeof msg, "stopped lines=%lu", atomic_load(&lines_written));
    ctl_log_write_line(log_file, msg, (size_t)len);
    if (ctl_server_shutdown(server) != 0) die("shutdown");
    return 0;
}
