#include "api/wire.hpp"

#include <boost/json.hpp>

#include <charconv>

namespace chat::api::wire {

namespace json = boost::json;

std::string id(std::int64_t value) {
  return std::to_string(value);
}

std::optional<std::int64_t> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

std::optional<std::int64_t> parse_id(const json::value& v) {
  if (v.is_string()) return parse_id(std::string_view(v.get_string()));
  if (v.is_int64() && v.get_int64() >= 0) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v.get_uint64());
  return std::nullopt;
}

json::object user(const domain::User& u, bool include_email) {
  json::object o;
  o["id"] = id(u.id);
  o["username"] = u.username;
  o["display_name"] = u.display_name;
  o["profile_picture"] = u.profile_picture;
  o["bio"] = u.bio;
  o["created_at"] = u.created_at;
  o["last_seen"] = u.last_seen ? json::value(*u.last_seen) : json::value(nullptr);
  if (include_email) o["email"] = u.email;
  return o;
}

json::object message(const domain::Message& m) {
  json::object o;
  o["id"] = id(m.id);
  o["conversation_id"] = id(m.conversation_id);
  o["seq"] = m.seq;
  o["sender_id"] = id(m.sender_id);
  o["type"] = m.type;
  o["body"] = m.body;
  o["client_msg_id"] = m.client_msg_id;
  o["created_at"] = m.created_at;
  // One column, two meanings: a text row's ref_id is the message it replies to.
  const bool is_text = m.type == "text";
  o["ref_id"] = m.ref_id && !is_text ? json::value(id(*m.ref_id)) : json::value(nullptr);
  o["reply_to"] = m.ref_id && is_text ? json::value(id(*m.ref_id)) : json::value(nullptr);
  json::value data = nullptr;
  if (!m.data.empty()) {
    json::error_code ec;
    data = json::parse(m.data, ec);
    if (ec) data = nullptr;
  }
  o["data"] = std::move(data);
  o["edited_at"] = m.edited_at ? json::value(*m.edited_at) : json::value(nullptr);
  o["deleted"] = m.deleted;
  json::array reactions;
  for (const auto& r : m.reactions) {
    json::array users;
    for (auto u : r.user_ids) users.emplace_back(id(u));
    reactions.push_back(json::object{{"emoji", r.emoji}, {"user_ids", std::move(users)}});
  }
  o["reactions"] = std::move(reactions);
  return o;
}

json::object conversation(const domain::Conversation& c) {
  json::object o;
  o["id"] = id(c.id);
  o["type"] = domain::to_string(c.type);
  o["name"] = c.name;
  o["created_at"] = c.created_at;
  o["last_seq"] = c.last_seq;
  json::array members;
  for (const auto& m : c.members) {
    members.push_back(json::object{{"user_id", id(m.user_id)},
                                   {"username", m.username},
                                   {"display_name", m.display_name},
                                   {"role", domain::to_string(m.role)},
                                   {"joined_at", m.joined_at},
                                   {"delivered_seq", m.delivered_seq},
                                   {"read_seq", m.read_seq}});
  }
  o["members"] = std::move(members);
  o["last_message"] = c.last_message ? json::value(message(*c.last_message)) : json::value(nullptr);
  o["unread_count"] = c.unread_count;
  o["read_seq"] = c.read_seq;
  o["delivered_seq"] = c.delivered_seq;
  return o;
}

}  // namespace chat::api::wire
