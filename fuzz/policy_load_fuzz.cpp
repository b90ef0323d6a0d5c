// libFuzzer target: the policy loader (the tolerant XML reader with its C# expression scan, named
// value substitution, the schema checks and <base/> resolution).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/document.hpp"

using namespace mcpgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  policy::LoadOptions options;
  options.named_values = [](std::string_view name) -> std::optional<std::string> {
    if (name == "a") return std::string("x\ny");
    if (name == "b") return std::string("@(\"");
    return std::nullopt;
  };
  std::vector<policy::Diagnostic> errors;
  auto doc = policy::load_policy(input, "fuzz.xml", policy::Scope::kApi, options, errors);
  if (doc) (void)policy::resolve({nullptr, doc});
  for (const auto& e : errors) (void)e.to_string();
  return 0;
}
