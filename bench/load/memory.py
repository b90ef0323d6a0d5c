"""Memory and start-up: how long `mcpgate gateway` takes from exec to ready, its RSS when idle,
and its RSS with many idle event streams open through it (each holds two descriptors in the
gateway: the client's and the origin's)."""
import os
import re
import select
import statistics
import subprocess
import time

import harness as h
import sse


def mb(kib):
    """KiB as MB (10^6 bytes), the unit of the goals."""
    return kib * 1024 / 1e6


def metric(admin_url, name):
    """A sum over one metric's series from the gateway's /metrics."""
    port = int(admin_url.rsplit(":", 1)[1])
    _, _, body = h.http_request(port, "GET", "/metrics")
    total = None
    for line in body.decode().splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+([0-9.eE+-]+)$", line)
        if m:
            total = (total or 0) + float(m.group(2))
    return total


def start_once(mcpgate, conf, settle):
    """One gateway start: exec on core 1 (the harness moves itself there for the fork, so no
    taskset exec is counted) until its ready line on stderr; then its RSS once settled.
    Returns (ms to ready, RSS KiB)."""
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(h.CORE_PROXY)})
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen([mcpgate, "gateway", "-c", conf, "--no-watch"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    finally:
        os.sched_setaffinity(0, own)
    try:
        if not select.select([p.stderr], [], [], 20)[0]:
            raise h.SetupError("the gateway wrote no ready line within 20 s")
        line = p.stderr.readline()
        ms = (time.perf_counter() - t0) * 1000
        if b"ready" not in line:
            raise h.SetupError(f"the gateway did not start: {line.decode(errors='replace')}"
                               f"{p.stderr.read(3000).decode(errors='replace')}")
        admin = line.decode().split('"admin":"', 1)[1].split('"', 1)[0] if '"admin"' in line.decode() else None
        settle(admin)
        return ms, h.rss_kib(p.pid)
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stderr.close()


def open_streams(port, token, n, batch=500):
    """n event streams through the gateway, each up to its first event; the sockets."""
    req = sse.request("/sse/idle", token)
    socks = []
    while len(socks) < n:
        group = [sse.open_stream(port, req) for _ in range(min(batch, n - len(socks)))]
        for s in group:
            sse.read_first_event(s, f"idle stream {len(socks) + 1}")
            socks.append(s)
    return socks


def run(ctx):
    procs, args, workdir = ctx.procs, ctx.args, ctx.workdir
    origin = ctx.sse_origin()
    idp = ctx.idp()
    backend = {"sse": f"http://127.0.0.1:{origin}"}
    configs = {
        "no policy": h.gateway_yaml(backend, [("sse", "/sse", "sse", "http", None)], admin=True),
        "lab policy": h.gateway_yaml(backend, [("sse", "/sse", "sse", "http", h.lab_policy_file(workdir))],
                                     idp=idp, admin=True),
    }
    files = {}
    for name, text in configs.items():
        files[name] = os.path.join(workdir, f"memory-{name.replace(' ', '-')}.yaml")
        with open(files[name], "w") as f:
            f.write(text)

    def settle_plain(admin):
        time.sleep(0.3)

    def settle_lab(admin):
        deadline = time.time() + 10  # until its signing keys are in (the TLS fetch is done)
        while (metric(admin, 'mcpgate_key_fetches_total{result="ok"}') or 0) < 1:
            if time.time() > deadline:
                raise h.SetupError("the lab-policy gateway fetched no signing keys within 10 s")
            time.sleep(0.02)
        time.sleep(0.3)
    settles = {"no policy": settle_plain, "lab policy": settle_lab}

    print(f"\nmemory: {args.starts} starts of each configuration (interleaved), then {args.streams} idle event "
          "streams through mcpgate (lab policy, one worker) on core 1", flush=True)
    starts = {name: [] for name in configs}
    for _ in range(args.starts):
        for name in configs:
            starts[name].append(start_once(ctx.mcpgate, files[name], settles[name]))
    out = {"starts": {}}
    for name in configs:
        ms = [x[0] for x in starts[name]]
        rss = [x[1] for x in starts[name]]
        out["starts"][name] = {"ready_ms": statistics.median(ms), "ready_ms_all": ms,
                               "idle_rss_kib": statistics.median(rss), "idle_rss_kib_all": rss}
        print(f"  {name:10s}: ready in {statistics.median(ms):.1f} ms (median; {min(ms):.1f}-{max(ms):.1f}), "
              f"idle RSS {mb(statistics.median(rss)):.1f} MB", flush=True)

    # Many idle streams through one gateway (its own process, so nothing else has touched it).
    gw, info, port = h.start_gateway(procs, ctx.mcpgate, workdir, "mcpgate-streams", configs["lab policy"])
    settle_lab(info["admin"])
    status, _, _ = h.http_request(port, "GET", "/sse/idle", {"Authorization": "Bearer x.y.z"})
    if status != 401:
        raise h.SetupError(f"event streams through mcpgate: the token x.y.z got {status}, not 401")
    before = h.rss_kib(gw.pid)
    t0 = time.perf_counter()
    socks = []
    try:
        socks = open_streams(port, idp["tokens"][0], args.streams)
        opened_s = time.perf_counter() - t0
        time.sleep(1.0)
        active = metric(info["admin"], "mcpgate_active_sse_streams")
        rss = h.rss_kib(gw.pid)
        fds = h.fd_count(gw.pid)
        hwm = int(h.status_field(gw.pid, "VmHWM").split()[0])
    finally:
        for s in socks:
            s.close()
    deadline = time.time() + 20
    while (metric(info["admin"], "mcpgate_active_sse_streams") or 0) > 0 and time.time() < deadline:
        time.sleep(0.1)
    after = h.rss_kib(gw.pid)
    procs.stop(gw)
    per_stream = (rss - before) / max(1, args.streams)
    out["streams"] = {"count": args.streams, "active_gauge": active, "fds": fds, "rss_kib": rss,
                      "rss_before_kib": before, "rss_after_close_kib": after, "hwm_kib": hwm,
                      "per_stream_kib": per_stream, "open_seconds": opened_s}
    print(f"  {args.streams} idle streams: RSS {mb(rss):.1f} MB (before {mb(before):.1f}; {per_stream * 1.024:.2f} kB "
          f"per stream), {fds} fds, active streams gauge {active:.0f}; opened in {opened_s:.1f} s; RSS once they "
          f"closed {mb(after):.1f} MB", flush=True)
    if active is not None and int(active) != args.streams:
        raise h.SetupError(f"the gateway reports {active:.0f} active event streams, not {args.streams}")
    return out
