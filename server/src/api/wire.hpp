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

std::string id(std::int64_t value);
// Accepts a JSON string of decimal digits or a non-negative integer; nullopt otherwise.
std::optional<std::int64_t> parse_id(const boost::json::value& v);
std::optional<std::int64_t> parse_id(std::string_view text);

}  // namespace chat::api::wire
