/*
 * jitkube's compiled front end: `jitkube kubectl …` (or the `kubectl` shim) without
 * starting Python.
 *
 * Why: a warm `jitkube kubectl get pods` spends ~12-16 ms starting the Python
 * interpreter only to hand its argv, environment and descriptors to the warm server
 * (jitkube/warm.py), on top of kubectl's own ~90 ms. This program speaks the same
 * socket protocol as warm.attempt()/_follow() and starts in ~1 ms (measured:
 * benchmarks/kubectl_overhead.py). `jitkube shim install` compiles it with the
 * machine's C compiler; jitkube/front.py writes front_config.h.
 *
 * It decides one thing only: whether to offer the call to the warm server. Whenever it
 * is not sure (not a hot command, JITKUBE_WARM set to anything but a plain "on", no
 * usable socket path, no server, a refusal, any error before the server accepted), it
 * execs the Python jitkube with the same arguments, which decides for real; nothing has
 * run by then. The worker in the server parses, judges and runs the call with exactly
 * the code an in-process call runs.
 *
 * Safety as in warm.py: the socket is found in the caller's private runtime directory
 * and the server's uid is checked with SO_PEERCRED (Linux), so the call only ever goes
 * to a process of the same user.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

/* JK_TAG, JK_MARKER, JK_KUBECTL_SHIM (1: prepend "kubectl", the PATH shim) and
   jk_fallback[] (NULL-terminated argv of the Python jitkube) */
#include "front_config.h"

extern char **environ;

/* jitkube.shim.is_shim() finds this in the binary: the runner never runs it as kubectl. */
__attribute__((used)) static const char jk_marker[] = JK_MARKER " " JK_TAG;

#define MAX_FRAME (4u * 1024u * 1024u) /* warm.MAX_FRAME */
#define EXIT_INTERNAL 71               /* errors.ExitCode.INTERNAL */

static int jk_sock = -1;

/* A growing byte buffer for the frame. */
struct buf {
    char *data;
    size_t len, cap;
    int failed;
};

static void put(struct buf *b, const void *p, size_t n) {
    if (b->failed)
        return;
    if (b->len + n > MAX_FRAME + 4) {
        b->failed = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void field(struct buf *b, const char *s) {
    if (b->len > 4)
        put(b, "", 1); /* NUL separator */
    put(b, s, strlen(s));
}

/* warm.hot_command(): `[global options] kubectl|check …`. */
static int hot_command(char **args, int n) {
    static const char *const with_value[] = {"--agent", "--reason", "--approval-timeout",
                                             "--output", "-o", NULL};
    int i = 0;
    while (i < n) {
        const char *arg = args[i];
        int takes = 0;
        for (const char *const *v = with_value; *v; v++)
            if (strcmp(arg, *v) == 0)
                takes = 1;
        if (takes)
            i += 2;
        else if (arg[0] == '-')
            i += 1;
        else
            return strcmp(arg, "kubectl") == 0 || strcmp(arg, "check") == 0;
    }
    return 0;
}

/* The warm server only when JITKUBE_WARM is unset, empty or plainly on; any other
   value goes to Python, which knows every spelling of "off". */
static int warm_allowed(void) {
    const char *v = getenv("JITKUBE_WARM");
    if (!v || !*v)
        return 1;
    return strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
           strcasecmp(v, "on") == 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* warm.socket_path(); 0 when the path is not certain or would not fit. */
static int socket_path(char *out, size_t size) {
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (runtime && runtime[0] == '/' && is_dir(runtime))
        n = snprintf(out, size, "%s/jitkube/warm-%s.sock", runtime, JK_TAG);
    else if (state && state[0] == '/')
        n = snprintf(out, size, "%s/jitkube/warm-%s.sock", state, JK_TAG);
    else if (home && home[0] == '/')
        n = snprintf(out, size, "%s/.local/state/jitkube/warm-%s.sock", home, JK_TAG);
    else
        return 0;
    return n > 0 && (size_t)n < size && n < 104;
}

/* The environment as Python's os.environ sees it: entries with '=', first of a name.
   Names already sent sit in an open-addressing table: linear in the environment's size
   (comparing each entry with all earlier ones took 40 s for 80,000 entries). */
static void put_environment(struct buf *b) {
    size_t count = 0, slots = 64;
    for (char **e = environ; *e; e++)
        count++;
    while (slots < 2 * count)
        slots *= 2;
    char **sent = calloc(slots, sizeof *sent);
    if (!sent) {
        b->failed = 1;
        return;
    }
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t key = (size_t)(eq - *e) + 1; /* with the '=' */
        uint64_t h = 0xcbf29ce484222325u;
        for (size_t i = 0; i < key; i++)
            h = (h ^ (unsigned char)(*e)[i]) * 0x100000001b3u;
        size_t slot = (size_t)h & (slots - 1);
        while (sent[slot] && strncmp(sent[slot], *e, key) != 0)
            slot = (slot + 1) & (slots - 1);
        if (sent[slot])
            continue; /* a later entry of a name already sent */
        sent[slot] = *e;
        field(b, *e);
    }
    free(sent);
}

/* Python's start-up (PEP 538) puts LC_CTYPE=C.UTF-8 into its own environment when the
   LC_CTYPE locale is the legacy "C" one, so the Python jitkube sends (and runs kubectl
   with) that variable: do the same. 0 when Python would also print a warning about it. */
static int coerce_locale_as_python(void) {
    const char *mode = getenv("PYTHONCOERCECLOCALE");
    const char *all = getenv("LC_ALL");
    if ((mode && strcmp(mode, "0") == 0) || (all && *all))
        return 1;
    setlocale(LC_CTYPE, "");
    const char *ctype = setlocale(LC_CTYPE, NULL);
    if (!ctype || strcmp(ctype, "C") != 0)
        return 1;
    if (mode && strcmp(mode, "warn") == 0)
        return 0;
    static const char *const targets[] = {"C.UTF-8", "C.utf8", "UTF-8", NULL};
    for (const char *const *t = targets; *t; t++) {
        if (!setlocale(LC_CTYPE, *t))
            continue;
        const char *codeset = nl_langinfo(CODESET);
        if (codeset && *codeset) {
            setenv("LC_CTYPE", *t, 1);
            break;
        }
        setlocale(LC_CTYPE, "");
    }
    setlocale(LC_CTYPE, "C");
    return 1;
}

static void forward(int sig) {
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    if (send(jk_sock, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the worker is gone: the loop below sees it */
    }
    errno = saved;
}

static void on_signal(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void suspend(int sig) {
    /* Ctrl-Z: the worker stops kubectl, then this process stops as usual; once the
       shell continues it (fg/bg), kubectl continues too. */
    int saved = errno;
    forward(sig);
    on_signal(SIGTSTP, SIG_DFL, 0);
    kill(getpid(), SIGTSTP); /* SA_NODEFER: stops here until SIGCONT */
    on_signal(SIGTSTP, suspend, SA_NODEFER | SA_RESTART);
    forward(SIGCONT);
    errno = saved;
}

/* warm._follow(): forward signals until the worker reports its exit code. */
static int follow(void) {
    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH};
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        on_signal(forwarded[i], forward, SA_RESTART);
    on_signal(SIGTSTP, suspend, SA_NODEFER | SA_RESTART);
    unsigned char reply[2], chunk[2];
    size_t got = 0;
    for (;;) { /* as _follow: "X" + code or "K" + signal ends it; else read to the end */
        ssize_t r = recv(jk_sock, chunk, got < 2 ? 2 - got : sizeof chunk, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && got < 2; i++)
            reply[got++] = chunk[i];
        if (got == 2 && reply[0] == 'X')
            _exit(reply[1]);
        if (got == 2 && reply[0] == 'K' &&
            (reply[1] == SIGTERM || reply[1] == SIGHUP || reply[1] == SIGQUIT)) {
            /* The worker died of this signal where an in-process call would have: so do we. */
            sigset_t set;
            on_signal(reply[1], SIG_DFL, 0);
            sigemptyset(&set);
            sigaddset(&set, reply[1]);
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            kill(getpid(), reply[1]);
            _exit(128 + reply[1]);
        }
    }
    static const char lost[] = "jitkube: the warm server's worker ended without an exit code; "
                               "run again with JITKUBE_WARM=0 and report it\n";
    if (write(2, lost, sizeof lost - 1) < 0) {
        /* nothing more to say */
    }
    return EXIT_INTERNAL;
}

enum tried { UNTRIED, ABSENT, FAILED };

/* warm.attempt(): -1 when nothing ran (run the Python jitkube), else the exit code.
   *tried says ABSENT when no server answered or it refused (Python then starts one),
   FAILED when the call could not be handed over, UNTRIED when no socket was tried. */
static int attempt(char **args, int n, enum tried *tried) {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (!socket_path(path, sizeof path))
        return -1;
    /* warm._foreground_tty(): a background job of its terminal goes to Python, which
       runs it in-process, so that a prompt stops it (SIGTTIN) instead of a worker in
       another session reading keystrokes meant for the foreground. */
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty >= 0 && tcgetpgrp(tty) != getpgrp()) {
        close(tty);
        return -1;
    }
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        if (tty >= 0)
            close(tty);
        return -1;
    }
    *tried = FAILED;
    if (sock <= 2 || (tty >= 0 && tty <= 2)) {
        /* stdin, stdout or stderr is closed and the socket (or the terminal) took its
           number: it would go to the worker as the caller's own descriptor. Python puts
           /dev/null there and runs it (without knocking again). */
        close(sock);
        if (tty >= 0)
            close(tty);
        return -1;
    }
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    struct ucred cred;
    socklen_t cred_len = sizeof cred;
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
        cred.uid != getuid()) {
        close(sock);
        if (tty >= 0)
            close(tty);
        *tried = ABSENT;
        return -1;
    }

    struct buf b = {0};
    put(&b, "\0\0\0\0", 4); /* length, filled in below */
    char *cwd = getcwd(NULL, 0);
    mode_t mask = umask(077);
    umask(mask);
    char number[32];
    field(&b, "JKW1");
    field(&b, cwd ? cwd : "");
    snprintf(number, sizeof number, "%u", (unsigned)mask);
    field(&b, number);
    snprintf(number, sizeof number, "%d", n);
    field(&b, number);
    for (int i = 0; i < n; i++)
        field(&b, args[i]);
    put_environment(&b);
    int no_cwd = cwd == NULL;
    free(cwd);
    if (no_cwd || b.failed || b.len - 4 > MAX_FRAME) {
        free(b.data);
        close(sock);
        if (tty >= 0)
            close(tty);
        return -1;
    }
    uint32_t size = (uint32_t)(b.len - 4);
    b.data[0] = (char)(size >> 24);
    b.data[1] = (char)(size >> 16);
    b.data[2] = (char)(size >> 8);
    b.data[3] = (char)size;

    int fds[4] = {0, 1, 2, tty};
    size_t nfds = fds[3] < 0 ? 3 : 4;
    union {
        char space[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {b.data, b.len};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));

    int ok = 0;
    ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (sent > 0) {
        size_t done = (size_t)sent;
        while (done < b.len) {
            ssize_t more = send(sock, b.data + done, b.len - done, MSG_NOSIGNAL);
            if (more < 0 && errno == EINTR)
                continue;
            if (more <= 0)
                break;
            done += (size_t)more;
        }
        ok = done == b.len;
    }
    if (fds[3] >= 0)
        close(fds[3]);
    free(b.data);
    char accepted = 0;
    if (ok) {
        ssize_t r;
        do
            r = recv(sock, &accepted, 1, 0);
        while (r < 0 && errno == EINTR);
        if (r == 0 || (r == 1 && accepted != 'A'))
            *tried = ABSENT; /* it refused (its code changed) and exits: start anew */
    }
    if (!ok || accepted != 'A') {
        close(sock);
        return -1; /* nothing ran yet */
    }
    jk_sock = sock;
    return follow();
}

int main(int argc, char **argv) {
    int shim = JK_KUBECTL_SHIM;
    int n = (argc > 0 ? argc - 1 : 0) + shim;
    size_t fallback = 0;
    while (jk_fallback[fallback])
        fallback++;
    char **args = calloc((size_t)n + fallback + 1, sizeof *args);
    if (!args)
        return EXIT_INTERNAL;
    /* The fallback's argv first, then jitkube's own arguments. */
    char **own = args + fallback;
    for (size_t i = 0; i < fallback; i++)
        args[i] = (char *)jk_fallback[i];
    int k = 0;
    if (shim)
        own[k++] = "kubectl";
    for (int i = 1; i < argc; i++)
        own[k++] = argv[i];
    own[k] = NULL;

    /* A JITKUBE_WARM_FRONT the caller set: the Python jitkube removes it (and may warn
       or run in-process) before it offers anything to the server. */
    if (warm_allowed() && hot_command(own, n) && !getenv("JITKUBE_WARM_FRONT") &&
        coerce_locale_as_python()) {
        enum tried tried = UNTRIED;
        int code = attempt(own, n, &tried);
        if (code >= 0)
            return code;
        /* Tell the Python jitkube what was tried, so it does not try again, and starts a
           server when none answered (warm.attempt reads and removes this). */
        if (tried != UNTRIED)
            setenv("JITKUBE_WARM_FRONT", tried == ABSENT ? "absent:" JK_TAG : "failed:" JK_TAG, 1);
    }
    execv(args[0], args);
    fprintf(stderr,
            "jitkube: cannot start %s: %s\n"
            "  hint: jitkube was moved or removed since this front end was built; run "
            "`jitkube shim install` again\n",
            args[0], strerror(errno));
    return EXIT_INTERNAL;
}
