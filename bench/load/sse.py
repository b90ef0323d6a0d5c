"""Event streams: the time to the first event, through a proxy and direct; and how many events a
proxy relays per second (and its CPU time per event) when the origin sends them as fast as it
can, one send() per event. The origin is sse_origin.c (compiled here), on core 0 with this
harness's clients; the proxy (nginx with `proxy_buffering off`, or mcpgate without a policy)
alone on core 1. Direct, the flood's reader runs on core 1 instead (nothing else runs there then):
the origin's own ceiling, as a proxy reading from it would see it."""
import os
import socket
import statistics
import subprocess
import time

import harness as h

# Events per flood stream: the origin then ends the body and the client opens another stream.
# Streams of a bounded length keep the measure independent of any per-response body limit.
FLOOD_EVENTS = 40000


def build_origin(workdir):
    src = os.path.join(h.HERE, "sse_origin.c")
    exe = os.path.join(workdir, "sse_origin")
    cc = h.tool("cc") or h.tool("gcc")
    if not cc:
        raise h.SetupError("no C compiler for bench/load/sse_origin.c: run scripts/setup.sh (build-essential)")
    run = subprocess.run([cc, "-O2", "-std=c11", "-D_GNU_SOURCE", "-o", exe, src], capture_output=True, text=True)
    if run.returncode:
        raise h.SetupError(f"cannot compile sse_origin.c:\n{run.stderr}")
    return exe


def start_origin(procs, workdir, name="sse-origin"):
    exe = build_origin(workdir)
    ready = os.path.join(workdir, name + ".ready.json")
    _, info = procs.start(name, [exe, ready, str(FLOOD_EVENTS)], h.CORE_LOAD, ready_file=ready)
    return info["port"]


def request(path, token=None):
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Cache-Control: no-cache\r\n{auth}\r\n").encode()


def open_stream(port, req, timeout=10):
    """A connected socket with the request sent; TCP_NODELAY like any interactive client."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(req)
    return s


def read_first_event(s, who):
    """Reads until the first event's '|' arrives; the answer must be a 200 event stream."""
    got = b""
    while b"|" not in got:
        chunk = s.recv(65536)
        if not chunk:
            raise h.SetupError(f"{who}: the event stream ended before its first event: {got[:300]!r}")
        got += chunk
    if not got.startswith(b"HTTP/1.1 200") or b"text/event-stream" not in got.split(b"\r\n\r\n", 1)[0].lower():
        raise h.SetupError(f"{who}: not a 200 event stream: {got[:300]!r}")
    return got


def first_event_ms(port, req, who):
    """A fresh connection; the clock runs from the request's send to the first event's arrival."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        s.sendall(req)
        read_first_event(s, who)
        return (time.perf_counter() - t0) * 1000
    finally:
        s.close()


def flood(port, req, streams, seconds, pid, who, warmup=0.5):
    """`streams` concurrent event streams read as fast as they come, each replaced by a new one
    when the origin ends it. The client reads every millisecond rather than on every wake-up,
    so that it does not take core 0 away from the origin one event at a time."""
    slots = []

    def new_slot():
        s = open_stream(port, req)
        s.setblocking(False)
        return {"sock": s, "events": 0, "head": b""}

    for _ in range(streams):
        slots.append(new_slot())
    count = 0
    t_start = time.perf_counter()
    t0 = cpu0 = None
    end = t_start + warmup + seconds
    reopened = 0
    while True:
        now = time.perf_counter()
        if t0 is None and now >= t_start + warmup:
            t0, count, cpu0 = now, 0, h.cpu_seconds(pid) if pid else 0.0
        if now >= end:
            break
        for i, slot in enumerate(slots):
            while True:
                try:
                    data = slot["sock"].recv(1 << 20)
                except BlockingIOError:
                    break
                except OSError as e:
                    raise h.SetupError(f"{who}: event stream failed: {e}")
                if not data:
                    raise h.SetupError(f"{who}: an event stream ended early (after {slot['events']} of "
                                       f"{FLOOD_EVENTS} events)")
                if slot["head"] is not None:
                    slot["head"] += data
                    if b"\r\n\r\n" in slot["head"]:
                        if not slot["head"].startswith(b"HTTP/1.1 200"):
                            raise h.SetupError(f"{who}: not a 200 event stream: {slot['head'][:300]!r}")
                        slot["head"] = None
                n = data.count(b"|")
                slot["events"] += n
                count += n
                if slot["events"] >= FLOOD_EVENTS:
                    slot["sock"].close()
                    slots[i] = slot = new_slot()
                    reopened += 1
                    break
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    cpu = (h.cpu_seconds(pid) - cpu0) if pid else None
    for slot in slots:
        slot["sock"].close()
    res = {"events_per_s": count / elapsed, "events": count, "streams_opened": streams + reopened}
    if pid:
        res["cpu_us_per_event"] = cpu / max(1, count) * 1e6
    return res


def run(ctx):
    """Setups: direct, nginx (proxy_buffering off), mcpgate without a policy; interleaved."""
    procs, args = ctx.procs, ctx.args
    origin = ctx.sse_origin()
    ngx, ngx_port = h.nginx_proxy(procs, ctx.workdir, ctx.tools["nginx"], "nginx-sse", {"/sse": origin})
    gw, _, gw_port = h.start_gateway(procs, ctx.mcpgate, ctx.workdir, "mcpgate-sse",
                                     h.gateway_yaml({"sse": f"http://127.0.0.1:{origin}"},
                                                    [("sse", "/sse", "sse", "http", None)]))
    setups = [("direct", origin, None), ("nginx (proxy_buffering off)", ngx_port, ngx.pid),
              ("mcpgate (no policy)", gw_port, gw.pid)]
    idle, flood_req = request("/sse/idle"), request("/sse/flood")
    for name, port, _ in setups:  # each answers an event stream before anything is measured
        first_event_ms(port, idle, name)
    ttfe = {name: [] for name, _, _ in setups}
    floods = {name: [] for name, _, _ in setups}
    print(f"\nSSE: first event over {args.sse_requests} fresh requests per setup and round (interleaved); "
          f"{args.sse_streams} flooding streams x {args.seconds}s per setup and round", flush=True)
    for r in range(args.rounds):
        for _ in range(args.sse_requests):
            for name, port, _ in setups:
                ttfe[name].append(first_event_ms(port, idle, name))
        for name, port, pid in setups:
            # Direct, the reader runs on core 1 (idle then), as a proxy would: the row then shows
            # what the origin can send, the ceiling of the proxied rows.
            own = os.sched_getaffinity(0)
            if pid is None:
                os.sched_setaffinity(0, {int(h.CORE_PROXY)})
            try:
                res = flood(port, flood_req, args.sse_streams, args.seconds, pid, name)
            finally:
                os.sched_setaffinity(0, own)
            floods[name].append(res)
            line = f"  round {r + 1} {name:30s} {res['events_per_s']:9.0f} events/s"
            if pid:
                line += f"  proxy CPU {res['cpu_us_per_event']:.2f} us/event"
            print(line, flush=True)
    out = {}
    for name, _, pid in setups:
        samples = sorted(ttfe[name])
        out[name] = {
            "first_event_ms_p50": statistics.median(samples),
            "first_event_ms_p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "first_event_samples": len(samples),
            "events_per_s": statistics.median(x["events_per_s"] for x in floods[name]),
            "cpu_us_per_event": statistics.median(x["cpu_us_per_event"] for x in floods[name]) if pid else None,
            "rounds": floods[name],
        }
        print(f"  {name:30s} first event p50 {out[name]['first_event_ms_p50']:.3f} ms  "
              f"p99 {out[name]['first_event_ms_p99']:.3f} ms", flush=True)
    procs.stop(gw)
    procs.stop(ngx)
    return {"setups": out, "streams": args.sse_streams, "events_per_stream": FLOOD_EVENTS,
            "event_bytes": 100}
