#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

// Value types shared by the store, the API and the gateway. No I/O here.
namespace chat::domain {

using UserId = std::int64_t;
using ConversationId = std::int64_t;
using MessageId = std::int64_t;
using SessionId = std::int64_t;
using DeviceId = std::int64_t;
using Seq = std::int64_t;
using TimeMs = std::int64_t;  // milliseconds since the Unix epoch

enum class DeviceType : std::uint8_t { web, mobile, smart_tv };
enum class ConversationType : std::uint8_t { direct, group };
enum class MemberRole : std::uint8_t { owner, admin, member };

struct User {
  UserId id = 0;
  std::string username;
  std::string email;
  std::string display_name;
  std::string profile_picture;
  std::string bio;
  TimeMs created_at = 0;
  std::optional<TimeMs> last_seen;
};

struct Member {
  UserId user_id = 0;
  std::string username;
  std::string display_name;
  MemberRole role = MemberRole::member;
  TimeMs joined_at = 0;
  Seq delivered_seq = 0;
  Seq read_seq = 0;
};

struct Reaction {
  std::string emoji;
  std::vector<UserId> user_ids;
};

// One entry of a conversation's log. `type` is "text" for a message, or an event: edit, delete,
// reaction, created, member_added, member_removed, member_left, member_joined, renamed,
// role_changed (see docs/protocol.md). A text entry read back from the store shows its current
// state: edited body and edited_at, deleted, reactions.
struct Message {
  MessageId id = 0;
  ConversationId conversation_id = 0;
  Seq seq = 0;
  UserId sender_id = 0;
  std::string type = "text";
  std::string body;
  std::string client_msg_id;
  TimeMs created_at = 0;
  std::optional<MessageId> ref_id;  // the message an edit/delete/reaction is about
  std::string data;                 // event details as a JSON object text ("" for none)
  std::optional<TimeMs> edited_at;
  bool deleted = false;
  std::vector<Reaction> reactions;
};

// A member's receipt watermarks in one conversation.
struct Receipt {
  UserId user_id = 0;
  Seq delivered_seq = 0;
  Seq read_seq = 0;
};

struct Conversation {
  ConversationId id = 0;
  ConversationType type = ConversationType::direct;
  std::string name;
  TimeMs created_at = 0;
  Seq last_seq = 0;
  std::vector<Member> members;
  std::optional<Message> last_message;
  // The caller's own view.
  std::int64_t unread_count = 0;
  Seq read_seq = 0;
  Seq delivered_seq = 0;
};

// What a valid access token stands for.
struct AuthContext {
  UserId user_id = 0;
  SessionId session_id = 0;
  DeviceId device_id = 0;
  // When the access token that produced this context expires (ms since the epoch; 0: not known).
  // Caches of the context must not serve it past this instant.
  TimeMs access_expires_at = 0;
};

std::string_view to_string(DeviceType t) noexcept;
std::optional<DeviceType> parse_device_type(std::string_view s) noexcept;
std::string_view to_string(ConversationType t) noexcept;
std::string_view to_string(MemberRole r) noexcept;
std::optional<MemberRole> parse_member_role(std::string_view s) noexcept;

}  // namespace chat::domain
