#include "api/client_ip.hpp"

#include <boost/asio/ip/address.hpp>

#include <charconv>

namespace chat::api {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The address as 16 bytes (IPv4 mapped into IPv6). "[v6]" brackets are accepted.
std::optional<std::array<std::uint8_t, 16>> to_bytes(std::string_view text) {
  text = trim(text);
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > 64) return std::nullopt;
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (a.is_v4()) return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, a.to_v4()).to_bytes();
  return a.to_v6().to_bytes();
}

std::string canonical(std::string_view text) {
  text = trim(text);
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(std::string(text), ec);
  return ec ? std::string(text) : a.to_string();
}

bool is_v4_mapped(const std::array<std::uint8_t, 16>& b) {
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

}  // namespace

std::optional<TrustedProxies> TrustedProxies::parse(std::string_view list) {
  TrustedProxies out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto item = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (item.empty()) continue;
    Net net;
    std::string_view addr = item;
    int prefix = -1;
    if (const auto slash = item.find('/'); slash != std::string_view::npos) {
      addr = item.substr(0, slash);
      const auto p = item.substr(slash + 1);
      const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
      if (ec != std::errc() || ptr != p.data() + p.size()) return std::nullopt;
    }
    auto bytes = to_bytes(addr);
    if (!bytes) return std::nullopt;
    const bool v4 = is_v4_mapped(*bytes) && addr.find(':') == std::string_view::npos;
    const int max = v4 ? 32 : 128;
    if (prefix == -1) prefix = max;
    if (prefix < 0 || prefix > max) return std::nullopt;
    net.bytes = *bytes;
    net.prefix = v4 ? prefix + 96 : prefix;
    out.nets_.push_back(net);
    if (out.nets_.size() > 1000) return std::nullopt;
  }
  return out;
}

bool TrustedProxies::contains(std::string_view address) const {
  if (nets_.empty()) return false;
  const auto bytes = to_bytes(address);
  if (!bytes) return false;
  for (const auto& n : nets_) {
    int bits = n.prefix;
    bool match = true;
    for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
      const auto mask = static_cast<std::uint8_t>(bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff);
      if (((*bytes)[i] & mask) != (n.bytes[i] & mask)) {
        match = false;
        break;
      }
    }
    if (match) return true;
  }
  return false;
}

std::string client_ip(std::string_view peer, std::string_view forwarded_for, const TrustedProxies& trusted) {
  if (forwarded_for.empty() || forwarded_for.size() > kForwardedForBytesMax || !trusted.contains(peer))
    return std::string(peer);
  std::vector<std::string_view> hops;
  while (!forwarded_for.empty()) {
    const auto comma = forwarded_for.find(',');
    hops.push_back(trim(forwarded_for.substr(0, comma)));
    if (hops.size() > kForwardedForHopsMax) return std::string(peer);
    if (comma == std::string_view::npos) break;
    forwarded_for.remove_prefix(comma + 1);
  }
  std::string_view last_valid;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!to_bytes(*it)) break;  // garbage: nothing to its left can be believed either
    last_valid = *it;
    if (!trusted.contains(*it)) return canonical(*it);
  }
  return last_valid.empty() ? std::string(peer) : canonical(last_valid);
}

}  // namespace chat::api
