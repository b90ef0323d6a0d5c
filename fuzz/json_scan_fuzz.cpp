// libFuzzer target: core::scan_object and core::json_string held to parse_json on untrusted
// bytes. A text is scanned exactly when parse_json (duplicates allowed) reads it as an object
// whose top-level names are all different, and each member then reads the same both ways.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.hpp"

using namespace mcpgate;

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  core::JsonLimits limits;
  limits.max_depth = 16;
  core::JsonLimits lenient = limits;
  lenient.reject_duplicate_keys = false;

  std::vector<std::pair<std::string, std::string_view>> scanned;
  const bool ok = core::scan_object(text, limits, [&](std::string_view name, std::string_view v) {
    scanned.emplace_back(std::string(name), v);
  });
  const auto whole = core::parse_json(text, lenient);
  bool expected = whole && whole->is_object();
  if (expected) {
    const auto& members = whole->as_object();
    for (std::size_t i = 0; i < members.size() && expected; ++i) {
      for (std::size_t j = 0; j < i; ++j)
        expected = expected && members[i].first != members[j].first;
    }
  }
  require(ok == expected);
  if (!ok) return 0;
  const auto& members = whole->as_object();
  require(scanned.size() == members.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    require(scanned[i].first == members[i].first);
    const auto value = core::parse_json(scanned[i].second, lenient);
    require(value && value->dump() == members[i].second.dump());
    const auto string = core::json_string(scanned[i].second);
    require(string.has_value() == value->is_string());
    if (string) require(*string == value->as_string());
  }
  return 0;
}
