// core: small string helpers shared by every module (ASCII case folding, splitting, GUIDs).
// Must not depend on anything but the standard library.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::core {

char ascii_lower(char c);
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
std::string_view trim(std::string_view s);

// Splits on every occurrence of `separator` (which must not be empty); keeps empty parts.
std::vector<std::string_view> split(std::string_view s, std::string_view separator);

// 8-4-4-4-12 hexadecimal, either case, no braces.
bool is_guid(std::string_view s);

// Appends Unicode code point `cp` (at most 0x10FFFF, not a surrogate) as UTF-8.
void append_utf8(std::string& out, unsigned cp);

// Makes any bytes safe to print in a log line or message: printable ASCII is kept, everything
// else becomes \xNN, and the result is cut at `max` characters with "..." appended.
std::string printable(std::string_view s, std::size_t max = 80);

// Constant-time equality for secrets: the time taken depends on the lengths only.
bool constant_time_equals(std::string_view a, std::string_view b);

}  // namespace mcpgate::core
