// oidc: signing keys from an OpenID configuration (discovery document → jwks_uri → JWKS), kept
// fresh in the background: refreshed every hour, fetched again on an unknown `kid` at most once
// per 5 minutes, the last good keys kept while the issuer is down, nothing trusted before the
// first good fetch (fail closed). Fetches run on the service's own thread; the request path only
// reads an immutable snapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/result.hpp"
#include "jwt/key_source.hpp"

namespace mcpgate::oidc {

struct Fetched {
  int status = 0;
  std::string body;
};
using FetchFn = std::function<core::Result<Fetched, std::string>(const std::string& url)>;

// Where an authority host really is, and whom to trust there (offline sovereign clouds).
struct HostRoute {
  std::string address;  // host:port
  std::string ca_file;  // empty: ServiceOptions::ca_file
};

struct ServiceOptions {
  std::chrono::milliseconds refresh_interval{std::chrono::hours(1)};
  std::chrono::milliseconds min_refetch_interval{std::chrono::minutes(5)};
  std::string ca_file;  // trust for https fetches (the emulator's CA); empty: the system store
  FetchFn fetch;        // empty: net::fetch over HTTP(S)
  std::map<std::string, HostRoute> hosts;  // by lower-case host name; for the default fetch
};

class KeyService;

class KeySetProvider final : public jwt::KeySource {
 public:
  const std::string& url() const override { return url_; }
  // Cheap on the request path: each thread keeps its own reference and takes the lock only when
  // the generation moved.
  const std::shared_ptr<const jwt::KeySnapshot>& snapshot() const override;
  // Fetches for an unknown `kid` are limited to one per min_refetch_interval (10 s while there
  // are no keys at all); the first fetch is never limited.
  void refresh(std::function<void()> done) override;

 private:
  friend class KeyService;
  KeySetProvider(KeyService& service, std::string url) : service_(service), url_(std::move(url)) {}
  void fetch_now();  // service thread

  KeyService& service_;
  const std::string url_;
  const std::uint64_t id_ = next_id_++;
  static inline std::atomic<std::uint64_t> next_id_{1};
  mutable std::mutex mu_;
  std::shared_ptr<const jwt::KeySnapshot> current_ = std::make_shared<jwt::KeySnapshot>();
  std::atomic<std::uint64_t> generation_{0};
  std::chrono::steady_clock::time_point last_attempt_{};
  bool ever_attempted_ = false;
  bool queued_ = false;
  std::vector<std::function<void()>> waiting_;
};

// Owns the providers (one per configuration URL, shared by every policy that names it) and the
// thread that fetches for them.
class KeyService {
 public:
  explicit KeyService(ServiceOptions options);
  ~KeyService();
  std::shared_ptr<KeySetProvider> provider(const std::string& openid_config_url);
  // Fetches so far: (succeeded, failed).
  std::pair<std::uint64_t, std::uint64_t> fetches() const {
    return {fetches_ok_.load(), fetches_failed_.load()};
  }

 private:
  friend class KeySetProvider;
  void enqueue(KeySetProvider* p);
  void run();

  ServiceOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<KeySetProvider>> providers_;
  std::deque<KeySetProvider*> queue_;  // providers live as long as the service
  bool stopping_ = false;
  std::atomic<std::uint64_t> fetches_ok_{0}, fetches_failed_{0};
  std::thread thread_;
};

}  // namespace mcpgate::oidc
