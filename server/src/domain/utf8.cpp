#include "domain/utf8.hpp"

#include <cstdint>

namespace chat::domain {

std::optional<std::size_t> utf8_code_points(std::string_view text) noexcept {
  std::size_t count = 0;
  std::size_t i = 0;
  const std::size_t n = text.size();
  const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
  const auto is_cont = [&](std::size_t k) { return k < n && (byte(k) & 0xC0U) == 0x80U; };
  while (i < n) {
    const std::uint8_t b = byte(i);
    if (b < 0x80U) {
      ++i;
    } else if (b >= 0xC2U && b <= 0xDFU) {
      if (!is_cont(i + 1)) return std::nullopt;
      i += 2;
    } else if (b >= 0xE0U && b <= 0xEFU) {
      if (!is_cont(i + 1) || !is_cont(i + 2)) return std::nullopt;
      const std::uint8_t b1 = byte(i + 1);
      if (b == 0xE0U && b1 < 0xA0U) return std::nullopt;   // overlong
      if (b == 0xEDU && b1 >= 0xA0U) return std::nullopt;  // UTF-16 surrogate
      i += 3;
    } else if (b >= 0xF0U && b <= 0xF4U) {
      if (!is_cont(i + 1) || !is_cont(i + 2) || !is_cont(i + 3)) return std::nullopt;
      const std::uint8_t b1 = byte(i + 1);
      if (b == 0xF0U && b1 < 0x90U) return std::nullopt;   // overlong
      if (b == 0xF4U && b1 >= 0x90U) return std::nullopt;  // above U+10FFFF
      i += 4;
    } else {
      return std::nullopt;  // stray continuation byte, C0/C1, or F5..FF
    }
    ++count;
  }
  return count;
}

}  // namespace chat::domain
