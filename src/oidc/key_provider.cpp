#include "oidc/key_provider.hpp"

#include <cctype>
#include <unordered_map>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "net/http_client.hpp"

namespace mcpgate::oidc {

using Clock = std::chrono::steady_clock;

const std::shared_ptr<const jwt::KeySnapshot>& KeySetProvider::snapshot() const {
  // Each thread keeps its own reference, so the request path touches no shared reference count.
  thread_local std::unordered_map<std::uint64_t, std::shared_ptr<const jwt::KeySnapshot>> mine;
  auto& slot = mine[id_];
  const auto generation = generation_.load(std::memory_order_acquire);
  if (!slot || slot->generation != generation) {
    std::lock_guard lock(mu_);
    slot = current_;
  }
  return slot;
}

void KeySetProvider::refresh(std::function<void()> done) {
  std::unique_lock lock(mu_);
  const auto limit = current_->keys
                         ? service_.options_.min_refetch_interval
                         : std::min<std::chrono::milliseconds>(
                               service_.options_.min_refetch_interval, std::chrono::seconds(10));
  const bool recent = ever_attempted_ && Clock::now() - last_attempt_ < limit;
  if (recent && !queued_) {
    lock.unlock();
    if (done) done();
    return;
  }
  if (done) waiting_.push_back(std::move(done));
  if (queued_) return;
  queued_ = true;
  lock.unlock();
  service_.enqueue(this);
}

void KeySetProvider::fetch_now() {
  std::string error;
  std::string issuer;
  std::shared_ptr<const jwt::KeySet> keys;
  const auto get = [&](const std::string& url, core::Json& out) {
    auto r = service_.options_.fetch(url);
    if (!r) {
      error = r.error();
      return false;
    }
    if (r->status != 200) {
      error = "GET " + url + ": HTTP " + std::to_string(r->status);
      return false;
    }
    auto json = core::parse_json(r->body, {1024 * 1024, 32, true});
    if (!json) {
      error = "GET " + url + ": not JSON (" + json.error() + ")";
      return false;
    }
    out = std::move(json.value());
    return true;
  };
  core::Json config, jwks;
  if (get(url_, config)) {
    const std::string* jwks_uri = config.find_string("jwks_uri");
    const std::string* iss = config.find_string("issuer");
    if (!jwks_uri || !iss) {
      error = url_ + " names no jwks_uri or issuer";
    } else if (get(*jwks_uri, jwks)) {
      std::vector<std::string> warnings;
      auto ks = jwt::KeySet::from_jwks(jwks.dump(), &warnings);
      if (!ks) {
        error = *jwks_uri + ": " + ks.error();
      } else if (ks->empty()) {
        error = *jwks_uri + ": no usable keys";
      } else {
        keys = std::make_shared<const jwt::KeySet>(std::move(ks.value()));
        issuer = *iss;
      }
    }
  }
  ++(keys ? service_.fetches_ok_ : service_.fetches_failed_);
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mu_);
    last_attempt_ = Clock::now();
    ever_attempted_ = true;
    queued_ = false;
    auto next = std::make_shared<jwt::KeySnapshot>(*current_);
    if (keys) {
      next->keys = std::move(keys);
      next->issuer = std::move(issuer);
      next->error.clear();
    } else {
      next->error = error;  // the last good keys, if any, stay
    }
    next->generation = generation_.load() + 1;
    current_ = std::move(next);
    generation_.store(current_->generation, std::memory_order_release);
    callbacks.swap(waiting_);
  }
  for (auto& c : callbacks) c();
}

KeyService::KeyService(ServiceOptions options) : options_(std::move(options)) {
  if (!options_.fetch) {
    options_.fetch = [ca = options_.ca_file, hosts = options_.hosts](
                         const std::string& url) -> core::Result<Fetched, std::string> {
      net::FetchOptions o;
      o.ca_file = ca;
      // The URL's host, lower-cased, for the host routes.
      const auto start = url.find("://");
      if (start != std::string::npos && !hosts.empty()) {
        const auto end = url.find_first_of(":/?#", start + 3);
        std::string host = url.substr(start + 3, end == std::string::npos ? end : end - start - 3);
        for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (const auto it = hosts.find(host); it != hosts.end()) {
          o.connect_to = it->second.address;
          if (!it->second.ca_file.empty()) o.ca_file = it->second.ca_file;
        }
      }
      auto r = net::fetch(url, o);
      if (!r) return core::fail(r.error());
      return Fetched{r->status, std::move(r->body)};
    };
  }
  thread_ = std::thread([this] { run(); });
}

KeyService::~KeyService() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<KeySetProvider> KeyService::provider(const std::string& url) {
  std::lock_guard lock(mu_);
  auto& p = providers_[url];
  if (!p) p.reset(new KeySetProvider(*this, url));
  return p;
}

void KeyService::enqueue(KeySetProvider* p) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(p);
  }
  cv_.notify_all();
}

void KeyService::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!queue_.empty()) {
      KeySetProvider* p = queue_.front();
      queue_.pop_front();
      lock.unlock();
      p->fetch_now();
      lock.lock();
      continue;
    }
    // Hourly refresh: every provider whose last fetch is older than the interval.
    auto next_due = Clock::now() + options_.refresh_interval;
    for (auto& [url, p] : providers_) {
      std::unique_lock plock(p->mu_);
      if (!p->ever_attempted_ || p->queued_) continue;
      // Without keys, try again soon; with them, on the refresh interval.
      const auto due = p->last_attempt_ + (p->current_->keys ? options_.refresh_interval
                                                             : std::min<std::chrono::milliseconds>(
                                                                   options_.refresh_interval,
                                                                   std::chrono::seconds(30)));
      if (due <= Clock::now()) {
        p->queued_ = true;
        queue_.push_back(p.get());
      } else {
        next_due = std::min(next_due, due);
      }
    }
    if (queue_.empty()) cv_.wait_until(lock, next_due);
  }
}

}  // namespace mcpgate::oidc
