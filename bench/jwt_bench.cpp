// Micro benchmarks of the token validation core (issue: foundation). Not tests: they print
// figures. Compare Validate* with RawOpenSsl* from the same run.
#include <benchmark/benchmark.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <string>

#include "core/hash.hpp"
#include "crypto/digest.hpp"
#include "jwt/cache.hpp"
#include "jwt/signer.hpp"
#include "jwt/validate.hpp"

using namespace mcpgate;

namespace {

constexpr double kNow = 1'800'000'000;
const std::string kTid = "72f988bf-86f1-41af-91ab-2d7cd011db47";

struct Fixture {
  crypto::PrivateKey rsa = crypto::PrivateKey::generate_rsa(2048).value();
  crypto::PrivateKey ec = crypto::PrivateKey::generate_ec(crypto::Curve::kP256).value();
  jwt::KeySet keys;
  jwt::Requirements req;
  std::string rs256;  // an Entra-shaped v2 token of about 1.5 KB
  std::string es256;

  Fixture() {
    jwt::Jwk a{rsa.public_key()};
    a.kid = "JYhAcTPMZ_LX6DBlOWQ7Hn0NeXE";
    keys.add(a);
    jwt::Jwk other{crypto::PrivateKey::generate_rsa(2048).value().public_key()};
    other.kid = "other";
    keys.add(other);
    jwt::Jwk e{ec.public_key()};
    e.kid = "ec";
    keys.add(e);
    req.entra = jwt::EntraRule::make(kTid).value();
    req.audiences = {"d03a9bf4-b880-4793-926f-95bb5ce74a77"};
    req.client_app_ids = {"f2b24498-3c66-46cd-9a61-92acb473b959"};
    req.claims = {{"roles", jwt::ClaimRequirement::Match::kAll, "", {"Sample.Read"}}};
    const std::string claims =
        R"({"aud":"d03a9bf4-b880-4793-926f-95bb5ce74a77","iss":"https://login.microsoftonline.com/)" +
        kTid +
        R"(/v2.0","iat":1799999700,"nbf":1799999700,"exp":1800003600,"aio":"k2RgYNDW+/ebZWTX3ZwYqGpeNnqdAQA=",)"
        R"("azp":"f2b24498-3c66-46cd-9a61-92acb473b959","azpacr":"1","oid":"99f268b3-61d1-4536-bfd5-85f426e2146f",)"
        R"("rh":"1.AREApJh_vYXSMk-VZ5wPudJ6IvSbOtCAuJNHkm-Vu1znSndAAA.","roles":["Sample.Read","Sample.Write"],)"
        R"("sub":"99f268b3-61d1-4536-bfd5-85f426e2146f","tid":")" +
        kTid + R"(","uti":"u1TnRc8ca062Otegxw1eAA","ver":"2.0","xms_ftd":")" +
        std::string(150, 'x') + "\"}";
    rs256 =
        jwt::sign(core::parse_json(R"({"typ":"JWT","kid":"JYhAcTPMZ_LX6DBlOWQ7Hn0NeXE"})").value(),
                  core::parse_json(claims).value(), jwt::Algorithm::kRS256, rsa)
            .value();
    es256 = jwt::sign(core::parse_json(R"({"typ":"JWT","kid":"ec"})").value(),
                      core::parse_json(claims).value(), jwt::Algorithm::kES256, ec)
                .value();
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

// The plain OpenSSL way: a fresh digest context, init, verify. What any verifier pays at least.
void raw_verify(benchmark::State& state, const std::string& token, const crypto::PublicKey& key,
                bool ecdsa) {
  const auto dot = token.rfind('.');
  const std::string input = token.substr(0, dot);
  auto tok = jwt::parse(token).value();
  std::string sig = tok.signature;
  if (ecdsa) {  // convert once; the raw baseline measures the verify only
    ECDSA_SIG* s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr));
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(s, &der);
    sig.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
  }
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.pkey());
    const int ok =
        EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(input.data()), input.size());
    EVP_MD_CTX_free(ctx);
    if (ok != 1) state.SkipWithError("verify failed");
  }
}

// The fastest plain OpenSSL use: digest prefetched once, one context reused.
void BM_RawOpenSslVerifyPrefetched_RS256(benchmark::State& state) {
  const std::string& token = fx().rs256;
  const std::string input = token.substr(0, token.rfind('.'));
  const std::string sig = jwt::parse(token).value().signature;
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  for (auto _ : state) {
    EVP_MD_CTX_reset(ctx);
    EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, fx().rsa.public_key().pkey());
    if (EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
      state.SkipWithError("verify failed");
    }
  }
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
}

void BM_RawOpenSslVerify_RS256(benchmark::State& state) {
  raw_verify(state, fx().rs256, fx().rsa.public_key(), false);
}
void BM_RawOpenSslVerify_ES256(benchmark::State& state) {
  raw_verify(state, fx().es256, fx().ec.public_key(), true);
}

void BM_Parse(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(jwt::parse(fx().rs256));
  state.SetLabel(std::to_string(fx().rs256.size()) + " B token");
}

void BM_ValidateMiss_RS256(benchmark::State& state) {
  for (auto _ : state) {
    auto r = jwt::validate(fx().rs256, fx().keys, fx().req, kNow);
    if (!r) state.SkipWithError(r.error().message.c_str());
  }
}

void BM_ValidateMiss_ES256(benchmark::State& state) {
  jwt::Requirements req = fx().req;
  req.algorithms = {jwt::Algorithm::kES256};
  for (auto _ : state) {
    auto r = jwt::validate(fx().es256, fx().keys, req, kNow);
    if (!r) state.SkipWithError(r.error().message.c_str());
  }
}

void BM_CacheHit_RS256(benchmark::State& state) {
  static jwt::VerifiedTokenCache cache(4096);
  for (auto _ : state) {
    auto r = jwt::validate_cached(fx().rs256, fx().keys, fx().req, kNow, cache);
    if (!r) state.SkipWithError(r.error().message.c_str());
  }
  state.SetLabel(std::to_string(fx().rs256.size()) + " B token");
}

void BM_CheckClaims(benchmark::State& state) {
  const auto token = jwt::parse(fx().rs256).value();
  for (auto _ : state) {
    auto r = jwt::check_claims(token.claims, fx().req, kNow);
    if (!r) state.SkipWithError(r.error().message.c_str());
  }
}

void BM_FastHash_Token(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(core::fast_hash(fx().rs256));
}
void BM_Sha256_Token(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(crypto::sha256(fx().rs256));
}

}  // namespace

BENCHMARK(BM_RawOpenSslVerify_RS256);
BENCHMARK(BM_RawOpenSslVerifyPrefetched_RS256);
BENCHMARK(BM_ValidateMiss_RS256);
BENCHMARK(BM_RawOpenSslVerify_ES256);
BENCHMARK(BM_ValidateMiss_ES256);
BENCHMARK(BM_Parse);
BENCHMARK(BM_CacheHit_RS256);
BENCHMARK(BM_CacheHit_RS256)->Threads(2);
BENCHMARK(BM_CheckClaims);
BENCHMARK(BM_FastHash_Token);
BENCHMARK(BM_Sha256_Token);
BENCHMARK_MAIN();
