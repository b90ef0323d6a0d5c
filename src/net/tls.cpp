#include "net/tls.hpp"

#include <boost/asio/ssl/context.hpp>

namespace mcpgate::net {

namespace ssl = boost::asio::ssl;

struct TlsServerContext::Impl {
  ssl::context ctx{ssl::context::tls_server};
};

TlsServerContext::TlsServerContext() : impl_(std::make_unique<Impl>()) {}
TlsServerContext::~TlsServerContext() = default;
void* TlsServerContext::native() const { return &impl_->ctx; }

core::Result<std::shared_ptr<TlsServerContext>, std::string> TlsServerContext::from_pem(
    std::string_view chain_pem, std::string_view key_pem) {
  std::shared_ptr<TlsServerContext> out(new TlsServerContext());
  auto& ctx = out->impl_->ctx;
  boost::system::error_code ec;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                      ssl::context::single_dh_use,
                  ec);
  if (!ec) ctx.use_certificate_chain(boost::asio::buffer(chain_pem.data(), chain_pem.size()), ec);
  if (ec) return core::fail("TLS certificate: " + ec.message());
  ctx.use_private_key(boost::asio::buffer(key_pem.data(), key_pem.size()), ssl::context::pem, ec);
  if (ec) return core::fail("TLS private key: " + ec.message());
  return out;
}

struct TlsClientContext::Impl {
  ssl::context ctx{ssl::context::tls_client};
};

TlsClientContext::TlsClientContext() : impl_(std::make_unique<Impl>()) {}
TlsClientContext::~TlsClientContext() = default;
void* TlsClientContext::native() const { return &impl_->ctx; }

core::Result<std::shared_ptr<TlsClientContext>, std::string> TlsClientContext::create(
    const std::string& ca_file) {
  std::shared_ptr<TlsClientContext> out(new TlsClientContext());
  auto& ctx = out->impl_->ctx;
  boost::system::error_code ec;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  if (ec) return core::fail("TLS client options: " + ec.message());
  ctx.set_verify_mode(ssl::verify_peer, ec);
  if (ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
    if (ec) return core::fail("the system certificate store: " + ec.message());
  } else {
    ctx.load_verify_file(ca_file, ec);
    if (ec) return core::fail(ca_file + ": no usable CA certificates (" + ec.message() + ")");
  }
  return out;
}

}  // namespace mcpgate::net
