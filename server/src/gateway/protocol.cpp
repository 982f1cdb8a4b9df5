#include "gateway/protocol.hpp"

#include "api/wire.hpp"
#include "domain/limits.hpp"
#include "domain/utf8.hpp"
#include "domain/validation.hpp"

#include <boost/json.hpp>

namespace chat::gateway {

namespace json = boost::json;
using domain::ErrorCode;

namespace {

const json::string* get_string(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr ? v->if_string() : nullptr;
}

FrameError fail(ErrorCode code, std::string message, std::string client_msg_id = {}) {
  return FrameError{code, std::move(message), std::move(client_msg_id)};
}

ClientFrame parse_send(const json::object& o) {
  const auto* cid = get_string(o, "client_msg_id");
  std::string client_msg_id = cid != nullptr ? std::string(*cid) : std::string();
  if (cid == nullptr || domain::check_client_msg_id(client_msg_id))
    return fail(ErrorCode::bad_request, "client_msg_id must be 1..64 characters of [A-Za-z0-9_-]");
  const auto* conv = o.if_contains("conversation_id");
  const auto conversation = conv != nullptr ? api::wire::parse_id(*conv) : std::nullopt;
  if (!conversation) return fail(ErrorCode::bad_request, "conversation_id must be an id", client_msg_id);
  const auto* body = get_string(o, "body");
  if (body == nullptr) return fail(ErrorCode::bad_request, "body must be a string", client_msg_id);
  if (auto err = domain::check_body(*body)) {
    const std::string why(domain::body_error_text(*err));
    return fail(*err, why, client_msg_id);
  }
  std::optional<domain::MessageId> reply_to;
  if (const auto* r = o.if_contains("reply_to"); r != nullptr && !r->is_null()) {
    reply_to = api::wire::parse_id(*r);
    if (!reply_to) return fail(ErrorCode::bad_request, "reply_to must be a message id", client_msg_id);
  }
  return SendFrame{*conversation, std::move(client_msg_id), std::string(*body), reply_to};
}

ClientFrame parse_read(const json::object& o) {
  const auto* conv = o.if_contains("conversation_id");
  const auto conversation = conv != nullptr ? api::wire::parse_id(*conv) : std::nullopt;
  const auto* seq = o.if_contains("seq");
  if (!conversation || seq == nullptr || !seq->is_int64() || seq->get_int64() < 0)
    return fail(ErrorCode::bad_request, "read needs conversation_id and a non-negative integer seq");
  return ReadFrame{*conversation, seq->get_int64()};
}

}  // namespace

namespace {

std::optional<std::int64_t> get_id(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr ? api::wire::parse_id(*v) : std::nullopt;
}

ClientFrame parse_delivered(const json::object& o) {
  const auto conversation = get_id(o, "conversation_id");
  const auto* seq = o.if_contains("seq");
  if (!conversation || seq == nullptr || !seq->is_int64() || seq->get_int64() < 0)
    return fail(ErrorCode::bad_request, "delivered needs conversation_id and a non-negative integer seq");
  return DeliveredFrame{*conversation, seq->get_int64()};
}

ClientFrame parse_change(const json::object& o, std::string_view type) {
  const auto message = get_id(o, "message_id");
  if (!message) return fail(ErrorCode::bad_request, "message_id must be an id");
  if (type == "delete") return DeleteFrame{*message};
  if (type == "edit") {
    const auto* body = get_string(o, "body");
    if (body == nullptr) return fail(ErrorCode::bad_request, "edit needs a string body");
    if (auto err = domain::check_body(*body)) return fail(*err, "body is not a valid message body");
    return EditFrame{*message, std::string(*body)};
  }
  const auto* emoji = get_string(o, "emoji");
  if (emoji == nullptr) return fail(ErrorCode::bad_request, "react needs a string emoji");
  const auto* on = o.if_contains("on");
  if (on != nullptr && !on->is_bool()) return fail(ErrorCode::bad_request, "on must be a boolean");
  return ReactFrame{*message, std::string(*emoji), on == nullptr || on->get_bool()};
}

ClientFrame parse_presence(const json::object& o) {
  const auto* ids = o.if_contains("user_ids");
  const auto* arr = ids != nullptr ? ids->if_array() : nullptr;
  if (arr == nullptr || arr->size() > domain::limits::presence_watch_max)
    return fail(ErrorCode::bad_request, "user_ids must be an array of at most 500 ids");
  PresenceSubscribeFrame f;
  for (const auto& v : *arr) {
    auto id = api::wire::parse_id(v);
    if (!id) return fail(ErrorCode::bad_request, "user_ids must be ids");
    f.user_ids.push_back(*id);
  }
  return f;
}

ClientFrame parse_sync(const json::object& o) {
  SyncFrame f;
  if (const auto* since = o.if_contains("since"); since != nullptr && !since->is_null()) {
    const auto* obj = since->if_object();
    if (obj == nullptr || obj->size() > domain::limits::sync_since_max)
      return fail(ErrorCode::bad_request, "since must be an object of conversation_id: seq");
    for (const auto& kv : *obj) {
      auto id = api::wire::parse_id(std::string_view(kv.key()));
      if (!id || !kv.value().is_int64() || kv.value().get_int64() < 0)
        return fail(ErrorCode::bad_request, "since must map conversation ids to non-negative seqs");
      f.since.emplace_back(*id, kv.value().get_int64());
    }
  }
  if (const auto* limit = o.if_contains("limit"); limit != nullptr) {
    if (!limit->is_int64() || limit->get_int64() < 1 || limit->get_int64() > domain::limits::sync_page_max)
      return fail(ErrorCode::bad_request, "limit must be 1..1000");
    f.limit = static_cast<int>(limit->get_int64());
  }
  return f;
}

ClientFrame parse_object(const json::object& o, std::string_view type) {
  if (type == "send") return parse_send(o);
  if (type == "ping") return PingFrame{};
  if (type == "read") return parse_read(o);
  if (type == "delivered") return parse_delivered(o);
  if (type == "edit" || type == "delete" || type == "react") return parse_change(o, type);
  if (type == "presence_subscribe") return parse_presence(o);
  if (type == "sync") return parse_sync(o);
  if (type == "typing") {
    const auto conversation = get_id(o, "conversation_id");
    if (!conversation) return fail(ErrorCode::bad_request, "typing needs a conversation_id");
    return TypingFrame{*conversation};
  }
  if (type == "auth") {
    const auto* token = get_string(o, "token");
    if (token == nullptr || token->empty() || token->size() > 256)
      return fail(ErrorCode::bad_request, "auth needs a token");
    return AuthFrame{std::string(*token)};
  }
  return fail(ErrorCode::unknown_type, "unknown frame type");
}

}  // namespace

namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A "\uD800".."\uDBFF" escape not followed by "\uDC00".."\uDFFF", or a trailing one alone.
// Only consulted after the parser failed (Boost.JSON 1.81 reports a lone leading surrogate as a
// plain syntax error).
bool has_lone_surrogate_escape(std::string_view text) {
  const auto surrogate_at = [&](std::size_t i, bool leading) {
    if (i + 6 > text.size() || text[i] != '\\' || text[i + 1] != 'u') return false;
    if (!is_hex(text[i + 2]) || !is_hex(text[i + 3]) || !is_hex(text[i + 4]) || !is_hex(text[i + 5]))
      return false;
    if (text[i + 2] != 'd' && text[i + 2] != 'D') return false;
    const char c = static_cast<char>(text[i + 3] | 0x20);
    return leading ? (c == '8' || c == '9' || c == 'a' || c == 'b')
                   : (c == 'c' || c == 'd' || c == 'e' || c == 'f');
  };
  for (std::size_t i = 0; i + 6 <= text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '\\') {
      ++i;  // an escaped backslash, not an escape
      continue;
    }
    if (surrogate_at(i, true)) {
      if (!surrogate_at(i + 6, false)) return true;
      i += 11;
    } else if (surrogate_at(i, false)) {
      return true;
    }
  }
  return false;
}

}  // namespace

ParsedFrame parse_client_frame(std::string_view text) {
  json::error_code ec;
  json::parse_options options;
  options.max_depth = 16;
  // A frame's DOM lives only in this call (what is kept is copied out), so it and the parser's
  // work stack are allocated from buffers on this stack: no heap allocation per key, string and
  // object of a common frame (a send was ~7 of the I/O thread's ~16 per message). Bigger frames
  // (a 100,000-character body) go on in heap blocks.
  unsigned char dom_buffer[2048];
  unsigned char parse_buffer[1024];
  json::monotonic_resource dom(dom_buffer, sizeof dom_buffer);
  json::parser parser(json::storage_ptr(), options, parse_buffer, sizeof parse_buffer);
  parser.reset(&dom);
  parser.write(text.data(), text.size(), ec);
  json::value v = ec ? json::value() : parser.release();
  if (ec == json::error::illegal_leading_surrogate || ec == json::error::illegal_trailing_surrogate ||
      (ec && has_lone_surrogate_escape(text))) {
    // "\ud800" is well-formed JSON text but no Unicode scalar value; the parser stops there, so the
    // frame's fields (client_msg_id) are unknown.
    return {fail(ErrorCode::invalid_utf8, "a string contains a lone UTF-16 surrogate escape"), {}};
  }
  if (ec) return {fail(ErrorCode::bad_json, "frame is not valid JSON"), {}};
  const auto* o = v.if_object();
  if (o == nullptr) return {fail(ErrorCode::bad_json, "frame must be a JSON object"), {}};
  std::string request_id;
  if (const auto* rid = o->if_contains("request_id"); rid != nullptr) {
    const auto* str = rid->if_string();
    if (str == nullptr || str->empty() || str->size() > 64 || !domain::is_valid_utf8(*str))
      return {fail(ErrorCode::bad_request, "request_id must be a string of 1..64 characters"), {}};
    request_id = std::string(*str);
  }
  const auto* type = get_string(*o, "type");
  if (type == nullptr) return {fail(ErrorCode::bad_request, "frame needs a string \"type\""), request_id};
  return {parse_object(*o, *type), request_id};
}

namespace frames {

std::string ready(domain::UserId user,
                  domain::SessionId session,
                  domain::DeviceId device,
                  std::int64_t heartbeat_ms) {
  return json::serialize(json::object{{"type", "ready"},
                                      {"user_id", api::wire::id(user)},
                                      {"session_id", api::wire::id(session)},
                                      {"device_id", api::wire::id(device)},
                                      {"heartbeat_interval_ms", heartbeat_ms}});
}

std::string pong(domain::TimeMs now) {
  return json::serialize(json::object{{"type", "pong"}, {"ts", now}});
}

// The per-message frames are written directly (api::wire::append_*), not through a json::object:
// they are built for every send and every history page. protocol_test checks them field by field.
std::string ack(const domain::Message& m) {
  std::string out;
  out.reserve(128 + m.client_msg_id.size());
  out.append(R"({"type":"ack","client_msg_id":)");
  api::wire::append_string(out, m.client_msg_id);
  out.append(R"(,"conversation_id":)");
  api::wire::append_id(out, m.conversation_id);
  out.append(R"(,"id":)");
  api::wire::append_id(out, m.id);
  out.append(R"(,"seq":)");
  api::wire::append_int(out, m.seq);
  out.append(R"(,"created_at":)");
  api::wire::append_int(out, m.created_at);
  out.push_back('}');
  return out;
}

std::string message(const domain::Message& m) {
  std::string out;
  out.reserve(320 + m.body.size() + m.client_msg_id.size() + m.data.size());
  out.append(R"({"type":"message","message":)");
  api::wire::append_message(out, m);
  out.push_back('}');
  return out;
}

std::string receipt(domain::ConversationId conversation,
                    domain::UserId user,
                    domain::Seq delivered_seq,
                    domain::Seq read_seq) {
  return json::serialize(json::object{{"type", "receipt"},
                                      {"conversation_id", api::wire::id(conversation)},
                                      {"user_id", api::wire::id(user)},
                                      {"delivered_seq", delivered_seq},
                                      {"read_seq", read_seq}});
}

std::string typing(domain::ConversationId conversation, domain::UserId user, std::int64_t expires_in_ms) {
  return json::serialize(json::object{{"type", "typing"},
                                      {"conversation_id", api::wire::id(conversation)},
                                      {"user_id", api::wire::id(user)},
                                      {"expires_in_ms", expires_in_ms}});
}

std::string presence(domain::UserId user, bool online, std::optional<domain::TimeMs> last_seen) {
  return json::serialize(
      json::object{{"type", "presence"},
                   {"user_id", api::wire::id(user)},
                   {"status", online ? "online" : "offline"},
                   {"last_seen", last_seen ? json::value(*last_seen) : json::value(nullptr)}});
}

std::string ok(std::string_view request_id, const domain::Message& event) {
  std::string out;
  out.reserve(384 + event.body.size() + event.data.size());
  out.append(R"({"type":"ok","request_id":)");
  api::wire::append_string(out, request_id);
  out.append(R"(,"message":)");
  api::wire::append_message(out, event);
  out.push_back('}');
  return out;
}

std::string sync_batch(const std::vector<domain::Message>& events,
                       bool has_more,
                       const std::vector<domain::ConversationId>& removed) {
  std::string out;
  out.reserve(64 + events.size() * 384);
  out.append(R"({"type":"sync_batch","events":[)");
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i > 0) out.push_back(',');
    api::wire::append_message(out, events[i]);
  }
  out.append(has_more ? R"(],"has_more":true,"removed":[)" : R"(],"has_more":false,"removed":[)");
  for (std::size_t i = 0; i < removed.size(); ++i) {
    if (i > 0) out.push_back(',');
    api::wire::append_id(out, removed[i]);
  }
  out.append("]}");
  return out;
}

std::string error(ErrorCode code,
                  std::string_view message,
                  std::string_view client_msg_id,
                  std::string_view request_id) {
  json::object o{{"type", "error"}, {"code", domain::to_string(code)}, {"message", message}};
  if (!client_msg_id.empty()) o["client_msg_id"] = client_msg_id;
  if (!request_id.empty()) o["request_id"] = request_id;
  return json::serialize(o);
}

}  // namespace frames

}  // namespace chat::gateway
