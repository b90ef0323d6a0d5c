#include "policy/runtime.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <ctime>

#include "core/strings.hpp"
#include "http/message.hpp"
#include "policy/validate.hpp"

namespace mcpgate::policy {

bool multi_line_header(std::string_view name) {
  static constexpr std::string_view kNames[] = {"User-Agent",
                                                "WWW-Authenticate",
                                                "Proxy-Authenticate",
                                                "Cookie",
                                                "Set-Cookie",
                                                "Warning",
                                                "Date",
                                                "Expires",
                                                "If-Modified-Since",
                                                "If-Unmodified-Since",
                                                "Last-Modified",
                                                "Retry-After"};
  for (const auto n : kNames) {
    if (core::iequals(n, name)) return true;
  }
  return false;
}

std::vector<std::string> FieldList::values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : fields) {
    if (core::iequals(n, name)) out.push_back(v);
  }
  return out;
}
std::optional<std::string_view> FieldList::first(std::string_view name) const {
  for (const auto& [n, v] : fields) {
    if (core::iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}
void FieldList::erase(std::string_view name) {
  std::erase_if(fields, [&](const auto& f) { return core::iequals(f.first, name); });
}
void FieldList::add(std::string_view name, std::string_view value) {
  fields.emplace_back(std::string(name), std::string(value));
}

namespace {

// ---- reading compiled elements ------------------------------------------------------------

const std::string* attr(const Element& e, std::string_view name) {
  const Attribute* a = e.attribute(name);
  return a ? &a->value.text : nullptr;  // the loader has refused expressions already
}

bool boolean_attr(const Element& e, std::string_view name, bool fallback) {
  const std::string* v = attr(e, name);
  return v ? core::iequals(*v, "true") : fallback;
}

int int_attr(const Element& e, std::string_view name, int fallback) {
  const std::string* v = attr(e, name);
  return v ? std::stoi(*v) : fallback;  // the loader checked the digits and the range
}

std::vector<std::string> child_texts(const Element& e, std::string_view child) {
  std::vector<std::string> out;
  for (const auto& c : e.children) {
    if (c.name == child) out.push_back(c.text ? c.text->text : std::string());
  }
  return out;
}

const Element* child(const Element& e, std::string_view name) {
  for (const auto& c : e.children) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

Flow fail(Context& ctx, std::string source, std::string reason, std::string message, int status,
          std::string response_message) {
  LastError e;
  e.source = std::move(source);
  e.reason = std::move(reason);
  e.message = std::move(message);
  e.status = status;
  e.response_message = std::move(response_message);
  ctx.error = std::move(e);
  return Flow::kError;
}

// ---- the policies -------------------------------------------------------------------------

enum class ExistsAction { kOverride, kSkip, kAppend, kDelete };

ExistsAction exists_action(const Element& e) {
  const std::string* v = attr(e, "exists-action");
  if (!v || core::iequals(*v, "override")) return ExistsAction::kOverride;
  if (core::iequals(*v, "skip")) return ExistsAction::kSkip;
  if (core::iequals(*v, "append")) return ExistsAction::kAppend;
  return ExistsAction::kDelete;
}

// set-header: the request's header in inbound and backend, the response's in outbound and
// on-error. Values join with commas except for the headers APIM writes line by line.
class SetHeader final : public Policy {
 public:
  SetHeader(const Element& e, bool on_response)
      : header_(*attr(e, "name")),
        action_(exists_action(e)),
        values_(child_texts(e, "value")),
        on_response_(on_response) {}

  static void apply_to(HeaderMap& h, const std::string& name, ExistsAction action,
                       const std::vector<std::string>& values) {
    const bool lines = multi_line_header(name);
    switch (action) {
      case ExistsAction::kDelete:
        h.erase(name);
        return;
      case ExistsAction::kSkip:
        if (!h.values(name).empty()) return;
        [[fallthrough]];
      case ExistsAction::kOverride:
        h.erase(name);
        if (values.empty()) {
          h.add(name, "");
        } else if (lines) {
          for (const auto& v : values) h.add(name, v);
        } else {
          h.add(name, join(values, ","));
        }
        return;
      case ExistsAction::kAppend: {
        if (lines) {
          for (const auto& v : values) h.add(name, v);
          return;
        }
        std::vector<std::string> all = h.values(name);
        all.insert(all.end(), values.begin(), values.end());
        h.erase(name);
        h.add(name, join(all, ","));
        return;
      }
    }
  }

  Flow apply(Context& ctx) const override {
    HeaderMap* h = on_response_ ? ctx.response_headers : ctx.request_headers;
    if (h) apply_to(*h, header_, action_, values_);
    return Flow::kContinue;
  }

  std::string header_;
  ExistsAction action_;
  std::vector<std::string> values_;
  bool on_response_;
};

class SetQueryParameter final : public Policy {
 public:
  explicit SetQueryParameter(const Element& e)
      : param_(*attr(e, "name")), action_(exists_action(e)), values_(child_texts(e, "value")) {}

  Flow apply(Context& ctx) const override {
    std::vector<std::string> kept;
    bool present = false;
    const std::string encoded_name = http::url_encode(param_);
    for (auto part : core::split(ctx.query, "&")) {
      if (part.empty()) continue;
      const auto eq = part.find('=');
      const auto name = http::url_decode(part.substr(0, eq), true);
      if (name && *name == param_) {
        present = true;
        if (action_ == ExistsAction::kAppend || action_ == ExistsAction::kSkip)
          kept.emplace_back(part);
        continue;
      }
      kept.emplace_back(part);
    }
    if (action_ != ExistsAction::kDelete && !(action_ == ExistsAction::kSkip && present)) {
      for (const auto& v : values_) kept.push_back(encoded_name + "=" + http::url_encode(v));
    }
    ctx.query = join(kept, "&");
    return Flow::kContinue;
  }

  std::string param_;
  ExistsAction action_;
  std::vector<std::string> values_;
};

class SetStatus final : public Policy {
 public:
  explicit SetStatus(const Element& e)
      : code_(int_attr(e, "code", 200)), reason_(attr(e, "reason") ? *attr(e, "reason") : "") {}
  Flow apply(Context& ctx) const override {
    ctx.status = code_;
    ctx.reason = reason_;
    return Flow::kContinue;
  }
  int code_;
  std::string reason_;
};

// set-body: the request's body in inbound and backend, the response's in outbound and on-error.
class SetBody final : public Policy {
 public:
  SetBody(const Element& e, bool on_response)
      : body_(e.text ? e.text->text : std::string()), on_response_(on_response) {}
  Flow apply(Context& ctx) const override {
    (on_response_ ? ctx.response_body : ctx.request_body) = body_;
    return Flow::kContinue;
  }
  std::string body_;
  bool on_response_;
};

class ReturnResponse final : public Policy {
 public:
  explicit ReturnResponse(const Element& e) {
    for (const auto& c : e.children) {
      if (c.name == "set-status") {
        response_.status = int_attr(c, "code", 200);
        if (const auto* r = attr(c, "reason")) response_.reason = *r;
      } else if (c.name == "set-body") {
        response_.body = c.text ? c.text->text : std::string();
      } else if (c.name == "set-header") {
        headers_.push_back({*attr(c, "name"), exists_action(c), child_texts(c, "value")});
      }
    }
  }

  Flow apply(Context& ctx) const override {
    LocalResponse r = response_;
    FieldList lines;
    for (const auto& h : headers_) SetHeader::apply_to(lines, h.name, h.action, h.values);
    r.headers = std::move(lines.fields);
    ctx.respond = std::move(r);
    return Flow::kRespond;
  }

  struct Header {
    std::string name;
    ExistsAction action;
    std::vector<std::string> values;
  };
  LocalResponse response_;
  std::vector<Header> headers_;
};

class MockResponse final : public Policy {
 public:
  explicit MockResponse(const Element& e)
      : status_(int_attr(e, "status-code", 200)),
        content_type_(attr(e, "content-type") ? *attr(e, "content-type") : "application/json") {}
  Flow apply(Context& ctx) const override {
    LocalResponse r;
    r.status = status_;
    r.headers.emplace_back("Content-Type", content_type_);
    r.body = std::string();
    ctx.respond = std::move(r);
    return Flow::kRespond;
  }
  int status_;
  std::string content_type_;
};

class CheckHeader final : public Policy {
 public:
  explicit CheckHeader(const Element& e)
      : header_(*attr(e, "name")),
        status_(int_attr(e, "failed-check-httpcode", 401)),
        message_(*attr(e, "failed-check-error-message")),
        ignore_case_(boolean_attr(e, "ignore-case", false)),
        allowed_(child_texts(e, "value")) {}

  Flow apply(Context& ctx) const override {
    const auto present =
        ctx.request_headers ? ctx.request_headers->values(header_) : std::vector<std::string>();
    if (present.empty())
      return fail(ctx, "check-header", "HeaderNotFound",
                  "Header " + header_ + " wasn't found in the request. Access denied.", status_,
                  message_);
    if (allowed_.empty()) return Flow::kContinue;
    for (const auto& v : present) {
      for (const auto& a : allowed_) {
        if (ignore_case_ ? core::iequals(a, v) : a == v) return Flow::kContinue;
      }
    }
    return fail(ctx, "check-header", "HeaderValueNotAllowed",
                "Header " + header_ + " value of " + core::printable(present.front(), 60) +
                    " isn't allowed. Access denied.",
                status_, message_);
  }

  std::string header_;
  int status_;
  std::string message_;
  bool ignore_case_;
  std::vector<std::string> allowed_;
};

// An IP address as 16 bytes (IPv4 as ::ffff:a.b.c.d), comparable as a string of bytes.
std::optional<std::array<unsigned char, 16>> parse_ip(std::string_view text) {
  std::string s(text);
  std::array<unsigned char, 16> out{};
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

class IpFilter final : public Policy {
 public:
  using Ip = std::array<unsigned char, 16>;
  IpFilter(const Element& e, std::vector<std::pair<Ip, Ip>> ranges)
      : allow_(core::iequals(*attr(e, "action"), "allow")), ranges_(std::move(ranges)) {}

  Flow apply(Context& ctx) const override {
    const auto ip = parse_ip(ctx.client_ip);
    if (!ip)
      return fail(ctx, "ip-filter", "FailedToParseCallerIP",
                  "Failed to establish IP address for the caller. Access denied.", 403,
                  "Forbidden");
    const bool listed = std::any_of(ranges_.begin(), ranges_.end(), [&](const auto& r) {
      return *ip >= r.first && *ip <= r.second;
    });
    if (allow_ && !listed)
      return fail(ctx, "ip-filter", "CallerIpNotAllowed",
                  "Caller IP address " + ctx.client_ip + " isn't allowed. Access denied.", 403,
                  "Forbidden");
    if (!allow_ && listed)
      return fail(ctx, "ip-filter", "CallerIpBlocked",
                  "Caller IP address is blocked. Access denied.", 403, "Forbidden");
    return Flow::kContinue;
  }

  bool allow_;
  std::vector<std::pair<Ip, Ip>> ranges_;
};

class SetVariable final : public Policy {
 public:
  explicit SetVariable(const Element& e) : var_(*attr(e, "name")), value_(*attr(e, "value")) {}
  Flow apply(Context& ctx) const override {
    ctx.variables[var_] = value_;
    return Flow::kContinue;
  }
  std::string var_, value_;
};

class ForwardRequest final : public Policy {
 public:
  explicit ForwardRequest(const Element& e)
      : fail_on_error_(boolean_attr(e, "fail-on-error-status-code", false)) {
    if (const auto* ms = attr(e, "timeout-ms")) {
      timeout_ = std::chrono::milliseconds(std::stoll(*ms));
    } else if (const auto* s = attr(e, "timeout")) {
      timeout_ = std::chrono::seconds(std::stoll(*s));
    }
  }
  Flow apply(Context& ctx) const override {
    ctx.forward = true;
    ctx.forward_timeout = timeout_;
    ctx.fail_on_error_status = fail_on_error_;
    return Flow::kContinue;
  }
  std::chrono::milliseconds timeout_{0};
  bool fail_on_error_ = false;
};

class RewriteUri final : public Policy {
 public:
  explicit RewriteUri(const Element& e) : copy_(boolean_attr(e, "copy-unmatched-params", true)) {
    const std::string& t = *attr(e, "template");
    const auto q = t.find('?');
    path_ = t.substr(0, q);
    if (q != std::string::npos) query_ = t.substr(q + 1);
  }
  Flow apply(Context& ctx) const override {
    std::string query = query_;
    if (copy_ && !ctx.query.empty()) query += (query.empty() ? "" : "&") + ctx.query;
    ctx.path = path_;
    ctx.query = std::move(query);
    return Flow::kContinue;
  }
  bool copy_;
  std::string path_, query_;
};

// What the counting policies keep of the gateway: the store and the clock (CompileEnv itself
// does not outlive compile()).
struct Counting {
  explicit Counting(const CompileEnv& env) : counters(env.counters), clock(env.now) {}
  double now() const {
    if (clock) return clock();
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::shared_ptr<CounterStore> counters;
  std::function<double()> clock;
};

// A wait in whole seconds, at least one: what Retry-After and the messages say.
long long whole_seconds(double s) { return std::max(1LL, static_cast<long long>(std::ceil(s))); }

// .NET's TimeSpan "c" format, which APIM's quota message uses: [d.]hh:mm:ss.
std::string timespan(long long seconds) {
  char buf[48];
  const long long d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60,
                  sec = seconds % 60;
  if (d > 0)
    std::snprintf(buf, sizeof buf, "%lld.%02lld:%02lld:%02lld", d, h, m, sec);
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", h, m, sec);
  return buf;
}

// rate-limit-by-key: `calls` per sliding `renewal-period` for each counter key, all scopes and
// APIs naming the same key sharing one counter.
class RateLimitByKey final : public Policy {
 public:
  RateLimitByKey(const Element& e, const CompileEnv& env)
      : env_(env),
        key_("rate-limit\n" + *attr(e, "renewal-period") + "\n" + *attr(e, "counter-key")),
        calls_(std::stoll(*attr(e, "calls"))),
        period_(int_attr(e, "renewal-period", 60)),
        count_(boolean_attr(e, "increment-condition", true)),
        amount_(int_attr(e, "increment-count", 1)),
        retry_header_(attr(e, "retry-after-header-name") ? *attr(e, "retry-after-header-name")
                                                         : "Retry-After"),
        retry_var_(attr(e, "retry-after-variable-name") ? *attr(e, "retry-after-variable-name")
                                                        : ""),
        remaining_header_(
            attr(e, "remaining-calls-header-name") ? *attr(e, "remaining-calls-header-name") : ""),
        remaining_var_(attr(e, "remaining-calls-variable-name")
                           ? *attr(e, "remaining-calls-variable-name")
                           : ""),
        total_header_(attr(e, "total-calls-header-name") ? *attr(e, "total-calls-header-name")
                                                         : "") {}

  Flow apply(Context& ctx) const override {
    const auto v = env_.counters->sliding(key_, calls_, period_, amount_, count_, env_.now());
    if (!remaining_header_.empty())
      ctx.answer_headers.emplace_back(remaining_header_, std::to_string(v.remaining));
    if (!remaining_var_.empty()) ctx.variables[remaining_var_] = std::to_string(v.remaining);
    if (!total_header_.empty())
      ctx.answer_headers.emplace_back(total_header_, std::to_string(calls_));
    if (v.allowed) return Flow::kContinue;
    const std::string wait = std::to_string(whole_seconds(v.retry_after));
    ctx.answer_headers.emplace_back(retry_header_, wait);
    if (!retry_var_.empty()) ctx.variables[retry_var_] = wait;
    Flow f = fail(ctx, "rate-limit-by-key", "RateLimitExceeded", "Rate limit is exceeded", 429,
                  "Rate limit is exceeded. Try again in " + wait + " seconds.");
    ctx.error->log_message = true;
    return f;
  }

  Counting env_;
  std::string key_;
  long long calls_;
  int period_;
  bool count_;
  long long amount_;
  std::string retry_header_, retry_var_, remaining_header_, remaining_var_, total_header_;
};

// quota-by-key: `calls` and/or `bandwidth` kilobytes (request body and answer) per fixed
// `renewal-period` (0: never renewed) from first-period-start.
class QuotaByKey final : public Policy {
 public:
  QuotaByKey(const Element& e, const CompileEnv& env, double origin)
      : env_(env),
        key_("quota\n" + *attr(e, "renewal-period") + "\n" + std::to_string(origin) + "\n" +
             *attr(e, "counter-key")),
        bytes_key_("quota-bytes\n" + key_.substr(6)),
        calls_(attr(e, "calls") ? std::stoll(*attr(e, "calls")) : 0),
        kilobytes_(attr(e, "bandwidth") ? std::stoll(*attr(e, "bandwidth")) : 0),
        period_(std::stoll(*attr(e, "renewal-period"))),
        origin_(origin),
        count_(boolean_attr(e, "increment-condition", true)) {}

  Flow apply(Context& ctx) const override {
    const double now = env_.now();
    if (calls_ > 0) {
      const auto v = env_.counters->fixed(key_, calls_, period_, origin_, 1, count_, now);
      if (!v.allowed) return refuse(ctx, "call volume", v.retry_after);
    }
    if (kilobytes_ > 0) {
      // Spent once the bytes are known; refused while the window's bytes reach the limit.
      const auto v =
          env_.counters->fixed(bytes_key_, kilobytes_ * 1024, period_, origin_, 1, false, now);
      if (!v.allowed) return refuse(ctx, "bandwidth", v.retry_after);
      if (count_) {
        ctx.on_done.emplace_back([counting = env_, key = bytes_key_, period = period_,
                                  origin = origin_](std::uint64_t bytes) {
          counting.counters->add_fixed(key, period, origin, static_cast<std::int64_t>(bytes),
                                       counting.now());
        });
      }
    }
    return Flow::kContinue;
  }

  Flow refuse(Context& ctx, const char* what, double retry_after) const {
    const long long wait = period_ > 0 ? whole_seconds(retry_after) : 0;
    std::string message = std::string("Out of ") + what + " quota.";
    if (period_ > 0) {
      message += " Quota will be replenished in " + timespan(wait) + ".";
      ctx.answer_headers.emplace_back("Retry-After", std::to_string(wait));
    }
    Flow f = fail(ctx, "quota-by-key", "QuotaExceeded", message, 403, message);
    ctx.error->log_message = true;
    return f;
  }

  Counting env_;
  std::string key_, bytes_key_;
  long long calls_, kilobytes_, period_;
  double origin_;
  bool count_;
};

// A sequence of policies run in place (the body of limit-concurrency).
using Steps = std::vector<std::shared_ptr<const Policy>>;

Flow run_steps(const Steps& steps, Context& ctx, std::size_t& position) {
  for (; position < steps.size(); ++position) {
    const Flow f = steps[position]->apply(ctx);
    if (f != Flow::kContinue) return f;
  }
  return Flow::kContinue;
}

// limit-concurrency: at most max-count requests run its policies at once (for forward-request:
// until the backend's answer has been relayed); the others get 429 at once.
class LimitConcurrency final : public Policy {
 public:
  LimitConcurrency(const Element& e, const CompileEnv& env, Steps steps)
      : counters_(env.counters),
        key_("concurrency\n" + *attr(e, "key")),
        max_(std::stoll(*attr(e, "max-count"))),
        steps_(std::move(steps)) {}

  Flow apply(Context& ctx) const override {
    // A wait for keys inside re-enters here: the slot taken the first time is still held.
    if (!holding(ctx)) {
      if (!counters_->acquire(key_, max_)) {
        Flow f = fail(ctx, "limit-concurrency", "ConcurrencyLimitExceeded",
                      "Too many concurrent requests", 429, "Too many requests");
        ctx.error->log_message = true;
        return f;
      }
      ctx.holds.push_back(
          std::shared_ptr<void>(const_cast<LimitConcurrency*>(this),
                                [c = counters_, k = key_](void*) { c->release(k); }));
    }
    // After a wait for keys, the steps go on from the one that waited, not from the first.
    std::size_t position = 0;
    if (const auto it = ctx.resume_at.find(this); it != ctx.resume_at.end()) {
      position = it->second;
      ctx.resume_at.erase(it);
    }
    const Flow f = run_steps(steps_, ctx, position);
    if (f == Flow::kPending) ctx.resume_at[this] = position;
    return f;
  }

  bool holding(const Context& ctx) const {
    return std::any_of(ctx.holds.begin(), ctx.holds.end(),
                       [this](const auto& h) { return h.get() == this; });
  }

  std::shared_ptr<CounterStore> counters_;
  std::string key_;
  long long max_;
  Steps steps_;
};

// cors: answers preflights and marks allowed cross-origin answers (apim-policies.md §3, CORS).
class Cors final : public Policy {
 public:
  explicit Cors(const Element& e)
      : credentials_(boolean_attr(e, "allow-credentials", false)),
        terminate_(boolean_attr(e, "terminate-unmatched-request", true)) {
    for (const auto& c : e.children) {
      if (c.name == "allowed-origins") origins_ = child_texts(c, "origin");
      if (c.name == "allowed-methods") {
        methods_ = child_texts(c, "method");
        if (const auto* age = attr(c, "preflight-result-max-age")) max_age_ = *age;
      }
      if (c.name == "allowed-headers") headers_ = child_texts(c, "header");
      if (c.name == "expose-headers") expose_ = child_texts(c, "header");
    }
    for (auto* list : {&origins_, &methods_, &headers_, &expose_}) {
      for (auto& v : *list) v = std::string(core::trim(v));
    }
    if (methods_.empty()) methods_ = {"GET", "POST"};
  }

  static bool listed(const std::vector<std::string>& list, std::string_view v) {
    return std::any_of(list.begin(), list.end(),
                       [&](const auto& x) { return x == "*" || core::iequals(x, v); });
  }

  Flow apply(Context& ctx) const override {
    const auto origins =
        ctx.request_headers ? ctx.request_headers->values("Origin") : std::vector<std::string>();
    if (origins.size() != 1) return Flow::kContinue;  // not a cross-origin request
    const std::string& origin = origins[0];
    // A wildcard answers "*" unless credentials are allowed (Fetch forbids "*" then).
    const bool any = std::find(origins_.begin(), origins_.end(), "*") != origins_.end();
    bool match = any || std::any_of(origins_.begin(), origins_.end(),
                                    [&](const auto& o) { return core::iequals(o, origin); });
    const std::string allow_origin = any && !credentials_ ? "*" : origin;
    if (ctx.preflight) {
      const auto method = ctx.request_headers->values("Access-Control-Request-Method");
      std::vector<std::string> asked;
      for (const auto& line : ctx.request_headers->values("Access-Control-Request-Headers")) {
        for (auto h : core::split(line, ",")) {
          if (!core::trim(h).empty()) asked.emplace_back(core::trim(h));
        }
      }
      match = match && !method.empty() && listed(methods_, method[0]) &&
              std::all_of(asked.begin(), asked.end(),
                          [&](const auto& h) { return listed(headers_, h); });
      if (!match) {
        if (!terminate_) return Flow::kContinue;
        ctx.respond = LocalResponse{};
        ctx.respond->body = std::string();
        return Flow::kRespond;
      }
      LocalResponse r;
      r.headers.emplace_back("Access-Control-Allow-Origin", allow_origin);
      if (credentials_) r.headers.emplace_back("Access-Control-Allow-Credentials", "true");
      r.headers.emplace_back("Access-Control-Allow-Methods", method[0]);
      if (!asked.empty()) r.headers.emplace_back("Access-Control-Allow-Headers", join(asked, ","));
      if (!max_age_.empty()) r.headers.emplace_back("Access-Control-Max-Age", max_age_);
      r.headers.emplace_back("Vary", "Origin");
      r.body = std::string();
      ctx.respond = std::move(r);
      return Flow::kRespond;
    }
    if (!match) {
      if (!terminate_) return Flow::kContinue;
      ctx.respond = LocalResponse{};
      ctx.respond->body = std::string();
      return Flow::kRespond;
    }
    ctx.answer_headers.emplace_back("Access-Control-Allow-Origin", allow_origin);
    if (credentials_) ctx.answer_headers.emplace_back("Access-Control-Allow-Credentials", "true");
    if (!expose_.empty())
      ctx.answer_headers.emplace_back("Access-Control-Expose-Headers", join(expose_, ","));
    ctx.answer_headers.emplace_back("Vary", "Origin");
    return Flow::kContinue;
  }

  bool credentials_, terminate_;
  std::vector<std::string> origins_, methods_, headers_, expose_;
  std::string max_age_;
};

class SetBackendService final : public Policy {
 public:
  explicit SetBackendService(const Element& e)
      : id_(attr(e, "backend-id") ? *attr(e, "backend-id") : ""),
        url_(attr(e, "base-url") ? *attr(e, "base-url") : "") {}
  Flow apply(Context& ctx) const override {
    ctx.backend_id = id_;
    ctx.backend_url = url_;
    return Flow::kContinue;
  }
  std::string id_, url_;
};

// "2014-08-01T00:00:00Z" (or without Z, read as UTC): seconds since the epoch.
std::optional<double> parse_utc(const std::string& text) {
  int y, mo, d, h = 0, mi = 0, s = 0, n = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6)
    return std::nullopt;
  const std::string rest = text.substr(static_cast<std::size_t>(n));
  if (!rest.empty() && rest != "Z") return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 || y < 1970)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<double>(timegm(&tm));
}

// ---- the registry -------------------------------------------------------------------------

struct Compiler {
  std::vector<Diagnostic>& errors;
  const CompileEnv& env;
  bool sets_request_body = false;

  void error(const Element& e, std::string message) {
    errors.push_back({e.file ? *e.file : std::string(), e.line, std::move(message)});
  }

  // What goes on the wire must not break the message: header names are tokens, values and
  // reason phrases hold no line breaks or NULs, paths no spaces or controls.
  bool safe(const Element& e) {
    const auto token = [](std::string_view v) {
      return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
      });
    };
    const auto field_text = [](std::string_view v) {
      return std::none_of(v.begin(), v.end(),
                          [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
    };
    bool ok = true;
    if (e.name == "set-header" || e.name == "check-header") {
      if (!token(*attr(e, "name"))) {
        error(e, "\"" + *attr(e, "name") + "\" is not a valid header name");
        ok = false;
      }
      for (const auto& v : child_texts(e, "value")) {
        if (!field_text(v)) {
          error(e, "header values may not hold line breaks");
          ok = false;
        }
      }
    }
    if (e.name == "set-status" && attr(e, "reason") && !field_text(*attr(e, "reason"))) {
      error(e, "the reason of <set-status> may not hold line breaks");
      ok = false;
    }
    if (e.name == "mock-response" && attr(e, "content-type") &&
        !field_text(*attr(e, "content-type"))) {
      error(e, "content-type may not hold line breaks");
      ok = false;
    }
    for (const auto& c : e.children) ok = safe(c) && ok;
    return ok;
  }

  std::shared_ptr<Policy> make(const Element& e, Section section) {
    const bool response_side = section == kOutbound || section == kOnError;
    const std::string& n = e.name;
    if (!safe(e)) return nullptr;
    if (n == "set-header") return std::make_shared<SetHeader>(e, response_side);
    if (n == "set-query-parameter") return std::make_shared<SetQueryParameter>(e);
    if (n == "set-variable") return std::make_shared<SetVariable>(e);
    if (n == "check-header") return std::make_shared<CheckHeader>(e);
    if (n == "mock-response") return std::make_shared<MockResponse>(e);
    if (n == "set-status") return std::make_shared<SetStatus>(e);
    if (n == "set-body") {
      if (const auto* t = attr(e, "template"); t && core::iequals(*t, "liquid")) {
        error(e, "<set-body template=\"liquid\"> is not supported yet");
        return nullptr;
      }
      if (!response_side) sets_request_body = true;
      return std::make_shared<SetBody>(e, response_side);
    }
    if (n == "return-response") {
      if (attr(e, "response-variable-name")) {
        error(e, "response-variable-name of <return-response> is not supported yet");
        return nullptr;
      }
      for (const auto& c : e.children) {
        if (c.name == "set-body" && attr(c, "template") &&
            core::iequals(*attr(c, "template"), "liquid")) {
          error(c, "<set-body template=\"liquid\"> is not supported yet");
          return nullptr;
        }
      }
      return std::make_shared<ReturnResponse>(e);
    }
    if (n == "ip-filter") {
      std::vector<std::pair<IpFilter::Ip, IpFilter::Ip>> ranges;
      bool ok = true;
      for (const auto& c : e.children) {
        const std::string from =
            c.name == "address" ? (c.text ? c.text->text : "") : *attr(c, "from");
        const std::string to = c.name == "address" ? from : *attr(c, "to");
        const auto a = parse_ip(core::trim(from));
        const auto b = parse_ip(core::trim(to));
        if (!a || !b || *b < *a) {
          error(c, "<" + c.name + "> needs IP addresses" +
                       (c.name == "address-range" ? std::string(", from no higher than to") : "") +
                       ", not \"" + from + (c.name == "address" ? "" : "\"-\"" + to) + "\"");
          ok = false;
          continue;
        }
        ranges.emplace_back(*a, *b);
      }
      return ok ? std::make_shared<IpFilter>(e, std::move(ranges)) : nullptr;
    }
    if (n == "forward-request") {
      if (boolean_attr(e, "follow-redirects", false)) {
        error(e, "follow-redirects=\"true\" is not supported yet");
        return nullptr;
      }
      if (const auto* v = attr(e, "http-version"); v && *v == "2") {
        error(e, "http-version=\"2\" is not supported yet (HTTP/1.1 upstreams only; 2or1 uses 1)");
        return nullptr;
      }
      return std::make_shared<ForwardRequest>(e);
    }
    if (n == "rewrite-uri") {
      const std::string& t = *attr(e, "template");
      if (t.empty() || t[0] != '/' || t.find('{') != std::string::npos ||
          std::any_of(t.begin(), t.end(), [](char c) { return c <= ' ' || c == 0x7f; })) {
        error(e,
              "rewrite-uri templates are constant paths starting with '/' for now "
              "(operation template parameters arrive with operations)");
        return nullptr;
      }
      return std::make_shared<RewriteUri>(e);
    }
    if (n == "validate-azure-ad-token" || n == "validate-jwt") {
      auto made =
          n == "validate-jwt" ? make_validate_jwt(e, env) : make_validate_azure_ad_token(e, env);
      if (!made) {
        error(e, made.error());
        return nullptr;
      }
      return std::move(made.value());
    }
    if (n == "rate-limit-by-key" || n == "quota-by-key" || n == "limit-concurrency") {
      if (!env.counters) {
        error(e, "<" + n + "> needs the gateway's counters");
        return nullptr;
      }
    }
    if (n == "rate-limit-by-key") return std::make_shared<RateLimitByKey>(e, env);
    if (n == "quota-by-key") {
      double origin = 0;
      if (const auto* start = attr(e, "first-period-start")) {
        const auto t = parse_utc(*start);
        if (!t) {
          error(e, "first-period-start \"" + *start +
                       "\" is not a UTC time like 2024-01-01T00:00:00Z");
          return nullptr;
        }
        origin = *t;
      }
      return std::make_shared<QuotaByKey>(e, env, origin);
    }
    if (n == "limit-concurrency") {
      Steps steps;
      bool ok = true;
      for (const auto& c : e.children) {
        auto p = make(c, section);
        if (!p) {
          ok = false;
          continue;
        }
        p->name = c.name;
        steps.push_back(std::move(p));
      }
      return ok ? std::make_shared<LimitConcurrency>(e, env, std::move(steps)) : nullptr;
    }
    if (n == "cors") {
      if (!child(e, "allowed-origins") || !child(e, "allowed-headers")) {
        error(e, "<cors> needs <allowed-origins> and <allowed-headers>");
        return nullptr;
      }
      if (boolean_attr(e, "allow-credentials", false)) {
        for (const auto& o : child_texts(*child(e, "allowed-origins"), "origin")) {
          if (core::trim(o) == "*") {
            error(e, "allow-credentials=\"true\" cannot go with the origin \"*\"");
            return nullptr;
          }
        }
      }
      return std::make_shared<Cors>(e);
    }
    if (n == "set-backend-service") {
      if (!!attr(e, "base-url") == !!attr(e, "backend-id")) {
        error(e, "<set-backend-service> needs exactly one of base-url and backend-id");
        return nullptr;
      }
      if (env.backend_known) {
        const bool by_id = attr(e, "backend-id") != nullptr;
        const std::string& v = by_id ? *attr(e, "backend-id") : *attr(e, "base-url");
        if (const std::string why = env.backend_known(by_id, v); !why.empty()) {
          error(e, why);
          return nullptr;
        }
      }
      return std::make_shared<SetBackendService>(e);
    }
    error(e, "<" + n +
                 "> is not supported yet by mcpgate's policy engine; the gateway will not "
                 "serve the API without it");
    return nullptr;
  }
};

}  // namespace

core::Result<std::shared_ptr<const Program>, std::vector<Diagnostic>> compile(
    const Pipeline& pipeline, const CompileEnv& env) {
  std::vector<Diagnostic> errors;
  Compiler compiler{errors, env};
  auto program = std::make_shared<Program>();
  for (std::size_t i = 0; i < kSections.size(); ++i) {
    std::map<std::string, int, std::less<>> seen;
    for (const auto& step : pipeline.sections[i]) {
      auto p = compiler.make(*step.element, kSections[i]);
      if (!p) continue;
      p->name = step.element->name;
      if (const auto* id = attr(*step.element, "id")) p->id = *id;
      p->scope = step.scope;
      p->index = ++seen[p->name];
      if (kSections[i] == kInbound && p->name == "cors") program->inbound_cors = true;
      program->sections[i].push_back(std::move(p));
    }
  }
  if (!errors.empty()) return core::fail(std::move(errors));
  program->sets_request_body = compiler.sets_request_body;
  return std::shared_ptr<const Program>(std::move(program));
}

Flow run_section(const Program& program, Section section, Context& ctx, std::size_t& position) {
  std::size_t index = 0;
  while (index < kSections.size() && kSections[index] != section) ++index;
  const auto& policies = program.sections[index];
  const bool cors_only = ctx.preflight && section == kInbound && program.inbound_cors;
  for (; position < policies.size(); ++position) {
    const auto& p = policies[position];
    if (cors_only && p->name != "cors") continue;
    Flow f;
    try {
      f = p->apply(ctx);
    } catch (const std::exception& ex) {
      // A policy that cannot finish fails closed, as APIM's unexpected errors do: 500.
      f = fail(ctx, p->name, "InternalError", ex.what(), 500, "Internal server error");
      ctx.error->unexpected = true;
    }
    if (f == Flow::kContinue) continue;
    if (f == Flow::kPending) return f;  // run this policy again after the wait
    if (f == Flow::kError && ctx.error) {
      LastError& e = *ctx.error;
      e.scope = std::string(scope_name(p->scope));
      e.section = std::string(section_name(section));
      e.path = p->name + "[" + std::to_string(p->index) + "]";
      e.policy_id = p->id;
    }
    return f;
  }
  return Flow::kContinue;
}

}  // namespace mcpgate::policy
