"""Request throughput, latency and proxy CPU per request at several connection counts, against an
nginx origin answering ~200 bytes of JSON (core 0, with wrk); each proxy alone on core 1.

Setups (all interleaved, round after round, connection count after connection count):
  direct                 wrk straight to the origin: the harness ceiling
  nginx                  nginx 1.22, keep-alive upstream, no auth
  nginx_token            the same nginx sent the lab's token (forwarded, not checked): the bytes
                         a token adds to each request, without its check
  mcpgate                mcpgate gateway, no policy
  mcpgate_token          the same gateway sent the lab's token (forwarded, not checked): with
                         nginx_token, what the lab policy itself adds reads apart from its bytes
  haproxy_jwt            HAProxy 2.6 + jwt_verify (RS256, exp, iss, azp), the same token each time
  mcpgate_lab            mcpgate with the lab's validate-azure-ad-token policy, the same token
  haproxy_jwt_fresh      HAProxy jwt_verify, a different token on each request (wrk Lua rotation)
  mcpgate_lab_fresh      mcpgate, lab policy, entra.token_cache_entries: 0, the same rotation
The last two are the "fresh" part (--only fresh); they need a gateway that accepts
token_cache_entries (--fresh-tokens auto|on|off)."""
import os
import statistics

import harness as h

NAMES = {
    "direct": "direct to the origin (harness ceiling)",
    "nginx": "nginx 1.22 proxy, no auth",
    "nginx_token": "nginx 1.22 proxy, no auth, token forwarded",
    "mcpgate": "mcpgate, no policy",
    "mcpgate_token": "mcpgate, no policy, token forwarded",
    "haproxy_jwt": "HAProxy 2.6 + jwt_verify, same token",
    "mcpgate_lab": "mcpgate, lab policy, same token",
    "haproxy_jwt_fresh": "HAProxy 2.6 + jwt_verify, fresh tokens",
    "mcpgate_lab_fresh": "mcpgate, lab policy, cache off, fresh tokens",
}


def fresh_supported(ctx, idp):
    yaml = h.gateway_yaml({"origin": "http://127.0.0.1:1"}, [("lab", "/", "origin", "http", h.lab_policy_file(ctx.workdir))],
                          idp=idp, token_cache_entries=0)
    return h.gateway_accepts(ctx.mcpgate, ctx.workdir, yaml)


def run(ctx, with_main, with_fresh):
    procs, args, workdir = ctx.procs, ctx.args, ctx.workdir
    origin = h.nginx_origin(procs, workdir, ctx.tools["nginx"])
    origin_url = f"http://127.0.0.1:{origin}"
    setups = [{"key": "direct", "port": origin, "pid": None}]
    notes = []
    if with_main:
        ngx, ngx_port = h.nginx_proxy(procs, workdir, ctx.tools["nginx"], "nginx-proxy", {"/": origin})
        gw, _, gw_port = h.start_gateway(procs, ctx.mcpgate, workdir, "mcpgate-plain",
                                         h.gateway_yaml({"origin": origin_url}, [("bench", "/", "origin", "http", None)]))
        setups += [{"key": "nginx", "port": ngx_port, "pid": ngx.pid},
                   {"key": "mcpgate", "port": gw_port, "pid": gw.pid}]
    idp = ctx.idp()
    policy = h.lab_policy_file(workdir)
    token = idp["tokens"][0]
    if with_main:
        hap, hap_port = h.haproxy_jwt(procs, workdir, ctx.tools["haproxy"], "haproxy-jwt", origin, idp)
        lab, _, lab_port = h.start_gateway(procs, ctx.mcpgate, workdir, "mcpgate-lab",
                                           h.gateway_yaml({"origin": origin_url}, [("lab", "/", "origin", "http", policy)], idp=idp))
        h.check_auth("haproxy jwt_verify", hap_port, "/mcp", [token])
        h.check_auth("mcpgate (lab policy)", lab_port, "/mcp", [token])
        auth = ("Authorization: Bearer " + token,)
        setups += [{"key": "nginx_token", "port": ngx_port, "pid": ngx.pid, "headers": auth},
                   {"key": "mcpgate_token", "port": gw_port, "pid": gw.pid, "headers": auth},
                   {"key": "haproxy_jwt", "port": hap_port, "pid": hap.pid, "headers": auth},
                   {"key": "mcpgate_lab", "port": lab_port, "pid": lab.pid, "headers": auth}]
    if with_fresh and args.fresh_tokens == "off":
        notes.append("fresh tokens: not run (--fresh-tokens off)")
    elif with_fresh:
        ok, diagnostics = fresh_supported(ctx, idp)
        if not ok and args.fresh_tokens == "on":
            raise h.SetupError("the gateway refuses entra.token_cache_entries (needed for the fresh-token "
                               f"setups):\n{diagnostics}")
        if not ok:
            note = ("fresh tokens: SKIPPED - this mcpgate refuses `entra: {token_cache_entries: 0}` "
                    f"({diagnostics.splitlines()[0] if diagnostics else 'no message'})")
            print(note, flush=True)
            notes.append(note)
        else:
            token_file = os.path.join(workdir, "tokens.txt")
            with open(token_file, "w") as f:
                f.write("\n".join(idp["tokens"]) + "\n")
            hapf, hapf_port = h.haproxy_jwt(procs, workdir, ctx.tools["haproxy"], "haproxy-jwt-fresh", origin, idp)
            labf, _, labf_port = h.start_gateway(
                procs, ctx.mcpgate, workdir, "mcpgate-lab-fresh",
                h.gateway_yaml({"origin": origin_url}, [("lab", "/", "origin", "http", policy)], idp=idp,
                               token_cache_entries=0))
            h.check_auth("haproxy jwt_verify (fresh tokens)", hapf_port, "/mcp", idp["tokens"])
            h.check_auth("mcpgate (lab policy, cache off)", labf_port, "/mcp", idp["tokens"])
            rotation = {"script": os.path.join(h.LUA, "tokens.lua"), "script_args": (token_file,)}
            setups += [{"key": "haproxy_jwt_fresh", "port": hapf_port, "pid": hapf.pid, **rotation},
                       {"key": "mcpgate_lab_fresh", "port": labf_port, "pid": labf.pid, **rotation}]
            note = (f"fresh tokens: a rotation of {len(idp['tokens'])} distinct emulator tokens, one per request "
                    "(wrk Lua); mcpgate runs with entra.token_cache_entries: 0 (verified-token cache off)")
            print(note, flush=True)
            notes.append(note)

    conns = args.connections
    runs = {s["key"]: {c: [] for c in conns} for s in setups}
    print(f"\nthroughput: {len(setups)} setups x connections {','.join(map(str, conns))} x {args.seconds}s x "
          f"{args.rounds} rounds, interleaved; wrk (1 thread) and the origin on core 0, the proxy alone on core 1",
          flush=True)
    for r in range(args.rounds):
        for c in conns:
            for s in setups:
                res = h.measured_wrk(s["pid"], f"http://127.0.0.1:{s['port']}/mcp", args.seconds, c,
                                     s.get("headers", ()), s.get("script"), s.get("script_args", ()))
                if res["non2xx"]:
                    raise h.SetupError(f"{NAMES[s['key']]}: {res['non2xx']} of {res['requests']} answers were not 2xx "
                                       f"at {c} connections; the figures would be wrong")
                runs[s["key"]][c].append(res)
                print(f"  round {r + 1} c={c:<4d} {NAMES[s['key']]:46s} {res['rps']:9.0f} req/s  "
                      f"p50 {res['p50']:.3f} ms  p99 {res['p99']:.3f} ms"
                      + (f"  proxy CPU {res['cpu_us']:.1f} us/req" if s["pid"] else "")
                      + (f"  socket errors: {res['socket_errors']}" if res["socket_errors"] else ""), flush=True)
    medians = {}
    for s in setups:
        medians[s["key"]] = {}
        for c in conns:
            rows = runs[s["key"]][c]
            m = {k: statistics.median(x[k] for x in rows) for k in ("rps", "p50", "p99")}
            m["cpu_us"] = statistics.median(x["cpu_us"] for x in rows) if s["pid"] else None
            medians[s["key"]][c] = m
    return {"setups": [s["key"] for s in setups], "names": {s["key"]: NAMES[s["key"]] for s in setups},
            "medians": medians, "runs": runs, "notes": notes}
