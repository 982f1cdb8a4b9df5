#include "api/wire.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <cstdint>
#include <cstring>

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

namespace {

// True if a byte of `w` is one a JSON string escapes: below 0x20, '"' or '\\'. Exact for "any byte"
// (the classic has-zero-byte / has-less-than bit tricks), so eight plain bytes cost one test.
bool needs_escape(std::uint64_t w) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  const std::uint64_t quote = w ^ (kOnes * '"');
  const std::uint64_t backslash = w ^ (kOnes * '\\');
  const std::uint64_t below_space = (w - kOnes * 0x20) & ~w;
  const std::uint64_t is_quote = (quote - kOnes) & ~quote;
  const std::uint64_t is_backslash = (backslash - kOnes) & ~backslash;
  return ((below_space | is_quote | is_backslash) & kHighs) != 0;
}

}  // namespace

void append_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the current stretch of bytes that need no escape
  for (std::size_t i = 0; i < text.size(); ++i) {
    // Message bodies are mostly plain text: skip eight bytes at a time while none needs an escape.
    while (i + 8 <= text.size()) {
      std::uint64_t word = 0;
      std::memcpy(&word, text.data() + i, sizeof word);
      if (needs_escape(word)) break;
      i += 8;
    }
    if (i == text.size()) break;
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    out.push_back('\\');
    switch (c) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\b':
        out.push_back('b');
        break;
      case '\f':
        out.push_back('f');
        break;
      case '\n':
        out.push_back('n');
        break;
      case '\r':
        out.push_back('r');
        break;
      case '\t':
        out.push_back('t');
        break;
      default:
        out.append("u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(text.data() + run, text.size() - run);
  out.push_back('"');
}

void append_int(std::string& out, std::int64_t value) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, static_cast<std::size_t>(end - buf));
}

void append_id(std::string& out, std::int64_t value) {
  out.push_back('"');
  append_int(out, value);
  out.push_back('"');
}

void append_message(std::string& out, const domain::Message& m) {
  out.append(R"({"id":)");
  append_id(out, m.id);
  out.append(R"(,"conversation_id":)");
  append_id(out, m.conversation_id);
  out.append(R"(,"seq":)");
  append_int(out, m.seq);
  out.append(R"(,"sender_id":)");
  append_id(out, m.sender_id);
  out.append(R"(,"type":)");
  append_string(out, m.type);
  out.append(R"(,"body":)");
  append_string(out, m.body);
  out.append(R"(,"client_msg_id":)");
  append_string(out, m.client_msg_id);
  out.append(R"(,"created_at":)");
  append_int(out, m.created_at);
  // One column, two meanings: a text row's ref_id is the message it replies to.
  const bool is_text = m.type == "text";
  out.append(R"(,"ref_id":)");
  if (m.ref_id && !is_text) {
    append_id(out, *m.ref_id);
  } else {
    out.append("null");
  }
  out.append(R"(,"reply_to":)");
  if (m.ref_id && is_text) {
    append_id(out, *m.ref_id);
  } else {
    out.append("null");
  }
  out.append(R"(,"data":)");
  if (m.data.empty()) {
    out.append("null");
  } else {
    // Written by the store itself (event details); re-serialized so the frame is valid JSON even if
    // a row was damaged.
    json::error_code ec;
    const auto data = json::parse(m.data, ec);
    out.append(ec ? std::string("null") : json::serialize(data));
  }
  out.append(R"(,"edited_at":)");
  if (m.edited_at) {
    append_int(out, *m.edited_at);
  } else {
    out.append("null");
  }
  out.append(m.deleted ? R"(,"deleted":true,"reactions":[)" : R"(,"deleted":false,"reactions":[)");
  bool first = true;
  for (const auto& r : m.reactions) {
    if (!first) out.push_back(',');
    first = false;
    out.append(R"({"emoji":)");
    append_string(out, r.emoji);
    out.append(R"(,"user_ids":[)");
    for (std::size_t i = 0; i < r.user_ids.size(); ++i) {
      if (i > 0) out.push_back(',');
      append_id(out, r.user_ids[i]);
    }
    out.append("]}");
  }
  out.append("]}");
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
