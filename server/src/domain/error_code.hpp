#pragma once

#include <cstdint>
#include <string_view>

namespace chat::domain {

// Every error a client can see, on REST and on the WebSocket. One line per code; the same list,
// with the same words, is in docs/protocol.md and docs/openapi.yaml.
enum class ErrorCode : std::uint8_t {
  bad_request,           // malformed request: wrong types, missing fields, bad query
  bad_json,              // a WebSocket frame that is not a JSON object
  unknown_type,          // a WebSocket frame whose "type" is not in the protocol
  invalid_utf8,          // text that is not valid UTF-8
  message_too_long,      // a body above 100,000 code points
  empty_message,         // a body that is empty or whitespace only
  invalid_username,      // username outside 3..32 of [A-Za-z0-9_.-]
  invalid_email,         // not an address of the form local@domain, or longer than 254 bytes
  weak_password,         // password outside 8..1024 bytes
  invalid_cursor,        // before/after that is not a non-negative integer
  unauthorized,          // missing, invalid, expired or revoked token
  invalid_credentials,   // login with a wrong name or password
  forbidden,             // authenticated but not allowed (another user's profile)
  origin_not_allowed,    // WebSocket upgrade from a foreign Origin
  not_found,             // unknown id, or one the caller may not see: the same answer for both
  method_not_allowed,    // a known path with another method
  username_taken,        // username already registered (case-insensitive)
  email_taken,           // email already registered (case-insensitive)
  idempotency_conflict,  // client_msg_id already used for another conversation
  group_full,            // the change would take a group past 100 members
  payload_too_large,     // request body above the limit
  rate_limited,          // too many requests; retry after Retry-After seconds
  not_implemented,       // a documented endpoint whose feature has not landed yet
  unavailable,           // store unavailable or overloaded; retryable
  internal,              // a bug; logged on the server
};

std::string_view to_string(ErrorCode code) noexcept;
unsigned http_status(ErrorCode code) noexcept;

}  // namespace chat::domain
