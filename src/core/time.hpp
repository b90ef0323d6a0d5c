// core: Unix times for people (UTC, ISO 8601 or another strftime format).
// Must not depend on anything but the standard library.
#pragma once

#include <string>

namespace mcpgate::core {

// Formats seconds since the epoch in UTC. Values outside year 1970..9999 (and NaN) print as
// "(out of range)" instead of overflowing a time_t.
std::string format_utc(double seconds, const char* format = "%Y-%m-%dT%H:%M:%SZ");

}  // namespace mcpgate::core
