#include "policy/schema.hpp"

#include <map>

namespace mcpgate::policy {

std::string_view section_name(Section s) {
  switch (s) {
    case kInbound:
      return "inbound";
    case kBackend:
      return "backend";
    case kOutbound:
      return "outbound";
    case kOnError:
      return "on-error";
    default:
      return "?";
  }
}

namespace {

using K = AttributeSpec::Kind;
using T = ElementSpec::Text;

AttributeSpec str(std::string_view n, bool required = false, bool expr = true) {
  return {n, K::kString, required, expr, {}, 0, 0};
}
AttributeSpec integer(std::string_view n, long long min, long long max, bool required = false,
                      bool expr = true) {
  return {n, K::kInteger, required, expr, {}, min, max};
}
AttributeSpec boolean(std::string_view n, bool required = false) {
  return {n, K::kBoolean, required, true, {}, 0, 0};
}
AttributeSpec choice(std::string_view n, std::string_view values, bool required = false) {
  return {n, K::kChoice, required, false, values, 0, 0};
}

// Child elements (not policies): shared by several policies.
const ElementSpec kValue{"value", 0, {}, {}, T::kOptional};
const ElementSpec kApplicationId{"application-id", 0, {}, {}, T::kRequired, false};
const ElementSpec kAudience{"audience", 0, {}, {}, T::kRequired};
const ElementSpec kIssuer{"issuer", 0, {}, {}, T::kRequired};
const ElementSpec kClaim{
    "claim", 0, {str("name", true), choice("match", "all|any"), str("separator")}, {&kValue}};
const ElementSpec kRequiredClaims{"required-claims", 0, {}, {&kClaim}};
const ElementSpec kAudiences{"audiences", 0, {}, {&kAudience}};
const ElementSpec kIssuers{"issuers", 0, {}, {&kIssuer}};
const ElementSpec kBackendAppIds{"backend-application-ids", 0, {}, {&kApplicationId}};
const ElementSpec kClientAppIds{"client-application-ids", 0, {}, {&kApplicationId}};
const ElementSpec kDecryptionKey{"key", 0, {str("certificate-id", false, false)}, {}, T::kOptional};
const ElementSpec kDecryptionKeys{"decryption-keys", 0, {}, {&kDecryptionKey}};
const ElementSpec kOpenIdConfig{
    "openid-config", 0, {str("url", true), boolean("validate-connectivity")}, {}};
const ElementSpec kSigningKey{"key",
                              0,
                              {str("id"), str("certificate-id", false, false),
                               str("n", false, false), str("e", false, false)},
                              {},
                              T::kOptional};
const ElementSpec kSigningKeys{"issuer-signing-keys", 0, {}, {&kSigningKey}};
const ElementSpec kOrigin{"origin", 0, {}, {}, T::kRequired, false};
const ElementSpec kMethod{"method", 0, {}, {}, T::kRequired, false};
const ElementSpec kHeader{"header", 0, {}, {}, T::kRequired, false};
const ElementSpec kAllowedOrigins{"allowed-origins", 0, {}, {&kOrigin}};
const ElementSpec kAllowedMethods{
    "allowed-methods",
    0,
    {integer("preflight-result-max-age", 0, 2147483647, false, false)},
    {&kMethod}};
const ElementSpec kAllowedHeaders{"allowed-headers", 0, {}, {&kHeader}};
const ElementSpec kExposeHeaders{"expose-headers", 0, {}, {&kHeader}};
const ElementSpec kAddress{"address", 0, {}, {}, T::kRequired, false};
const ElementSpec kAddressRange{
    "address-range", 0, {str("from", true, false), str("to", true, false)}, {}};

constexpr unsigned kAll = kAllSections;

const ElementSpec kSetStatus{"set-status", kAll, {integer("code", 100, 599, true), str("reason")}};
const ElementSpec kSetHeader{
    "set-header",
    kAll,
    {str("name", true), choice("exists-action", "override|skip|append|delete")},
    {&kValue}};
const ElementSpec kSetBody{
    "set-body",
    kInbound | kBackend | kOutbound | kOnError,
    {choice("template", "liquid|none"), choice("xsi-nil", "blank|null"), boolean("parse-date")},
    {},
    T::kOptional};

const ElementSpec kPolicies[] = {
    {"validate-azure-ad-token",
     kInbound,
     {str("tenant-id", true), str("header-name"), str("query-parameter-name"), str("token-value"),
      str("authentication-endpoint"), integer("failed-validation-httpcode", 100, 599),
      str("failed-validation-error-message"), str("output-token-variable-name", false, false)},
     {&kBackendAppIds, &kClientAppIds, &kAudiences, &kRequiredClaims, &kDecryptionKeys}},
    {"validate-jwt",
     kInbound,
     {str("header-name"), str("query-parameter-name"), str("token-value"),
      integer("failed-validation-httpcode", 100, 599), str("failed-validation-error-message"),
      boolean("require-expiration-time"), str("require-scheme"), boolean("require-signed-tokens"),
      integer("clock-skew", 0, 86400), str("output-token-variable-name", false, false)},
     {&kOpenIdConfig, &kSigningKeys, &kDecryptionKeys, &kAudiences, &kIssuers, &kRequiredClaims}},
    {"check-header",
     kInbound,
     {str("name", true), integer("failed-check-httpcode", 100, 599, true),
      str("failed-check-error-message", true), boolean("ignore-case", true)},
     {&kValue}},
    kSetHeader,
    {"set-query-parameter",
     kInbound | kBackend,
     {str("name", true), choice("exists-action", "override|skip|append|delete")},
     {&kValue}},
    kSetStatus,
    kSetBody,
    {"return-response",
     kAll,
     {str("response-variable-name", false, false)},
     {&kSetStatus, &kSetHeader, &kSetBody}},
    {"mock-response",
     kInbound | kOutbound | kOnError,
     {integer("status-code", 100, 599, false, false), str("content-type", false, false)}},
    {"set-backend-service", kInbound | kBackend, {str("base-url"), str("backend-id")}},
    {"rewrite-uri", kInbound, {str("template", true), boolean("copy-unmatched-params")}},
    {"forward-request",
     kBackend,
     {integer("timeout", 0, 240000), integer("timeout-ms", 0, 240000000),
      integer("continue-timeout", 0, 240000), choice("http-version", "1|2|2or1"),
      boolean("follow-redirects"), boolean("buffer-request-body"), boolean("buffer-response"),
      boolean("fail-on-error-status-code")}},
    {"set-variable", kAll, {str("name", true, false), str("value", true)}},
    {"cors",
     kInbound,
     {boolean("allow-credentials"), boolean("terminate-unmatched-request")},
     {&kAllowedOrigins, &kAllowedMethods, &kAllowedHeaders, &kExposeHeaders}},
    {"ip-filter", kInbound, {choice("action", "allow|forbid", true)}, {&kAddress, &kAddressRange}},
    {"rate-limit-by-key",
     kInbound,
     {integer("calls", 1, 2147483647, true), integer("renewal-period", 1, 300, true),
      str("counter-key", true), boolean("increment-condition"),
      integer("increment-count", 1, 2147483647), str("retry-after-header-name", false, false),
      str("retry-after-variable-name", false, false),
      str("remaining-calls-header-name", false, false),
      str("remaining-calls-variable-name", false, false),
      str("total-calls-header-name", false, false)}},
    {"quota-by-key",
     kInbound,
     {integer("calls", 1, 2147483647, false, false),
      integer("bandwidth", 1, 2147483647, false, false),
      integer("renewal-period", 0, 2147483647, true, false), str("counter-key", true),
      boolean("increment-condition"), str("first-period-start")}},
    {"limit-concurrency",
     kAll,
     {str("key", true), integer("max-count", 1, 2147483647, true, false)},
     {},
     T::kNone,
     true,
     true},
    {"include-fragment", kAll, {str("fragment-id", true, false)}},
    {"choose", kAll, {}, {}},  // children checked by the loader: when+, otherwise?
};

const std::map<std::string_view, const ElementSpec*>& index() {
  static const auto* map = [] {
    auto* m = new std::map<std::string_view, const ElementSpec*>();
    for (const auto& p : kPolicies) (*m)[p.name] = &p;
    return m;
  }();
  return *map;
}

}  // namespace

const ElementSpec* find_policy(std::string_view name) {
  const auto& m = index();
  const auto it = m.find(name);
  return it == m.end() ? nullptr : it->second;
}

}  // namespace mcpgate::policy
