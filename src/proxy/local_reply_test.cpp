#include "proxy/local_reply.hpp"

#include <gtest/gtest.h>

namespace mcpgate::proxy {
namespace {

TEST(LocalReply, ApimBodiesByteForByte) {
  // OBS-429: Content-Length 84 for this body.
  const std::string limited =
      apim_error_body(429, "Rate limit is exceeded. Try again in 57 seconds.");
  EXPECT_EQ(limited,
            "{ \"statusCode\": 429, \"message\": \"Rate limit is exceeded. Try again in 57 "
            "seconds.\" }");
  EXPECT_EQ(limited.size(), 84u);
  EXPECT_EQ(apim_error_body(500, "Internal server error", "3f2a"),
            "{ \"statusCode\": 500, \"message\": \"Internal server error\", \"activityId\": "
            "\"3f2a\" }");
  EXPECT_EQ(apim_error_body(401, "quote \" and \\"),
            "{ \"statusCode\": 401, \"message\": \"quote \\\" and \\\\\" }");
}

}  // namespace
}  // namespace mcpgate::proxy
