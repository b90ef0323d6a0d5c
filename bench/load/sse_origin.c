// The load harness's event-stream origin: one thread, non-blocking sockets, epoll. The harness
// compiles it into its work folder (cc -O2) and runs it on core 0; it has to be clearly faster
// than the proxies it feeds (a Python origin was not: nginx kept up with it).
//
//   GET /sse/idle   the response head, then one event, then nothing until the client leaves
//   GET /sse/flood  the response head, then EVENTS events as fast as the connection takes
//                   them, then the end of the body (the connection stays open for more)
//
// Every event is the same 100 bytes (an MCP log notification), one chunk, sent with a send() of
// its own, and holds exactly one '|', which no response head or chunk-size line contains: a
// client counts events by counting that byte, whatever framing the proxies put around them.
//
//   sse_origin READY_FILE EVENTS     (binds 127.0.0.1:0; READY_FILE gets {"port": N})
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define DATA                                                                                   \
  "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":" \
  "\"info\",\"data\":\"|event\"}}\n\n"
_Static_assert(sizeof DATA - 1 == 100, "an event is 100 bytes (0x64 below)");
static const char kEvent[] = "64\r\n" DATA "\r\n";
static const char kHead[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";
static const char kEnd[] = "0\r\n\r\n";
static const char kNotFound[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
enum { kBurst = 64 };  // sends per wake-up on one stream, so that streams take turns

enum State { kReading, kIdle, kFlood };
struct Conn {
  int fd;
  enum State state;
  size_t head_len;
  char head[4096];
  size_t sent;   // bytes of the current event already sent (a short send)
  long left;     // events still to send on a flood stream
};

static int epfd;
static long events_per_stream;

static void drop(struct Conn* c) {
  close(c->fd);  // also leaves the epoll set
  free(c);
}

static void watch(struct Conn* c, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

// Small writes on a fresh or idle connection: the socket buffer takes them whole.
static int put(struct Conn* c, const char* s, size_t n) {
  return send(c->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static void pump(struct Conn* c) {
  const size_t n = sizeof kEvent - 1;
  for (int i = 0; i < kBurst && c->left > 0; ++i) {
    const ssize_t w = send(c->fd, kEvent + c->sent, n - c->sent, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) drop(c);
      return;
    }
    c->sent += (size_t)w;
    if (c->sent < n) return;
    c->sent = 0;
    --c->left;
  }
  if (c->left == 0) {
    if (put(c, kEnd, sizeof kEnd - 1) < 0) {
      drop(c);
      return;
    }
    c->state = kReading;
    c->head_len = 0;
    watch(c, EPOLLIN);
  }
}

static void on_readable(struct Conn* c) {
  char scratch[4096];
  char* buf = c->state == kReading ? c->head + c->head_len : scratch;
  const size_t room = c->state == kReading ? sizeof c->head - 1 - c->head_len : sizeof scratch;
  const ssize_t r = recv(c->fd, buf, room, 0);
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
    drop(c);
    return;
  }
  if (r < 0 || c->state != kReading) return;  // a stream is under way: ignore the rest
  c->head_len += (size_t)r;
  c->head[c->head_len] = 0;
  if (!strstr(c->head, "\r\n\r\n")) {
    if (c->head_len == sizeof c->head - 1) drop(c);
    return;
  }
  const char* target = strchr(c->head, ' ');
  target = target ? target + 1 : "";
  if (strncmp(target, "/sse/flood", 10) == 0) {
    if (put(c, kHead, sizeof kHead - 1) < 0) {
      drop(c);
      return;
    }
    c->state = kFlood;
    c->left = events_per_stream;
    c->sent = 0;
    watch(c, EPOLLOUT);
  } else if (strncmp(target, "/sse/idle", 9) == 0) {
    // The head, then the first event in a send of its own; then silence.
    if (put(c, kHead, sizeof kHead - 1) < 0 || put(c, kEvent, sizeof kEvent - 1) < 0) {
      drop(c);
      return;
    }
    c->state = kIdle;
  } else {
    if (put(c, kNotFound, sizeof kNotFound - 1) < 0) {
      drop(c);
      return;
    }
    c->head_len = 0;
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: sse_origin READY_FILE EVENTS_PER_FLOOD_STREAM\n");
    return 2;
  }
  events_per_stream = atol(argv[2]);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (bind(lfd, (struct sockaddr*)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0 ||
      getsockname(lfd, (struct sockaddr*)&addr, &len) < 0) {
    perror("sse_origin: listen");
    return 1;
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
  FILE* f = fopen(tmp, "w");
  if (!f || fprintf(f, "{\"port\": %d}\n", ntohs(addr.sin_port)) < 0 || fclose(f) != 0 ||
      rename(tmp, argv[1]) != 0) {
    perror("sse_origin: ready file");
    return 1;
  }
  epfd = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[256];
  for (;;) {
    const int n = epoll_wait(epfd, evs, 256, -1);
    for (int i = 0; i < n; ++i) {
      struct Conn* c = evs[i].data.ptr;
      if (!c) {
        for (;;) {
          const int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;  // drained (or out of descriptors: the client's connect waits)
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = calloc(1, sizeof *c);
          c->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
        }
      } else if (c->state == kFlood && (evs[i].events & EPOLLOUT)) {
        pump(c);
      } else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(c);
      }
    }
  }
}
