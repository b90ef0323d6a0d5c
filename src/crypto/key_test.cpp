#include "crypto/key.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mcpgate::crypto {
namespace {

const PrivateKey& rsa_key() {
  static const PrivateKey key = PrivateKey::generate_rsa(2048).value();
  return key;
}

TEST(Key, RsaSignVerifyBothPaddings) {
  const auto& key = rsa_key();
  EXPECT_EQ(key.public_key().bits(), 2048);
  for (auto scheme : {Scheme::kRsaPkcs1, Scheme::kRsaPss}) {
    for (auto hash : {Hash::kSha256, Hash::kSha384, Hash::kSha512}) {
      auto sig = sign(key, scheme, hash, "data");
      ASSERT_TRUE(sig.ok()) << sig.error();
      EXPECT_TRUE(verify(key.public_key(), scheme, hash, "data", *sig));
      EXPECT_FALSE(verify(key.public_key(), scheme, hash, "datA", *sig));
      // The other padding, or another hash, must not accept it.
      const auto other = scheme == Scheme::kRsaPkcs1 ? Scheme::kRsaPss : Scheme::kRsaPkcs1;
      EXPECT_FALSE(verify(key.public_key(), other, hash, "data", *sig));
      EXPECT_FALSE(verify(key.public_key(), scheme,
                          hash == Hash::kSha256 ? Hash::kSha512 : Hash::kSha256, "data", *sig));
      EXPECT_FALSE(verify(key.public_key(), Scheme::kEcdsa, hash, "data", *sig));
    }
  }
}

// verify() keeps a set-up context per key, scheme and hash (per thread): reuse must not let one
// key's context judge another key's signature, nor a failure change the next answer.
TEST(Key, VerifyContextsFollowTheirKey) {
  auto sig = sign(rsa_key(), Scheme::kRsaPkcs1, Hash::kSha256, "data").value();
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(verify(rsa_key().public_key(), Scheme::kRsaPkcs1, Hash::kSha256, "data", sig));
  EXPECT_FALSE(verify(rsa_key().public_key(), Scheme::kRsaPkcs1, Hash::kSha256, "dat4", sig));
  EXPECT_TRUE(verify(rsa_key().public_key(), Scheme::kRsaPkcs1, Hash::kSha256, "data", sig));
  // Keys come and go (rotation): more of them than the contexts kept, each checked against its
  // own signature and against the others'.
  std::vector<std::string> sigs;
  std::vector<PublicKey> keys;
  for (int i = 0; i < 10; ++i) {
    auto k = PrivateKey::generate_ec(Curve::kP256).value();
    sigs.push_back(sign(k, Scheme::kEcdsa, Hash::kSha256, "data").value());
    keys.push_back(k.public_key());
  }
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      EXPECT_TRUE(verify(keys[i], Scheme::kEcdsa, Hash::kSha256, "data", sigs[i]));
      EXPECT_FALSE(verify(keys[i], Scheme::kEcdsa, Hash::kSha256, "data", sigs[(i + 1) % 10]));
    }
  }
  keys.clear();  // freed here; the contexts still hold their keys, so no address is reused
  auto fresh = PrivateKey::generate_ec(Curve::kP256).value();
  EXPECT_FALSE(verify(fresh.public_key(), Scheme::kEcdsa, Hash::kSha256, "data", sigs[9]));
  EXPECT_TRUE(verify(fresh.public_key(), Scheme::kEcdsa, Hash::kSha256, "data",
                     sign(fresh, Scheme::kEcdsa, Hash::kSha256, "data").value()));
}

TEST(Key, RsaFromComponentsMatchesGeneratedKey) {
  const auto& pub = rsa_key().public_key();
  auto rebuilt = PublicKey::rsa(pub.rsa_n(), pub.rsa_e());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error();
  EXPECT_EQ(rebuilt->fingerprint(), pub.fingerprint());
  auto sig = sign(rsa_key(), Scheme::kRsaPkcs1, Hash::kSha256, "x").value();
  EXPECT_TRUE(verify(*rebuilt, Scheme::kRsaPkcs1, Hash::kSha256, "x", sig));
}

TEST(Key, RejectsWeakOrMalformedRsa) {
  auto small = PrivateKey::generate_rsa(1024);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.error().find("too small"), std::string::npos);
  const auto& pub = rsa_key().public_key();
  EXPECT_FALSE(PublicKey::rsa(pub.rsa_n(), std::string("\x01", 1)).ok());
  EXPECT_FALSE(PublicKey::rsa(pub.rsa_n(), std::string("\x02", 1)).ok());
  EXPECT_FALSE(PublicKey::rsa("", "\x01\x00\x01").ok());
  EXPECT_FALSE(PublicKey::rsa(std::string("\0", 1) + pub.rsa_n(), "\x01\x00\x01").ok());
}

TEST(Key, EcdsaRawSignatures) {
  for (auto [curve, hash] : {std::pair{Curve::kP256, Hash::kSha256},
                             {Curve::kP384, Hash::kSha384},
                             {Curve::kP521, Hash::kSha512}}) {
    auto key = PrivateKey::generate_ec(curve);
    ASSERT_TRUE(key.ok()) << key.error();
    auto sig = sign(*key, Scheme::kEcdsa, hash, "data");
    ASSERT_TRUE(sig.ok());
    EXPECT_EQ(sig->size(), 2 * curve_size(curve));
    EXPECT_TRUE(verify(key->public_key(), Scheme::kEcdsa, hash, "data", *sig));
    std::string bad = *sig;
    bad[5] ^= 1;
    EXPECT_FALSE(verify(key->public_key(), Scheme::kEcdsa, hash, "data", bad));
    EXPECT_FALSE(verify(key->public_key(), Scheme::kEcdsa, hash, "data", sig->substr(1)));
  }
}

TEST(Key, EcPointMustBeOnTheCurve) {
  std::string x(32, '\x01');
  std::string y(32, '\x02');
  auto r = PublicKey::ec(Curve::kP256, x, y);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(PublicKey::ec(Curve::kP256, std::string(31, 'a'), y).ok());
}

TEST(Key, HmacConstantTimeAndExact) {
  auto key = PublicKey::oct(std::string(32, 'k'));
  const std::string mac = hmac(Hash::kSha256, key.secret(), "data");
  EXPECT_EQ(mac.size(), 32u);
  EXPECT_TRUE(verify(key, Scheme::kHmac, Hash::kSha256, "data", mac));
  EXPECT_FALSE(verify(key, Scheme::kHmac, Hash::kSha256, "data", mac.substr(0, 31)));
  EXPECT_FALSE(verify(key, Scheme::kRsaPkcs1, Hash::kSha256, "data", mac));
  EXPECT_FALSE(verify(rsa_key().public_key(), Scheme::kHmac, Hash::kSha256, "data", mac));
}

TEST(Key, PemRoundTrip) {
  auto again = PrivateKey::from_pem(rsa_key().to_pem());
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again->public_key().fingerprint(), rsa_key().public_key().fingerprint());
  EXPECT_FALSE(PrivateKey::from_pem("garbage").ok());
  EXPECT_FALSE(
      PublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());
}

}  // namespace
}  // namespace mcpgate::crypto
