#pragma once

#include "domain/types.hpp"

#include <boost/json/fwd.hpp>

#include <optional>
#include <string>
#include <string_view>

// The JSON shapes of the domain objects, shared by REST and the WebSocket so that a message looks
// the same in history and in a live frame. Ids are strings (64-bit ids do not fit JS numbers).
namespace chat::api::wire {

boost::json::object user(const domain::User& u, bool include_email);
boost::json::object message(const domain::Message& m);
boost::json::object conversation(const domain::Conversation& c);

// The same JSON as serialize(message(m)), written straight into `out` without building a
// json::object: the send path and history pages serialize every message, so this is hot.
void append_message(std::string& out, const domain::Message& m);
// A JSON string literal (quotes included) with the escapes Boost.JSON's serializer uses.
void append_string(std::string& out, std::string_view text);
// A decimal integer, or an id as a JSON string ("123").
void append_int(std::string& out, std::int64_t value);
void append_id(std::string& out, std::int64_t value);

std::string id(std::int64_t value);
// Accepts a JSON string of decimal digits or a non-negative integer; nullopt otherwise.
std::optional<std::int64_t> parse_id(const boost::json::value& v);
std::optional<std::int64_t> parse_id(std::string_view text);

}  // namespace chat::api::wire
