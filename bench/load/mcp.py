"""MCP end to end: initialize, tools/list and tools/call (`echo`) over Streamable HTTP, in turn on
every connection (wrk + lua/mcp.lua), to `mcpgate sample-server` (core 0) directly and through
mcpgate running the lab's policy (core 1, an API of type mcp). Every answer must be a 2xx."""
import json
import os
import statistics

import harness as h

VERSION = "2025-06-18"


def rpc(port, body, token, session=None):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Authorization": "Bearer " + token}
    if session:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = VERSION
    return h.http_request(port, "POST", "/mcp", headers, json.dumps(body).encode())


def open_session(port, token, who):
    """initialize + notifications/initialized, and one tools/list and tools/call, checked: the
    session the wrk script then uses for tools/list and tools/call."""
    status, headers, body = rpc(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}, token)
    session = headers.get("mcp-session-id")
    if status != 200 or not session:
        raise h.SetupError(f"MCP {who}: initialize answered {status} {body[:300]!r}")
    if json.loads(body)["result"]["protocolVersion"] != VERSION:
        raise h.SetupError(f"MCP {who}: the server did not agree to protocol {VERSION}: {body[:300]!r}")
    status, _, body = rpc(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token, session)
    if status != 202:
        raise h.SetupError(f"MCP {who}: notifications/initialized answered {status} {body[:300]!r}")
    status, _, body = rpc(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token, session)
    if status != 200 or "echo" not in [t["name"] for t in json.loads(body)["result"]["tools"]]:
        raise h.SetupError(f"MCP {who}: tools/list answered {status} {body[:300]!r}")
    status, _, body = rpc(port, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                 "params": {"name": "echo", "arguments": {"message": "hello through the gateway"}}},
                          token, session)
    if status != 200 or "hello through the gateway" not in json.loads(body)["result"]["content"][0]["text"]:
        raise h.SetupError(f"MCP {who}: tools/call answered {status} {body[:300]!r}")
    return session


def run(ctx):
    procs, args, workdir = ctx.procs, ctx.args, ctx.workdir
    ready = os.path.join(workdir, "sample-server.ready.json")
    sample, info = procs.start("sample-server", [ctx.mcpgate, "sample-server", "--listen", "127.0.0.1:0",
                                                 "--ready-file", ready], h.CORE_LOAD, ready_file=ready)
    origin = info["mcp"][0].rsplit("/", 1)[0]  # http://127.0.0.1:PORT
    idp = ctx.idp()
    token = idp["tokens"][0]
    gw, _, gw_port = h.start_gateway(procs, ctx.mcpgate, workdir, "mcpgate-mcp",
                                     h.gateway_yaml({"mcp": origin}, [("mcp", "/mcp", "mcp", "mcp", h.lab_policy_file(workdir))],
                                                    idp=idp))
    direct_port = int(origin.rsplit(":", 1)[1])
    status, _, _ = rpc(gw_port, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, "x.y.z", "none")
    if status != 401:
        raise h.SetupError(f"MCP through mcpgate: the token x.y.z got {status}, not 401: the policy checks nothing")
    setups = [("direct", direct_port, None, "direct"), ("mcpgate", gw_port, gw.pid, "through mcpgate")]
    for _, port, _, who in setups:
        open_session(port, token, who)
    script = os.path.join(h.LUA, "mcp.lua")
    runs = {name: [] for name, _, _, _ in setups}
    print(f"\nMCP: initialize, tools/list, tools/call in turn; {args.mcp_connections} connections x {args.seconds}s x "
          f"{args.rounds} rounds, interleaved; sample server on core 0, mcpgate (lab policy) on core 1", flush=True)
    for r in range(args.rounds):
        for name, port, pid, who in setups:
            # A new session for every run: the server keeps 10,000 and ends the least recently
            # used, and every initialize in the cycle opens one.
            session = open_session(port, token, who)
            res = h.measured_wrk(pid, f"http://127.0.0.1:{port}/mcp", args.seconds, args.mcp_connections,
                                 script=script, script_args=(session, VERSION, token))
            if res["non2xx"] or res["requests"] == 0:
                raise h.SetupError(f"MCP {name}: {res['non2xx']} of {res['requests']} answers were not 2xx")
            runs[name].append(res)
            print(f"  round {r + 1} {name:10s} {res['rps']:9.0f} req/s  p50 {res['p50']:.3f} ms  p99 {res['p99']:.3f} ms"
                  + (f"  proxy CPU {res['cpu_us']:.1f} us/req" if pid else "")
                  + (f"  socket errors: {res['socket_errors']}" if res["socket_errors"] else ""), flush=True)
    medians = {}
    for name, _, pid, _ in setups:
        m = {k: statistics.median(x[k] for x in runs[name]) for k in ("rps", "p50", "p99")}
        m["cpu_us"] = statistics.median(x["cpu_us"] for x in runs[name]) if pid else None
        medians[name] = m
    procs.stop(gw)
    procs.stop(sample)
    return {"medians": medians, "runs": runs, "connections": args.mcp_connections}
