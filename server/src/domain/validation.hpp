#pragma once

#include "domain/error_code.hpp"

#include <optional>
#include <string>
#include <string_view>

// The rules for every user-supplied field. Each returns the error to report, or nullopt if valid.
namespace chat::domain {

std::optional<ErrorCode> check_username(std::string_view username) noexcept;
std::optional<ErrorCode> check_email(std::string_view email) noexcept;
std::optional<ErrorCode> check_password(std::string_view password) noexcept;
// A message body: valid UTF-8, 1..100,000 code points, not only whitespace.
std::optional<ErrorCode> check_body(std::string_view body) noexcept;
// The client-facing explanation of a check_body() failure.
std::string_view body_error_text(ErrorCode code) noexcept;
std::optional<ErrorCode> check_client_msg_id(std::string_view id) noexcept;
// Free text with a code point limit (display name, bio, device name). Empty is allowed.
std::optional<ErrorCode> check_text(std::string_view text, std::size_t code_points_max) noexcept;

// ASCII lower case, for the case-insensitive uniqueness of usernames and emails (usernames are
// ASCII by rule; an email's non-ASCII bytes are compared as they are).
std::string fold_case(std::string_view s);

}  // namespace chat::domain
