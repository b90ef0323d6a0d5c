// app: the --ready-file the long-running commands write once they listen, for scripts and tests
// that start them on port 0.
#pragma once

#include <cstdio>
#include <fstream>
#include <string>

namespace mcpgate::app {

// Writes `json` and a newline to `path` atomically (a reader never sees half a file); nothing
// when `path` is empty.
inline void write_ready_file(const std::string& path, const std::string& json) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << json << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace mcpgate::app
