/* tests/test_tp_tcp.c — the TCP rendezvous the NCCL backend shares its
 * unique id over (host/tp/comm_tcp.c, library-private; no NCCL needed):
 * rank 0 serves a blob to peers that reach it over IPv4, IPv6 and a name,
 * started before it (they retry); rank 0 fails within its timeout when a
 * peer never connects, and a peer fails within its timeout when nobody
 * serves — never a hang (each test also has a Criterion timeout).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tp/comm_internal.h"

#define BLOB 128

/* A suite run under torchrun must not take its agent-store rule into the
 * rendezvous tests (the test that wants it sets it). Runs in the runner,
 * before any test's process starts. */
__attribute__((constructor)) static void outside_torchrun(void) { unsetenv("TORCHELASTIC_USE_AGENT_STORE"); }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 1 when this machine has an IPv6 loopback (some containers have none). */
static int have_ipv6_loopback(void) {
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT, .sin6_port = 0};
  const int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* A port the kernel just handed out (free on IPv4 and IPv6 alike: asked
 * of a dual-stack socket where there is IPv6), as text. */
static void free_port(char *out, size_t cap) {
  unsigned port = 0;
  if (have_ipv6_loopback()) {
    const int fd = socket(AF_INET6, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    const int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT, .sin6_port = 0};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin6_port);
    close(fd);
  } else {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY), .sin_port = 0};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
  }
  snprintf(out, cap, "%u", port);
}

typedef struct party {
  int rank, size, delay_ms;
  const char *addr;
  const char *port;
  double timeout_s;
  unsigned char blob[BLOB];
  deco_status_t st;
  char msg[512];
  double took_s;
} party_t;

static void *party_main(void *arg) {
  party_t *p = arg;
  if (p->delay_ms) usleep((useconds_t)p->delay_ms * 1000);
  const double t0 = now_s();
  p->st = deco_comm_tcp_share(p->blob, BLOB, p->rank, p->size, p->addr, p->port, p->timeout_s, "test");
  p->took_s = now_s() - t0;
  snprintf(p->msg, sizeof p->msg, "%s", p->st == DECO_STATUS_SUCCESS ? "" : deco_last_error(NULL));
  return NULL;
}

static void run_parties(party_t *ps, int n) {
  pthread_t th[8];
  for (int i = 0; i < n; ++i) cr_assert_eq(pthread_create(&th[i], NULL, party_main, &ps[i]), 0);
  for (int i = 0; i < n; ++i) pthread_join(th[i], NULL);
}

Test(tp_tcp, peers_over_ipv4_ipv6_and_a_name_get_rank_0s_bytes_even_when_they_come_first, .timeout = 30) {
  char port[16];
  free_port(port, sizeof port);
  const int v6 = have_ipv6_loopback();
  if (!v6) cr_log_warn("no IPv6 loopback here: the IPv6 peer connects over IPv4");
  /* Rank 0 starts 300 ms after its peers: they retry until it listens. */
  party_t ps[4] = {{.rank = 0, .size = 4, .delay_ms = 300, .port = port, .timeout_s = 10},
                   {.rank = 1, .size = 4, .addr = "127.0.0.1", .port = port, .timeout_s = 10},
                   {.rank = 2, .size = 4, .addr = v6 ? "::1" : "127.0.0.1", .port = port, .timeout_s = 10},
                   {.rank = 3, .size = 4, .addr = "localhost", .port = port, .timeout_s = 10}};
  for (int i = 0; i < BLOB; ++i) ps[0].blob[i] = (unsigned char)(i * 37 + 11);
  for (int r = 1; r < 4; ++r) memset(ps[r].blob, 0xee, BLOB);
  run_parties(ps, 4);
  for (int r = 0; r < 4; ++r) {
    cr_assert_eq(ps[r].st, DECO_STATUS_SUCCESS, "rank %d (%s): %s", r, ps[r].addr ? ps[r].addr : "server", ps[r].msg);
    cr_assert(memcmp(ps[r].blob, ps[0].blob, BLOB) == 0, "rank %d (%s) read other bytes", r, ps[r].addr);
  }
}

Test(tp_tcp, rank_0_gives_up_on_a_peer_that_never_connects_within_its_timeout, .timeout = 30) {
  char port[16];
  free_port(port, sizeof port);
  /* Three ranks, but only rank 1 ever connects. */
  party_t ps[2] = {{.rank = 0, .size = 3, .port = port, .timeout_s = 0.5},
                   {.rank = 1, .size = 3, .addr = "127.0.0.1", .port = port, .timeout_s = 5}};
  run_parties(ps, 2);
  cr_assert_eq(ps[1].st, DECO_STATUS_SUCCESS, "%s", ps[1].msg);
  cr_assert_eq(ps[0].st, DECO_STATUS_IO_ERROR, "%s", ps[0].msg);
  cr_assert(strstr(ps[0].msg, "1 of 2 ranks") && strstr(ps[0].msg, "never connected"), "%s", ps[0].msg);
  cr_assert(ps[0].took_s >= 0.45 && ps[0].took_s < 3.0, "rank 0 gave up after %.3f s", ps[0].took_s);
  char want[512];
  snprintf(want, sizeof want,
           "test: 1 of 2 ranks fetched the NCCL id from MASTER_PORT=%s within %.0f s: the others never connected", port,
           0.5);
  cr_assert_str_eq(ps[0].msg, want);
}

/* Rank 0's refusals before it serves: a port getaddrinfo does not take,
 * and a port another socket already listens on. */
Test(tp_tcp, rank_0_refuses_a_bad_port_and_a_busy_one, .timeout = 30) {
  unsigned char blob[BLOB] = {0};
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
  const int g = getaddrinfo(NULL, "not-a-port", &hints, &ai);
  cr_assert_neq(g, 0);
  char want[512];
  snprintf(want, sizeof want, "test: MASTER_PORT=not-a-port: %s", gai_strerror(g));
  cr_assert_eq(deco_comm_tcp_share(blob, BLOB, 0, 2, NULL, "not-a-port", 1, "test"), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_str_eq(deco_last_error(NULL), want);

  /* Every address of the port taken: a listener on IPv4 and, where there
   * is one, on IPv6. A host without IPv6 sockets refuses the IPv6 address
   * to rank 0 as to this test, and rank 0 names the last address's error. */
  char port[16];
  free_port(port, sizeof port);
  cr_assert_eq(getaddrinfo(NULL, port, &hints, &ai), 0);
  int held[4], n = 0, last = EADDRINUSE;
  for (const struct addrinfo *a = ai; a && n < 4; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0 && a->ai_family == AF_INET6 && errno == EAFNOSUPPORT) {
      last = EAFNOSUPPORT;
      continue;
    }
    cr_assert_geq(fd, 0, "%s", strerror(errno));
    last = EADDRINUSE;
    const int one = 1;
    if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    cr_assert_eq(bind(fd, a->ai_addr, a->ai_addrlen), 0, "%s", strerror(errno));
    cr_assert_eq(listen(fd, 1), 0);
    held[n++] = fd;
  }
  freeaddrinfo(ai);
  cr_assert_gt(n, 0, "no address of port %s could be held", port);
  /* At least one address was held by a process (n > 0): the message says
   * so and names the way around, whichever error came last. */
  snprintf(want, sizeof want,
           "test: cannot listen on MASTER_PORT=%s: %s (a process holds the port, a launcher's store maybe: set "
           "NCCL_COMM_ID=<rank 0's host>:<a free port> instead)",
           port, strerror(last));
  cr_assert_eq(deco_comm_tcp_share(blob, BLOB, 0, 2, NULL, port, 1, "test"), DECO_STATUS_IO_ERROR);
  cr_assert_str_eq(deco_last_error(NULL), want);
  for (int i = 0; i < n; ++i) close(held[i]);
}

Test(tp_tcp, a_peer_gives_up_when_nobody_serves_within_its_timeout, .timeout = 30) {
  char port[16];
  free_port(port, sizeof port);
  party_t p = {.rank = 2, .size = 3, .addr = "localhost", .port = port, .timeout_s = 0.4};
  run_parties(&p, 1);
  cr_assert_eq(p.st, DECO_STATUS_IO_ERROR, "%s", p.msg);
  cr_assert(strstr(p.msg, "no NCCL id served") && strstr(p.msg, port), "%s", p.msg);
  cr_assert(p.took_s >= 0.35 && p.took_s < 3.0, "gave up after %.3f s", p.took_s);
}

Test(tp_tcp, bad_arguments_are_refused) {
  unsigned char blob[BLOB] = {0};
  cr_assert_eq(deco_comm_tcp_share(NULL, BLOB, 0, 2, NULL, "1", 1, "test"), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_comm_tcp_share(blob, BLOB, 1, 2, NULL, "1", 1, "test"), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_comm_tcp_share(blob, BLOB, 2, 2, "localhost", "1", 1, "test"), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_comm_tcp_share(blob, BLOB, 1, 2, "localhost", "not-a-port", 1, "test"),
               DECO_STATUS_INVALID_ARGUMENT);
}

/* Under torchrun (TORCHELASTIC_USE_AGENT_STORE=True) MASTER_PORT is the
 * agent's store: every rank fails at once, naming NCCL_COMM_ID, instead of
 * rank 0 failing to listen and the others waiting out their timeout. */
Test(tp_tcp, every_rank_refuses_torchruns_agent_store_at_once, .timeout = 30) {
  unsigned char blob[BLOB] = {0};
  char port[16];
  free_port(port, sizeof port);
  setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
  for (int rank = 0; rank < 2; ++rank) {
    const double t0 = now_s();
    cr_assert_eq(deco_comm_tcp_share(blob, BLOB, rank, 2, "localhost", port, 20, "test"),
                 DECO_STATUS_INVALID_ARGUMENT, "rank %d", rank);
    char want[512];
    snprintf(want, sizeof want,
             "test: rank %d: MASTER_ADDR:MASTER_PORT is torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE=True), "
             "not a port rank 0 can serve the NCCL id on: set NCCL_COMM_ID=<rank 0's host>:<a free port>",
             rank);
    cr_assert_str_eq(deco_last_error(NULL), want);
    cr_assert_lt(now_s() - t0, 1.0, "rank %d waited", rank);
  }
  setenv("TORCHELASTIC_USE_AGENT_STORE", "False", 1); /* torchrun's other value: the rendezvous runs */
  cr_assert_eq(deco_comm_tcp_share(blob, BLOB, 0, 1, NULL, port, 1, "test"), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  unsetenv("TORCHELASTIC_USE_AGENT_STORE");
}
