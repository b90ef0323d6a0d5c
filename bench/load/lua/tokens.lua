-- wrk script: a different bearer token on each request, in turn, from a file of tokens (one a
-- line), so that no verified-token cache can help the proxy.
--   wrk -s tokens.lua URL -- TOKEN_FILE
local requests = {}
local next_one = 0

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot read the token file")
  for token in file:lines() do
    if #token > 0 then
      local headers = {}
      for name, value in pairs(wrk.headers) do headers[name] = value end
      headers["Authorization"] = "Bearer " .. token
      requests[#requests + 1] = wrk.format(nil, nil, headers)
    end
  end
  file:close()
  assert(#requests > 0, "no tokens in the token file")
end

function request()
  next_one = next_one % #requests + 1
  return requests[next_one]
end
