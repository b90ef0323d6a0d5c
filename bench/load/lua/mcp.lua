-- wrk script: MCP over Streamable HTTP, three JSON-RPC POSTs in turn on every connection:
-- initialize, tools/list, and tools/call of the sample server's `echo` tool. tools/list and
-- tools/call use a session opened beforehand (its Mcp-Session-Id is the first argument).
--   wrk -s mcp.lua http://127.0.0.1:PORT/mcp -- SESSION_ID PROTOCOL_VERSION [TOKEN]
local requests = {}
local next_one = 0

local function post(body, session, version, token)
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "application/json"
  headers["Accept"] = "application/json, text/event-stream"
  if session then
    headers["Mcp-Session-Id"] = session
    headers["MCP-Protocol-Version"] = version
  end
  if token then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("POST", wrk.path, headers, body)
end

function init(args)
  local session, version, token = args[1], args[2], args[3]
  requests[1] = post('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'
                     .. version .. '","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}',
                     nil, nil, token)
  requests[2] = post('{"jsonrpc":"2.0","id":2,"method":"tools/list"}', session, version, token)
  requests[3] = post('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo",'
                     .. '"arguments":{"message":"hello through the gateway"}}}', session, version, token)
end

function request()
  next_one = next_one % #requests + 1
  return requests[next_one]
end
