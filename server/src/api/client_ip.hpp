#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::api {

// The peers whose X-Forwarded-For chatd believes (--trusted-proxy): addresses and CIDR blocks,
// IPv4 and IPv6 (an IPv4-mapped IPv6 peer matches the IPv4 entries).
class TrustedProxies {
 public:
  // "127.0.0.1,10.0.0.0/8,::1,fd00::/8" (commas, optional spaces). nullopt: malformed.
  static std::optional<TrustedProxies> parse(std::string_view list);
  bool empty() const noexcept { return nets_.empty(); }
  bool contains(std::string_view address) const;

 private:
  struct Net {
    std::array<std::uint8_t, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
    int prefix = 128;
  };
  std::vector<Net> nets_;
};

// Limits on X-Forwarded-For: longer headers or more hops are ignored (the peer address is used).
inline constexpr std::size_t kForwardedForBytesMax = 2048;
inline constexpr std::size_t kForwardedForHopsMax = 32;

// The client address for rate limits: the TCP peer, unless the peer is a trusted proxy; then the
// rightmost X-Forwarded-For entry that is not itself a trusted proxy (entries to its left were
// written by the client and prove nothing). If every entry is trusted, the leftmost one.
std::string client_ip(std::string_view peer, std::string_view forwarded_for, const TrustedProxies& trusted);

}  // namespace chat::api
