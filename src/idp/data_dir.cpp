#include "idp/data_dir.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "crypto/x509.hpp"

namespace mcpgate::idp {
namespace {

using core::fail;

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

bool write_file(const std::string& path, const std::string& data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    out << data;
    if (!out) return false;
  }
  ::chmod(tmp.c_str(), mode);
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

bool make_dirs(const std::string& path) {
  std::string partial;
  for (std::size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!partial.empty() && ::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) return false;
    }
    if (i < path.size()) partial += path[i];
  }
  return true;
}

bool is_ip(const std::string& s) {
  return s.find_first_not_of("0123456789.") == std::string::npos ||
         s.find(':') != std::string::npos;
}

}  // namespace

std::string default_data_dir() {
  if (const char* env = std::getenv("MCPGATE_IDP_DATA"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/mcpgate/idp";
}

core::Result<DataDir, std::string> open_data_dir(const std::string& path, bool tls,
                                                 const std::vector<std::string>& extra_names) {
  DataDir dir;
  dir.path = path;
  if (!make_dirs(path)) return fail("cannot create " + path + ": " + std::strerror(errno));
  auto store = Store::open(path + "/idp.db");
  if (!store) return fail(store.error());
  dir.store = std::move(store.value());
  ::chmod((path + "/idp.db").c_str(), 0600);
  if (!tls) return dir;

  // The CA: made once, kept (clients trust it).
  dir.ca_path = path + "/ca.pem";
  const std::string ca_key_path = path + "/ca-key.pem";
  std::string ca_pem, ca_key_pem;
  if (!read_file(dir.ca_path, ca_pem) || !read_file(ca_key_path, ca_key_pem)) {
    auto key = crypto::PrivateKey::generate_ec(crypto::Curve::kP256);
    if (!key) return fail(key.error());
    auto cert = crypto::self_signed_certificate(
        *key, {.common_name = "mcpgate idp local CA", .valid_days = 3650, .is_ca = true});
    if (!cert) return fail(cert.error());
    ca_pem = cert->pem();
    ca_key_pem = key->to_pem();
    if (!write_file(ca_key_path, ca_key_pem, 0600) || !write_file(dir.ca_path, ca_pem, 0644)) {
      return fail("cannot write the CA into " + path);
    }
  }
  auto ca_key = crypto::PrivateKey::from_pem(ca_key_pem);
  auto ca_cert = crypto::certificate_from_pem(ca_pem);
  if (!ca_key || !ca_cert)
    return fail("the CA in " + path +
                " is unreadable; delete ca.pem and ca-key.pem to make a new one");

  // The server certificate: reissued when the set of names changes.
  std::vector<std::string> names{"localhost", "127.0.0.1", "::1"};
  for (const auto& n : extra_names) {
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  std::string names_line;
  for (const auto& n : names) names_line += n + "\n";
  const std::string server_path = path + "/server.pem";
  const std::string server_key_path = path + "/server-key.pem";
  const std::string names_path = path + "/server.names";
  std::string existing_names, leaf_pem, leaf_key_pem;
  if (!read_file(names_path, existing_names) || existing_names != names_line ||
      !read_file(server_path, leaf_pem) || !read_file(server_key_path, leaf_key_pem)) {
    auto key = crypto::PrivateKey::generate_ec(crypto::Curve::kP256);
    if (!key) return fail(key.error());
    crypto::CertificateRequest req{.common_name = names[0], .valid_days = 825};
    for (const auto& n : names) (is_ip(n) ? req.ip_addresses : req.dns_names).push_back(n);
    auto cert = crypto::issue_certificate(*key, req, *ca_key, *ca_cert);
    if (!cert) return fail(cert.error());
    leaf_pem = cert->pem();
    leaf_key_pem = key->to_pem();
    if (!write_file(server_key_path, leaf_key_pem, 0600) ||
        !write_file(server_path, leaf_pem, 0644) || !write_file(names_path, names_line, 0644)) {
      return fail("cannot write the server certificate into " + path);
    }
  }
  dir.server_chain_pem = leaf_pem + ca_pem;
  dir.server_key_pem = leaf_key_pem;
  return dir;
}

}  // namespace mcpgate::idp
