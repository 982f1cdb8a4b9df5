#include "api/client_ip.hpp"

#include "app/config.hpp"

#include <gtest/gtest.h>

namespace {

using chat::api::client_ip;
using chat::api::TrustedProxies;

TrustedProxies trusted(std::string_view list) {
  auto t = TrustedProxies::parse(list);
  EXPECT_TRUE(t.has_value()) << list;
  return t.value_or(TrustedProxies{});
}

TEST(TrustedProxies, ParsesAddressesAndCidrs) {
  const auto t = trusted("127.0.0.1, 10.0.0.0/8,::1,fd00::/8");
  EXPECT_TRUE(t.contains("127.0.0.1"));
  EXPECT_FALSE(t.contains("127.0.0.2"));
  EXPECT_TRUE(t.contains("10.200.3.4"));
  EXPECT_FALSE(t.contains("11.0.0.1"));
  EXPECT_TRUE(t.contains("::1"));
  EXPECT_TRUE(t.contains("fd12::5"));
  EXPECT_TRUE(t.contains("::ffff:10.1.1.1")) << "IPv4-mapped peers match IPv4 entries";
  EXPECT_FALSE(t.contains("not an address"));
  EXPECT_TRUE(TrustedProxies::parse("")->empty());
}

TEST(TrustedProxies, RejectsMalformedLists) {
  for (const char* bad : {"10.0.0.0/33", "::/129", "1.2.3", "10.0.0.0/x", "localhost", "1.2.3.4/"})
    EXPECT_FALSE(TrustedProxies::parse(bad).has_value()) << bad;
}

TEST(ClientIp, PeerUnlessThePeerIsATrustedProxy) {
  const auto t = trusted("10.0.0.1");
  EXPECT_EQ(client_ip("203.0.113.9", "198.51.100.1", t), "203.0.113.9") << "untrusted peer: header ignored";
  EXPECT_EQ(client_ip("10.0.0.1", "", t), "10.0.0.1");
  EXPECT_EQ(client_ip("10.0.0.1", "198.51.100.1", t), "198.51.100.1");
  EXPECT_EQ(client_ip("203.0.113.9", "1.1.1.1", TrustedProxies{}), "203.0.113.9") << "no proxies configured";
}

TEST(ClientIp, RightmostUntrustedEntryWins) {
  const auto t = trusted("10.0.0.0/8");
  // The client wrote "6.6.6.6" itself; the proxy appended the real address.
  EXPECT_EQ(client_ip("10.0.0.1", "6.6.6.6, 198.51.100.7", t), "198.51.100.7");
  // Two proxy hops.
  EXPECT_EQ(client_ip("10.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2", t), "198.51.100.7");
  // Every hop trusted: the leftmost.
  EXPECT_EQ(client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", t), "10.0.0.3");
  // Garbage stops the walk: the last valid hop to its right.
  EXPECT_EQ(client_ip("10.0.0.1", "6.6.6.6, garbage, 10.0.0.2", t), "10.0.0.2");
  EXPECT_EQ(client_ip("10.0.0.1", "garbage", t), "10.0.0.1");
  // IPv6, bracketed, normalised.
  EXPECT_EQ(client_ip("10.0.0.1", "[2001:DB8::1]", t), "2001:db8::1");
}

TEST(ClientIp, OversizedHeadersAreIgnored) {
  const auto t = trusted("10.0.0.1");
  std::string many;
  for (int i = 0; i < 40; ++i) many += "1.1.1.1,";
  many += "2.2.2.2";
  EXPECT_EQ(client_ip("10.0.0.1", many, t), "10.0.0.1");
  EXPECT_EQ(client_ip("10.0.0.1", std::string(4096, '1'), t), "10.0.0.1");
}

TEST(ConfigTrustedProxy, FlagAndEnvironment) {
  const char* argv[] = {"chatd", "--trusted-proxy", "127.0.0.1,10.0.0.0/8"};
  auto r = chat::app::parse_config(3, argv, [](const char*) -> const char* { return nullptr; });
  ASSERT_TRUE(r.config.has_value()) << r.output;
  EXPECT_EQ(r.config->trusted_proxies, "127.0.0.1,10.0.0.0/8");
  const char* bad[] = {"chatd", "--trusted-proxy", "10.0.0.0/99"};
  r = chat::app::parse_config(3, bad, [](const char*) -> const char* { return nullptr; });
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.exit_code, 2);
  const char* none[] = {"chatd"};
  r = chat::app::parse_config(1, none, [](const char* name) -> const char* {
    return std::string_view(name) == "CHATD_TRUSTED_PROXY" ? "::1" : nullptr;
  });
  ASSERT_TRUE(r.config.has_value());
  EXPECT_EQ(r.config->trusted_proxies, "::1");
  const char* ttl[] = {"chatd", "--auth-cache-ttl-ms", "0"};
  r = chat::app::parse_config(3, ttl, [](const char*) -> const char* { return nullptr; });
  ASSERT_TRUE(r.config.has_value());
  EXPECT_EQ(r.config->auth_cache_ttl.count(), 0);
}

}  // namespace
