#pragma once

#include "store/store.hpp"

#include <optional>
#include <string>

// Builders for the store's request structs, field by field, so tests keep compiling (and stay
// -Wmissing-field-initializers clean) when a struct gains an optional field.
namespace chat::test {

inline store::NewUser new_user(std::string username,
                               std::string email,
                               std::string password_hash,
                               std::string display_name) {
  store::NewUser u;
  u.username = std::move(username);
  u.email = std::move(email);
  u.password_hash = std::move(password_hash);
  u.display_name = std::move(display_name);
  return u;
}

inline store::NewMessage new_message(domain::ConversationId conversation,
                                     domain::UserId sender,
                                     std::string client_msg_id,
                                     std::string body) {
  store::NewMessage m;
  m.conversation_id = conversation;
  m.sender_id = sender;
  m.client_msg_id = std::move(client_msg_id);
  m.body = std::move(body);
  return m;
}

inline store::NewSession new_session(domain::UserId user,
                                     std::string access_hash,
                                     domain::TimeMs access_expires_at,
                                     std::string refresh_hash,
                                     domain::TimeMs refresh_expires_at) {
  store::NewSession s;
  s.user_id = user;
  s.device_type = domain::DeviceType::web;
  s.device_name = "laptop";
  s.access_hash = std::move(access_hash);
  s.access_expires_at = access_expires_at;
  s.refresh_hash = std::move(refresh_hash);
  s.refresh_expires_at = refresh_expires_at;
  return s;
}

inline store::RotateRequest rotate_request(std::string old_refresh_hash,
                                           std::string access_hash,
                                           domain::TimeMs access_expires_at,
                                           std::string refresh_hash,
                                           domain::TimeMs refresh_expires_at) {
  store::RotateRequest r;
  r.old_refresh_hash = std::move(old_refresh_hash);
  r.access_hash = std::move(access_hash);
  r.access_expires_at = access_expires_at;
  r.refresh_hash = std::move(refresh_hash);
  r.refresh_expires_at = refresh_expires_at;
  return r;
}

inline store::HistoryQuery history_query(std::optional<domain::Seq> before,
                                         std::optional<domain::Seq> after,
                                         int limit) {
  store::HistoryQuery q;
  q.before = before;
  q.after = after;
  q.limit = limit;
  return q;
}

inline store::ProfileUpdate profile_update(std::optional<std::string> display_name,
                                           std::optional<std::string> profile_picture,
                                           std::optional<std::string> bio) {
  store::ProfileUpdate p;
  p.display_name = std::move(display_name);
  p.profile_picture = std::move(profile_picture);
  p.bio = std::move(bio);
  return p;
}

}  // namespace chat::test
