#include "gateway/protocol.hpp"

#include "api/wire.hpp"
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
    const char* why = *err == ErrorCode::message_too_long ? "body is longer than 100000 characters"
                      : *err == ErrorCode::invalid_utf8   ? "body is not valid UTF-8"
                                                          : "body is empty";
    return fail(*err, why, client_msg_id);
  }
  return SendFrame{*conversation, std::move(client_msg_id), std::string(*body)};
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

ClientFrame parse_client_frame(std::string_view text) {
  json::error_code ec;
  json::parse_options options;
  options.max_depth = 16;
  json::value v = json::parse(text, ec, {}, options);
  if (ec) return fail(ErrorCode::bad_json, "frame is not valid JSON");
  const auto* o = v.if_object();
  if (o == nullptr) return fail(ErrorCode::bad_json, "frame must be a JSON object");
  const auto* type = get_string(*o, "type");
  if (type == nullptr) return fail(ErrorCode::bad_request, "frame needs a string \"type\"");
  if (*type == "send") return parse_send(*o);
  if (*type == "ping") return PingFrame{};
  if (*type == "read") return parse_read(*o);
  if (*type == "auth") {
    const auto* token = get_string(*o, "token");
    if (token == nullptr || token->empty() || token->size() > 256)
      return fail(ErrorCode::bad_request, "auth needs a token");
    return AuthFrame{std::string(*token)};
  }
  return fail(ErrorCode::unknown_type, "unknown frame type");
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

std::string ack(const domain::Message& m) {
  return json::serialize(json::object{{"type", "ack"},
                                      {"client_msg_id", m.client_msg_id},
                                      {"conversation_id", api::wire::id(m.conversation_id)},
                                      {"id", api::wire::id(m.id)},
                                      {"seq", m.seq},
                                      {"created_at", m.created_at}});
}

std::string message(const domain::Message& m) {
  return json::serialize(json::object{{"type", "message"}, {"message", api::wire::message(m)}});
}

std::string receipt(domain::ConversationId conversation, domain::UserId user, domain::Seq read_seq) {
  return json::serialize(json::object{{"type", "receipt"},
                                      {"conversation_id", api::wire::id(conversation)},
                                      {"user_id", api::wire::id(user)},
                                      {"read_seq", read_seq}});
}

std::string error(ErrorCode code, std::string_view message, std::string_view client_msg_id) {
  json::object o{{"type", "error"}, {"code", domain::to_string(code)}, {"message", message}};
  if (!client_msg_id.empty()) o["client_msg_id"] = client_msg_id;
  return json::serialize(o);
}

}  // namespace frames

}  // namespace chat::gateway
