// libFuzzer target: the HTTP/1 head parsers, request and response, on the same bytes. Beyond
// "no crash": what they accept holds only what RFC 9112 allows, every view lies inside the
// input, and reading the same bytes in pieces finds the same end.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/strings.hpp"
#include "http/head.hpp"

using namespace mcpgate;

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void require_field_values(const std::vector<http::HeadField>& fields, std::string_view h) {
  for (const auto& f : fields) {
    require(inside(f.name, h) && inside(f.value, h) && !f.name.empty());
    for (const char c : f.value) {
      const auto u = static_cast<unsigned char>(c);
      require((u >= 0x20 || u == '\t') && u != 0x7f);
    }
    if (!f.value.empty()) {
      require(f.value.front() != ' ' && f.value.front() != '\t');
      require(f.value.back() != ' ' && f.value.back() != '\t');
    }
  }
}

void check_response(std::string_view input) {
  http::ResponseHead head;
  const auto status = http::parse_response_head(input, 8192, head);
  if (input.size() / 2 <= http::find_head_end(input, 0)) {
    http::ResponseHead again;
    require(http::parse_response_head(input, 8192, again, input.size() / 2) == status);
  }
  if (status != http::HeadStatus::kComplete) return;
  require(head.size == http::find_head_end(input, 0) && head.size <= 8192);
  const std::string_view h = input.substr(0, head.size);
  require(head.status >= 100 && head.status <= 999);
  require(head.version == 10 || head.version == 11);
  require(head.reason.empty() || inside(head.reason, h));
  require_field_values(head.fields, h);
  require(!(head.transfer_encoding && (head.content_length || head.version == 10)));
  require(!head.chunked || head.transfer_encoding);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_response(input);
  http::RequestHead head;
  const auto status = http::parse_request_head(input, 8192, head);
  const std::size_t end = http::find_head_end(input, 0);
  if (size > 0) require(http::find_head_end(input, size / 2) == end || end < size / 2);
  if (end >= size / 2) {  // a parse told what an earlier one searched agrees with a full one
    http::RequestHead again;
    require(http::parse_request_head(input, 8192, again, size / 2) == status);
  }
  if (status != http::HeadStatus::kComplete) return 0;
  require(head.size == end && end <= size && end <= 8192);
  const std::string_view h = input.substr(0, head.size);
  require(inside(head.method, h) && inside(head.target, h) && !head.method.empty());
  require(head.version == 10 || head.version == 11);
  require_field_values(head.fields, h);
  require(!(head.transfer_encoding && head.content_length));
  std::size_t hosts = 0;  // RFC 9112 §3.2
  for (const auto& f : head.fields) hosts += core::iequals(f.name, "host") ? 1 : 0;
  require(hosts <= 1 && (hosts == 1 || head.version == 10));
  return 0;
}
