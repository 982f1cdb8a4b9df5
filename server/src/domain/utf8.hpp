#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace chat::domain {

// Counts the code points of `text` if it is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF); nullopt otherwise.
std::optional<std::size_t> utf8_code_points(std::string_view text) noexcept;

inline bool is_valid_utf8(std::string_view text) noexcept {
  return utf8_code_points(text).has_value();
}

}  // namespace chat::domain
