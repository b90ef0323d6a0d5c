#include "core/time.hpp"

#include <ctime>

namespace mcpgate::core {

std::string format_utc(double seconds, const char* format) {
  if (!(seconds >= 0 && seconds <= 253402300799.0)) return "(out of range)";
  const auto secs = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  const std::size_t n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

}  // namespace mcpgate::core
