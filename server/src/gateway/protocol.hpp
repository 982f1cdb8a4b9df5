#pragma once

#include "domain/error_code.hpp"
#include "domain/types.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

// The WebSocket protocol without sockets: text in, a typed frame or an error out, and the
// builders of every server frame. See docs/protocol.md; the cases in
// server/tests/unit/protocol_cases.json are shared with the TypeScript client's tests.
namespace chat::gateway {

struct AuthFrame {
  std::string token;
};
struct PingFrame {};
struct SendFrame {
  domain::ConversationId conversation_id = 0;
  std::string client_msg_id;
  std::string body;
  std::optional<domain::MessageId> reply_to;
};
struct ReadFrame {
  domain::ConversationId conversation_id = 0;
  domain::Seq seq = 0;
};
struct DeliveredFrame {
  domain::ConversationId conversation_id = 0;
  domain::Seq seq = 0;
};
struct TypingFrame {
  domain::ConversationId conversation_id = 0;
};
struct EditFrame {
  domain::MessageId message_id = 0;
  std::string body;
};
struct DeleteFrame {
  domain::MessageId message_id = 0;
};
struct ReactFrame {
  domain::MessageId message_id = 0;
  std::string emoji;
  bool on = true;
};
struct PresenceSubscribeFrame {
  std::vector<domain::UserId> user_ids;
};
struct SyncFrame {
  std::vector<std::pair<domain::ConversationId, domain::Seq>> since;
  int limit = 500;
};
struct FrameError {
  domain::ErrorCode code = domain::ErrorCode::bad_request;
  std::string message;
  std::string client_msg_id;  // echoed so the client knows which send failed
};

using ClientFrame = std::variant<FrameError,
                                 AuthFrame,
                                 PingFrame,
                                 SendFrame,
                                 ReadFrame,
                                 DeliveredFrame,
                                 TypingFrame,
                                 EditFrame,
                                 DeleteFrame,
                                 ReactFrame,
                                 PresenceSubscribeFrame,
                                 SyncFrame>;

struct ParsedFrame {
  ClientFrame frame;
  std::string request_id;  // echoed in replies and errors; empty when the client sent none
};

// Parses and validates one text frame (limits included: a send whose body is too long is a
// FrameError{message_too_long}).
ParsedFrame parse_client_frame(std::string_view text);

namespace frames {
std::string ready(domain::UserId user,
                  domain::SessionId session,
                  domain::DeviceId device,
                  std::int64_t heartbeat_ms);
std::string pong(domain::TimeMs now);
std::string ack(const domain::Message& m);
std::string message(const domain::Message& m);
std::string receipt(domain::ConversationId conversation,
                    domain::UserId user,
                    domain::Seq delivered_seq,
                    domain::Seq read_seq);
std::string typing(domain::ConversationId conversation, domain::UserId user, std::int64_t expires_in_ms);
std::string presence(domain::UserId user, bool online, std::optional<domain::TimeMs> last_seen);
std::string ok(std::string_view request_id, const domain::Message& event);
std::string sync_batch(const std::vector<domain::Message>& events,
                       bool has_more,
                       const std::vector<domain::ConversationId>& removed);
std::string error(domain::ErrorCode code,
                  std::string_view message,
                  std::string_view client_msg_id = {},
                  std::string_view request_id = {});
}  // namespace frames

}  // namespace chat::gateway
