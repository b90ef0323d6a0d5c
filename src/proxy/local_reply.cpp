#include "proxy/local_reply.hpp"

#include "core/json.hpp"

namespace mcpgate::proxy {

std::string apim_error_body(int status, std::string_view message, std::string_view activity_id) {
  // APIM separates members with ", " and pads the braces with spaces.
  std::string out = "{ \"statusCode\": " + std::to_string(status) + ", \"message\": ";
  core::append_json_string(out, message);
  if (!activity_id.empty()) {
    out += ", \"activityId\": ";
    core::append_json_string(out, activity_id);
  }
  out += " }";
  return out;
}

}  // namespace mcpgate::proxy
