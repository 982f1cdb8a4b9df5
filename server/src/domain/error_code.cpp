#include "domain/error_code.hpp"

namespace chat::domain {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::bad_request:
      return "bad_request";
    case ErrorCode::bad_json:
      return "bad_json";
    case ErrorCode::unknown_type:
      return "unknown_type";
    case ErrorCode::invalid_utf8:
      return "invalid_utf8";
    case ErrorCode::message_too_long:
      return "message_too_long";
    case ErrorCode::empty_message:
      return "empty_message";
    case ErrorCode::invalid_username:
      return "invalid_username";
    case ErrorCode::invalid_email:
      return "invalid_email";
    case ErrorCode::weak_password:
      return "weak_password";
    case ErrorCode::invalid_cursor:
      return "invalid_cursor";
    case ErrorCode::unauthorized:
      return "unauthorized";
    case ErrorCode::invalid_credentials:
      return "invalid_credentials";
    case ErrorCode::forbidden:
      return "forbidden";
    case ErrorCode::origin_not_allowed:
      return "origin_not_allowed";
    case ErrorCode::not_found:
      return "not_found";
    case ErrorCode::method_not_allowed:
      return "method_not_allowed";
    case ErrorCode::username_taken:
      return "username_taken";
    case ErrorCode::email_taken:
      return "email_taken";
    case ErrorCode::idempotency_conflict:
      return "idempotency_conflict";
    case ErrorCode::group_full:
      return "group_full";
    case ErrorCode::payload_too_large:
      return "payload_too_large";
    case ErrorCode::rate_limited:
      return "rate_limited";
    case ErrorCode::not_implemented:
      return "not_implemented";
    case ErrorCode::unavailable:
      return "unavailable";
    case ErrorCode::internal:
      return "internal";
  }
  return "internal";
}

unsigned http_status(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::bad_request:
    case ErrorCode::bad_json:
    case ErrorCode::unknown_type:
    case ErrorCode::invalid_utf8:
    case ErrorCode::message_too_long:
    case ErrorCode::empty_message:
    case ErrorCode::invalid_username:
    case ErrorCode::invalid_email:
    case ErrorCode::weak_password:
    case ErrorCode::invalid_cursor:
      return 400;
    case ErrorCode::unauthorized:
    case ErrorCode::invalid_credentials:
      return 401;
    case ErrorCode::forbidden:
    case ErrorCode::origin_not_allowed:
      return 403;
    case ErrorCode::not_found:
      return 404;
    case ErrorCode::method_not_allowed:
      return 405;
    case ErrorCode::username_taken:
    case ErrorCode::email_taken:
    case ErrorCode::idempotency_conflict:
    case ErrorCode::group_full:
      return 409;
    case ErrorCode::payload_too_large:
      return 413;
    case ErrorCode::rate_limited:
      return 429;
    case ErrorCode::not_implemented:
      return 501;
    case ErrorCode::unavailable:
      return 503;
    case ErrorCode::internal:
      return 500;
  }
  return 500;
}

}  // namespace chat::domain
