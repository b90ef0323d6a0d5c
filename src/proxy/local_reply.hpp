// proxy: the one mapping from gateway-made errors to HTTP answers, in API Management's body shape
// `{ "statusCode": N, "message": "..." }` (apim-policies.md §5).
#pragma once

#include <string>
#include <string_view>

namespace mcpgate::proxy {

// The JSON body APIM writes, byte for byte: `{ "statusCode": 404, "message": "Resource not found"
// }`.
// Unexpected failures (500) also carry an activityId, as APIM's do; ours is the request id.
std::string apim_error_body(int status, std::string_view message,
                            std::string_view activity_id = {});

// The texts we answer with when the gateway itself refuses or fails (docs/compatibility.md).
inline constexpr std::string_view kNotFound = "Resource not found";
inline constexpr std::string_view kBadGateway = "Bad gateway: the backend could not be reached";
inline constexpr std::string_view kGatewayTimeout =
    "Gateway timeout: the backend did not answer in time";
inline constexpr std::string_view kBadBackendResponse =
    "Bad gateway: the backend sent an invalid response";
inline constexpr std::string_view kPayloadTooLarge = "Request entity too large";
inline constexpr std::string_view kHeadersTooLarge = "Request header fields too large";
inline constexpr std::string_view kBadRequest = "Bad request";
inline constexpr std::string_view kVersionNotSupported = "HTTP version not supported";
inline constexpr std::string_view kOriginNotAllowed = "Origin not allowed";
inline constexpr std::string_view kHostNotAllowed = "Host not allowed";
inline constexpr std::string_view kMethodNotAllowed = "Method not allowed";
inline constexpr std::string_view kTooManyConnections =
    "Service unavailable: too many connections, retry later";

}  // namespace mcpgate::proxy
