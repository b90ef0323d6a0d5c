// app: files the commands write: the --ready-file of the long-running ones (for scripts and tests
// that start them on port 0), and credentials (tokens, secrets) only their owner may read.
#pragma once

#include <fcntl.h>
#include <unistd.h>

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

// Replaces `path` with `content`, mode 0600 whatever the old file's mode was (a new file, renamed
// over it). False when it cannot be written.
inline bool write_private_file(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const bool ok = ::close(fd) == 0 && done == content.size();
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace mcpgate::app
