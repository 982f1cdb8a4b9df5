#include "domain/validation.hpp"

#include "domain/limits.hpp"
#include "domain/utf8.hpp"

#include <algorithm>

namespace chat::domain {

namespace {

bool is_username_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

bool is_ascii_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

std::optional<ErrorCode> check_username(std::string_view username) noexcept {
  if (username.size() < limits::username_bytes_min || username.size() > limits::username_bytes_max)
    return ErrorCode::invalid_username;
  if (!std::all_of(username.begin(), username.end(), is_username_char)) return ErrorCode::invalid_username;
  return std::nullopt;
}

std::optional<ErrorCode> check_email(std::string_view email) noexcept {
  if (email.size() > limits::email_bytes_max || !is_valid_utf8(email)) return ErrorCode::invalid_email;
  const auto at = email.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= email.size()) return ErrorCode::invalid_email;
  if (email.find('@', at + 1) != std::string_view::npos) return ErrorCode::invalid_email;
  if (std::any_of(email.begin(), email.end(),
                  [](char c) { return is_ascii_space(c) || static_cast<unsigned char>(c) < 0x20; }))
    return ErrorCode::invalid_email;
  return std::nullopt;
}

std::optional<ErrorCode> check_password(std::string_view password) noexcept {
  if (password.size() < limits::password_bytes_min || password.size() > limits::password_bytes_max)
    return ErrorCode::weak_password;
  if (!is_valid_utf8(password)) return ErrorCode::invalid_utf8;
  return std::nullopt;
}

std::optional<ErrorCode> check_body(std::string_view body) noexcept {
  const auto count = utf8_code_points(body);
  if (!count) return ErrorCode::invalid_utf8;
  // U+0000 has no use in a message and PostgreSQL text cannot hold it: refused on every backend.
  if (body.find('\0') != std::string_view::npos) return ErrorCode::bad_request;
  if (*count > limits::body_code_points_max) return ErrorCode::message_too_long;
  if (std::all_of(body.begin(), body.end(), is_ascii_space)) return ErrorCode::empty_message;
  return std::nullopt;
}

std::string_view body_error_text(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::message_too_long:
      return "body is longer than 100000 characters";
    case ErrorCode::invalid_utf8:
      return "body is not valid UTF-8";
    case ErrorCode::empty_message:
      return "body is empty";
    default:
      return "body contains a NUL character";
  }
}

std::optional<ErrorCode> check_client_msg_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > limits::client_msg_id_bytes_max) return ErrorCode::bad_request;
  const bool ok = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return ok ? std::nullopt : std::optional{ErrorCode::bad_request};
}

std::optional<ErrorCode> check_text(std::string_view text, std::size_t code_points_max) noexcept {
  const auto count = utf8_code_points(text);
  if (!count) return ErrorCode::invalid_utf8;
  if (text.find('\0') != std::string_view::npos) return ErrorCode::bad_request;
  if (*count > code_points_max) return ErrorCode::bad_request;
  return std::nullopt;
}

std::string fold_case(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace chat::domain
