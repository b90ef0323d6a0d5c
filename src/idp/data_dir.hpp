// idp: the emulator's data directory: the SQLite database, its own local CA, and a server
// certificate for localhost, 127.0.0.1, ::1 and any extra names. Created on first use.
// Must not depend on Asio.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "idp/store.hpp"

namespace mcpgate::idp {

struct DataDir {
  std::string path;
  std::string ca_path;           // PEM: what clients must trust
  std::string server_chain_pem;  // leaf + CA
  std::string server_key_pem;
  std::unique_ptr<Store> store;
};

// Opens (creating when missing) the directory and its database. With `tls`, also makes sure the
// CA and a server certificate covering the default names plus `extra_names` exist (a new server
// certificate is issued when the names change; the CA is kept).
core::Result<DataDir, std::string> open_data_dir(const std::string& path, bool tls,
                                                 const std::vector<std::string>& extra_names = {});

std::string default_data_dir();

}  // namespace mcpgate::idp
