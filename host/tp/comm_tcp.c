/* host/tp/comm_tcp.c — the TCP rendezvous the NCCL backend uses to share
 * its unique id when launched without MPI or NCCL_COMM_ID: rank 0 serves a
 * few bytes on MASTER_ADDR:MASTER_PORT to every other rank, which connects
 * and reads them. Plain POSIX sockets, no NCCL, so it is built (and tested)
 * in every build. Rank 0 listens on every passive address of the port (an
 * IPv4 and an IPv6 socket, the latter IPv6-only so both can bind), so a
 * client that resolves MASTER_ADDR to either family reaches it; a client
 * tries every address MASTER_ADDR resolves to. Every wait (accept, connect,
 * read) is bounded by the timeout: a peer that dies before connecting, or
 * a server that never answers, fails the rank instead of hanging it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tp/comm_internal.h"

/* Listening sockets at most: one per passive address (IPv4, IPv6). */
#define MAX_LISTEN 4

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Milliseconds left until deadline, for poll (at least 0). */
static int ms_left(double deadline) {
  const double left = deadline - now_s();
  if (left <= 0) return 0;
  return left > 3600.0 ? 3600 * 1000 : (int)(left * 1000.0) + 1;
}

static int set_nonblocking(int fd, int on) {
  const int fl = fcntl(fd, F_GETFL, 0);
  if (fl < 0) return -1;
  return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Writes all of buf; 0 or -1. */
static int write_all(int fd, const void *buf, size_t bytes) {
  size_t done = 0;
  while (done < bytes) {
    const ssize_t k = send(fd, (const char *)buf + done, bytes - done, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    done += (size_t)k;
  }
  return 0;
}

/* Reads all of buf before deadline; 0, or -1 (closed early, error, late). */
static int read_all(int fd, void *buf, size_t bytes, double deadline) {
  size_t got = 0;
  while (got < bytes) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    const int r = poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    const ssize_t k = read(fd, (char *)buf + got, bytes - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    got += (size_t)k;
  }
  return 0;
}

/* A connection to one address, given up at deadline (a blocking connect to
 * an unreachable host would wait for the kernel's own, longer timeout). */
static int connect_before(const struct addrinfo *a, double deadline) {
  const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
  if (fd < 0) return -1;
  if (set_nonblocking(fd, 1) != 0) {
    close(fd);
    return -1;
  }
  int ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
  if (!ok && errno == EINPROGRESS) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r;
    do r = poll(&p, 1, ms_left(deadline));
    while (r < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof err;
    ok = r > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
  }
  if (!ok || set_nonblocking(fd, 0) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Rank 0's side of the rendezvous: its listening sockets and the peers
 * served so far (rank 0 counts as served). */
typedef struct id_server {
  struct pollfd fds[MAX_LISTEN];
  int nfd;
  const void *blob;
  size_t bytes;
  int size, served;
  const char *port, *op;
} id_server_t;

/* A socket bound to address a and listening for size peers (non-blocking),
 * or -1 with *last_errno set. */
static int listen_on(const struct addrinfo *a, int size, int *last_errno) {
  const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
  if (fd < 0) {
    *last_errno = errno;
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* The IPv6 socket takes IPv6 only, so the IPv4 one can bind the same
   * port (a dual-stack IPv6 socket would take both and make it fail). */
  if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  /* Non-blocking: a connection reset between poll and accept must not
   * leave accept waiting (the accepted socket blocks again: Linux does
   * not pass O_NONBLOCK on). */
  if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, size) != 0 || set_nonblocking(fd, 1) != 0) {
    *last_errno = errno;
    close(fd);
    return -1;
  }
  return fd;
}

/* A listening socket on each of the port's passive addresses (up to
 * MAX_LISTEN); fails when none listens. */
static deco_status_t open_listeners(id_server_t *s) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
  const int g = getaddrinfo(NULL, s->port, &hints, &ai);
  if (g != 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: MASTER_PORT=%s: %s", s->op, s->port, gai_strerror(g));
  int last_errno = 0, busy = 0;
  for (const struct addrinfo *a = ai; a && s->nfd < MAX_LISTEN; a = a->ai_next) {
    const int fd = listen_on(a, s->size, &last_errno);
    if (fd >= 0) s->fds[s->nfd++] = (struct pollfd){.fd = fd, .events = POLLIN};
    else if (last_errno == EADDRINUSE) busy = 1;
  }
  freeaddrinfo(ai);
  /* A port in use may be a launcher's own store (torchrun's agent holds
   * MASTER_PORT; deco_comm_tcp_share refuses that case up front).
   * NCCL_COMM_ID goes around it. */
  if (s->nfd == 0)
    return DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: cannot listen on MASTER_PORT=%s: %s%s", s->op, s->port,
                     strerror(last_errno),
                     busy ? " (a process holds the port, a launcher's store maybe: set "
                            "NCCL_COMM_ID=<rank 0's host>:<a free port> instead)"
                          : "");
  return DECO_STATUS_SUCCESS;
}

static deco_status_t serving_error(const id_server_t *s) {
  return DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: serving the NCCL id on port %s: %s", s->op, s->port,
                   strerror(errno));
}

/* The blob to a peer waiting on each socket poll found ready (until every
 * peer is served). */
static deco_status_t serve_ready(id_server_t *s) {
  for (int i = 0; i < s->nfd && s->served < s->size; ++i) {
    if (!(s->fds[i].revents & POLLIN)) continue;
    const int peer = accept4(s->fds[i].fd, NULL, NULL, 0);
    if (peer < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      return serving_error(s);
    }
    if (write_all(peer, s->blob, s->bytes) != 0) {
      const deco_status_t st = serving_error(s);
      close(peer);
      return st;
    }
    ++s->served;
    close(peer);
  }
  return DECO_STATUS_SUCCESS;
}

/* Serves the blob to the size - 1 peers before timeout_s. */
static deco_status_t serve_peers(id_server_t *s, double timeout_s) {
  const double deadline = now_s() + timeout_s;
  while (s->served < s->size) {
    const int r = poll(s->fds, (nfds_t)s->nfd, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return serving_error(s);
    if (r == 0)
      return DECO_FAIL(NULL, DECO_STATUS_IO_ERROR,
                       "%s: %d of %d ranks fetched the NCCL id from MASTER_PORT=%s within %.0f s: the others never "
                       "connected",
                       s->op, s->served - 1, s->size - 1, s->port, timeout_s);
    DECO_TRY(serve_ready(s));
  }
  return DECO_STATUS_SUCCESS;
}

static deco_status_t serve(const void *blob, size_t bytes, int size, const char *port, double timeout_s,
                           const char *op) {
  id_server_t s = {.nfd = 0, .blob = blob, .bytes = bytes, .size = size, .served = 1, .port = port, .op = op};
  deco_status_t st = open_listeners(&s);
  if (st == DECO_STATUS_SUCCESS) st = serve_peers(&s, timeout_s);
  for (int i = 0; i < s.nfd; ++i) close(s.fds[i].fd);
  return st;
}

static deco_status_t fetch(void *blob, size_t bytes, const char *addr, const char *port, double timeout_s,
                           const char *op) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  const int g = getaddrinfo(addr, port, &hints, &ai);
  if (g != 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: MASTER_ADDR=%s MASTER_PORT=%s: %s", op, addr, port,
                     gai_strerror(g));
  const double deadline = now_s() + timeout_s;
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (int done = 0; !done;) {
    /* Every address in turn (localhost may be ::1 first while rank 0
     * listens on IPv4, or the other way round). */
    for (const struct addrinfo *a = ai; a && !done; a = a->ai_next) {
      const int fd = connect_before(a, deadline);
      if (fd < 0) continue;
      if (read_all(fd, blob, bytes, deadline) != 0)
        st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: short NCCL id from MASTER_ADDR=%s MASTER_PORT=%s", op, addr,
                       port);
      close(fd);
      done = 1;
    }
    if (done) break;
    if (now_s() >= deadline) {
      st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: no NCCL id served at MASTER_ADDR=%s MASTER_PORT=%s after %.0f s",
                     op, addr, port, timeout_s);
      break;
    }
    const int pause_ms = ms_left(deadline) < 100 ? ms_left(deadline) : 100;
    usleep((useconds_t)pause_ms * 1000);
  }
  freeaddrinfo(ai);
  return st;
}

deco_status_t deco_comm_tcp_share(void *blob, size_t bytes, int rank, int size, const char *addr, const char *port,
                                  double timeout_s, const char *op) {
  if (blob == NULL || port == NULL || (rank != 0 && addr == NULL))
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: the TCP rendezvous needs a buffer, an address and a port",
                     op);
  if (size < 1 || rank < 0 || rank >= size)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: rank %d of %d", op, rank, size);
  /* torchrun's workers (TORCHELASTIC_USE_AGENT_STORE=True) find their
   * agent's store on MASTER_ADDR:MASTER_PORT: rank 0 could not listen
   * there, and the others would wait on the agent's store until their
   * timeout. Every rank fails at once instead, naming the way around. */
  const char *agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  if (agent && (strcmp(agent, "True") == 0 || strcmp(agent, "true") == 0 || strcmp(agent, "1") == 0))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: rank %d: MASTER_ADDR:MASTER_PORT is torchrun's agent store "
                     "(TORCHELASTIC_USE_AGENT_STORE=%s), not a port rank 0 can serve the NCCL id on: set "
                     "NCCL_COMM_ID=<rank 0's host>:<a free port>",
                     op, rank, agent);
  return rank == 0 ? serve(blob, bytes, size, port, timeout_s, op) : fetch(blob, bytes, addr, port, timeout_s, op);
}
