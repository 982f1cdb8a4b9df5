#pragma once

#include "domain/types.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::store {

using domain::ConversationId;
using domain::DeviceId;
using domain::MessageId;
using domain::Seq;
using domain::SessionId;
using domain::TimeMs;
using domain::UserId;

struct NewUser {
  std::string username;
  std::string email;
  std::string password_hash;
  std::string display_name;
};

enum class CreateUserOutcome { created, username_taken, email_taken };
struct CreateUserResult {
  CreateUserOutcome outcome = CreateUserOutcome::created;
  domain::User user;
};

struct Credentials {
  UserId user_id = 0;
  std::string password_hash;
};

// Token hashes are the raw 32-byte SHA-256 of the opaque token; tokens themselves are never stored.
struct NewSession {
  UserId user_id = 0;
  domain::DeviceType device_type = domain::DeviceType::web;
  std::string device_name;
  std::string access_hash;
  TimeMs access_expires_at = 0;
  std::string refresh_hash;
  TimeMs refresh_expires_at = 0;
};

struct SessionIds {
  SessionId session_id = 0;
  DeviceId device_id = 0;
};

// A logged-in device: one live session (not revoked, refresh token not expired).
struct DeviceSession {
  DeviceId device_id = 0;
  SessionId session_id = 0;
  domain::DeviceType type = domain::DeviceType::web;
  std::string name;
  TimeMs created_at = 0;
  TimeMs last_active = 0;
};

struct RotateRequest {
  std::string old_refresh_hash;
  std::string access_hash;
  TimeMs access_expires_at = 0;
  std::string refresh_hash;
  TimeMs refresh_expires_at = 0;
};

// `reused`: the refresh token was already rotated once; the session has been revoked (a stolen
// token and its owner cannot both keep using it).
enum class RotateOutcome { rotated, not_found, reused };
struct RotateResult {
  RotateOutcome outcome = RotateOutcome::not_found;
  domain::AuthContext auth;
};

struct ProfileUpdate {
  std::optional<std::string> display_name;
  std::optional<std::string> profile_picture;
  std::optional<std::string> bio;
};

enum class OpenDirectOutcome { created, existing, user_not_found };
struct OpenDirectResult {
  OpenDirectOutcome outcome = OpenDirectOutcome::user_not_found;
  ConversationId conversation_id = 0;
};

struct NewMessage {
  ConversationId conversation_id = 0;
  UserId sender_id = 0;
  std::string client_msg_id;
  std::string body;
  std::optional<MessageId> reply_to;  // a message of the same conversation the sender can see
};

// `not_found`: no such conversation or the sender is not a member (one answer for both).
// `duplicate`: the sender already used this client_msg_id here; `message` is the stored original.
// `conflict`: the sender used this client_msg_id in another conversation.
// `bad_reply`: reply_to names no text message of this conversation visible to the sender.
enum class AppendOutcome { appended, duplicate, not_found, conflict, bad_reply };
struct AppendResult {
  AppendOutcome outcome = AppendOutcome::not_found;
  domain::Message message;
  std::vector<UserId> members;  // who to fan out to (appended only)
};

enum class ReadOutcome { updated, unchanged, not_found };
struct ReadResult {
  ReadOutcome outcome = ReadOutcome::not_found;
  ConversationId conversation_id = 0;
  Seq read_seq = 0;
  Seq delivered_seq = 0;
  std::vector<UserId> members;
};

// Source of new message/event ids (the writer's snowflake generator).
using NextId = std::function<MessageId()>;

// The outcome of every change to a conversation (groups, edits, reactions).
// `forbidden`: a member without the right (not admin, not the author, a direct conversation).
// `group_full`: the change would take the group past domain::limits::group_members_max.
// `invalid`: the change makes no sense (remove the owner, edit a deleted message).
enum class ChangeOutcome { ok, not_found, forbidden, group_full, invalid };
struct ChangeResult {
  ChangeOutcome outcome = ChangeOutcome::not_found;
  ConversationId conversation_id = 0;
  std::vector<domain::Message> events;     // appended to the log, in seq order
  std::vector<UserId> recipients;          // who receives the events
  std::optional<domain::Message> message;  // edit/delete/react: the target in its new state
};

struct NewGroup {
  UserId owner = 0;
  std::string name;
  std::vector<UserId> members;  // besides the owner
};

struct Invite {
  std::string code;
  ConversationId conversation_id = 0;
  UserId created_by = 0;
  TimeMs created_at = 0;
};
enum class InviteOutcome { ok, not_found, forbidden };
struct InviteResult {
  InviteOutcome outcome = InviteOutcome::not_found;
  std::vector<Invite> invites;
};

struct SyncPage {
  std::vector<domain::Message> events;  // by conversation, then seq
  bool has_more = false;
  std::vector<ConversationId> removed;  // named in `since` but not (or no longer) the viewer's
};

struct HistoryQuery {
  std::optional<Seq> before;
  std::optional<Seq> after;
  int limit = 50;
};

struct HistoryPage {
  std::vector<domain::Message> messages;  // ascending seq
  bool has_more = false;
};

// The system of record. Implementations: store/sqlite (embedded default). The contract:
//
// Threads. Write methods (those between begin_batch and commit_batch) are called by one writer
// thread only, inside a batch; StoreService owns that thread. Read methods are thread-safe and may
// be called concurrently from the read pool; they see committed data only.
//
// Durability. When commit_batch returns, every write of the batch is on disk. Group commit is the
// point: one transaction (one fsync) for everything queued while the previous one committed.
// A write job runs inside begin_job/end_job: if it throws, rollback_job undoes it alone.
//
// Order. append_message assigns the conversation's next seq (1, 2, 3, ... with no gaps) and a
// time-sortable unique id. Idempotency key: (sender, client_msg_id).
//
// Authorization. Every method taking a viewer returns nullopt / not_found when the viewer is not a
// member: callers cannot tell "not a member" from "does not exist", by design.
//
// Errors. Infrastructure failures throw StoreUnavailable (retryable) or StoreCorrupt (store/errors.hpp).
class Store {
 public:
  virtual ~Store() = default;

  // ---- writer thread ----
  virtual void begin_batch() = 0;
  virtual void commit_batch() = 0;
  virtual void rollback_batch() noexcept = 0;
  // Like commit_batch, but a store may make the batch durable without making it visible to
  // readers yet (SqliteStore: sends go to its append log and stay in the open transaction). Returns
  // true if it did: readers then see the batch only after publish(), which the caller runs soon
  // (StoreService: within publish_interval, or before any read that needs it). Default: commit.
  virtual bool commit_batch_deferred() {
    commit_batch();
    return false;
  }
  // Makes every deferred batch visible to readers (and durable in the store proper). Throws a
  // StoreError if that fails; the deferred batches are still durable and are published later.
  virtual void publish() {}
  // Starts a publish that may finish in the background, and returns true if it does: the writer
  // goes on running batches meanwhile (SqliteStore acknowledges sends from its append log until
  // the publish is over) and ends it with finish_publish(). `done` is called once, from another
  // thread, when the background part is over (to wake the writer). Default: publish() now, false.
  virtual bool begin_publish(std::function<void()> done) {
    (void)done;
    publish();
    return false;
  }
  // After begin_publish returned true: false while the background part still runs and !wait;
  // otherwise ends the publish (waiting for it if need be) and returns true, with *deferred set
  // when batches deferred meanwhile still wait for a publish. Throws a StoreError if the publish
  // failed (what it held is still durable, and is published later).
  virtual bool finish_publish(bool wait, bool* deferred) {
    (void)wait;
    *deferred = false;
    return true;
  }
  virtual void begin_job() = 0;
  virtual void end_job() = 0;
  virtual void rollback_job() noexcept = 0;

  virtual CreateUserResult create_user(const NewUser& user, TimeMs now) = 0;
  virtual SessionIds create_session(const NewSession& session, TimeMs now) = 0;
  virtual RotateResult rotate_refresh(const RotateRequest& request, TimeMs now) = 0;
  // Returns false if the session was already revoked or does not exist.
  virtual bool revoke_session(SessionId session, TimeMs now) = 0;
  // Revokes the live sessions of one of `user`'s devices; returns their ids (empty: not found).
  virtual std::vector<SessionId> revoke_device(UserId user, DeviceId device, TimeMs now) = 0;
  virtual std::optional<domain::User> update_profile(UserId user, const ProfileUpdate& update) = 0;
  virtual void set_last_seen(UserId user, TimeMs when) = 0;
  virtual OpenDirectResult open_direct(UserId self, UserId other, TimeMs now) = 0;
  virtual AppendResult append_message(const NewMessage& message, MessageId id, TimeMs now) = 0;
  // Moves the viewer's read watermark up to the seq of `message` (never down).
  virtual ReadResult mark_read(UserId viewer, MessageId message, TimeMs now) = 0;
  virtual ReadResult mark_read_seq(UserId viewer, ConversationId conversation, Seq seq, TimeMs now) = 0;
  virtual ReadResult mark_delivered_seq(UserId viewer, ConversationId conversation, Seq seq, TimeMs now) = 0;

  virtual ChangeResult create_group(const NewGroup& group, const NextId& next_id, TimeMs now) = 0;
  virtual ChangeResult add_members(UserId actor,
                                   ConversationId id,
                                   const std::vector<UserId>& users,
                                   const NextId& next_id,
                                   TimeMs now) = 0;
  // actor == target is leaving; otherwise an admin removing a member.
  virtual ChangeResult remove_member(
      UserId actor, ConversationId id, UserId target, const NextId& next_id, TimeMs now) = 0;
  virtual ChangeResult rename_group(
      UserId actor, ConversationId id, const std::string& name, const NextId& next_id, TimeMs now) = 0;
  virtual ChangeResult set_role(UserId actor,
                                ConversationId id,
                                UserId target,
                                domain::MemberRole role,
                                const NextId& next_id,
                                TimeMs now) = 0;
  virtual ChangeResult join_by_invite(
      UserId user, ConversationId id, const std::string& code, const NextId& next_id, TimeMs now) = 0;
  virtual InviteResult create_invite(UserId actor,
                                     ConversationId id,
                                     const std::string& code,
                                     TimeMs now) = 0;
  virtual InviteOutcome revoke_invite(UserId actor,
                                      ConversationId id,
                                      const std::string& code,
                                      TimeMs now) = 0;
  virtual ChangeResult edit_message(
      UserId actor, MessageId message, const std::string& body, const NextId& next_id, TimeMs now) = 0;
  virtual ChangeResult delete_message(UserId actor, MessageId message, const NextId& next_id, TimeMs now) = 0;
  virtual ChangeResult react(UserId actor,
                             MessageId message,
                             const std::string& emoji,
                             bool on,
                             const NextId& next_id,
                             TimeMs now) = 0;

  // ---- any thread ----
  virtual std::optional<Credentials> find_credentials(std::string_view login_folded) = 0;
  virtual std::optional<domain::AuthContext> find_access(std::string_view access_hash, TimeMs now) = 0;
  virtual std::optional<domain::User> find_user(UserId user) = 0;
  virtual std::vector<DeviceSession> list_devices(UserId user, TimeMs now) = 0;
  virtual std::vector<domain::User> search_users(std::string_view prefix_folded, int limit) = 0;
  virtual std::vector<domain::Conversation> list_conversations(UserId viewer) = 0;
  virtual std::optional<domain::Conversation> get_conversation(UserId viewer, ConversationId id) = 0;
  virtual std::optional<HistoryPage> history(UserId viewer, ConversationId id, const HistoryQuery& query) = 0;
  virtual InviteResult list_invites(UserId actor, ConversationId id) = 0;
  virtual std::optional<std::vector<domain::Receipt>> receipts(UserId viewer, ConversationId id) = 0;
  // The members, if `viewer` is one of them.
  virtual std::optional<std::vector<UserId>> members_if_member(UserId viewer, ConversationId id) = 0;
  // The subset of `users` that share at least one conversation with `viewer`.
  virtual std::vector<UserId> shared_contacts(UserId viewer, const std::vector<UserId>& users) = 0;
  // Everything after the given watermarks (conversations not named start from 0), at most `limit`
  // events, never before the viewer's join.
  virtual SyncPage sync(UserId viewer,
                        const std::vector<std::pair<ConversationId, Seq>>& since,
                        int limit) = 0;
  // The largest message id issued so far (the writer's snowflake generator restarts above it).
  virtual MessageId max_message_id() = 0;
  // True if the store answers a trivial query.
  virtual bool healthy() = 0;
  // True if reads are local and short (an embedded database on this machine), so a caller may run a
  // small bounded read (one history page) inline on its I/O thread instead of handing it to the
  // read pool and back. False (the default) for a store across the network.
  virtual bool cheap_reads() const noexcept { return false; }
  // True if the writer may run a batch's jobs without a savepoint each and replay the batch with
  // savepoints only when a job throws (StoreService::run_batch). False for a store whose jobs must
  // each run in their own savepoint from the start: PostgreSQL settles cross-node races and lock
  // waits inside the job's savepoint (PostgresStore::settle_race, split_batch), and a job that
  // threw in the optimistic pass would keep that error instead of being settled.
  virtual bool optimistic_batches() const noexcept { return true; }
};

}  // namespace chat::store
