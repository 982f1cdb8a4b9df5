#pragma once

#include "store/postgres/pg_connection.hpp"
#include "store/store.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace chat::store::postgres {

// PostgreSQL as the system of record (cluster mode): every node talks to the same database.
// One connection belongs to the writer thread; a batch is one transaction (BEGIN ... COMMIT with
// synchronous_commit on, so COMMIT returns once the WAL is flushed) and each job a savepoint.
// `read_connections` connections are lent to readers one call at a time. Per-conversation seqs come
// from `UPDATE conversations SET last_seq = last_seq + 1 ... RETURNING` inside the writer's
// transaction: the row lock orders writers of one conversation across nodes until they commit.
// A dropped connection (server restart, network) fails the call in flight with StoreUnavailable
// and is re-established on the next call.
// Check-then-insert writes (create_user, open_direct, append_message, add_members, join_by_invite,
// and rotate_refresh, whose loser must see its refresh token as reused)
// can race with the same write on another node: both checks find nothing, the second INSERT waits
// for the first transaction and then fails with unique_violation. settle_race() rolls that one
// job back to its savepoint and runs it again, now seeing the winner's row, so the loser answers
// exactly what a sequential run gives and the rest of its batch is untouched.
class PostgresStore final : public Store {
 public:
  struct Options {
    std::string conninfo;  // a libpq connection string or URI, e.g. postgresql://chatd@host/chatd
    int read_connections = 4;
  };

  explicit PostgresStore(Options options);
  ~PostgresStore() override;

  // The schema version this build migrates to; see kMigrations in the .cpp.
  static int schema_version();

  bool optimistic_batches() const noexcept override { return false; }
  void begin_batch() override;
  void commit_batch() override;
  void rollback_batch() noexcept override;
  void begin_job() override;
  void end_job() override;
  void rollback_job() noexcept override;

  CreateUserResult create_user(const NewUser& user, TimeMs now) override;
  SessionIds create_session(const NewSession& session, TimeMs now) override;
  RotateResult rotate_refresh(const RotateRequest& request, TimeMs now) override;
  bool revoke_session(SessionId session, TimeMs now) override;
  std::vector<SessionId> revoke_device(UserId user, DeviceId device, TimeMs now) override;
  std::vector<DeviceSession> list_devices(UserId user, TimeMs now) override;
  std::optional<domain::User> update_profile(UserId user, const ProfileUpdate& update) override;
  void set_last_seen(UserId user, TimeMs when) override;
  OpenDirectResult open_direct(UserId self, UserId other, TimeMs now) override;
  AppendResult append_message(const NewMessage& message, MessageId id, TimeMs now) override;
  ReadResult mark_read(UserId viewer, MessageId message, TimeMs now) override;
  ReadResult mark_read_seq(UserId viewer, ConversationId conversation, Seq seq, TimeMs now) override;
  ReadResult mark_delivered_seq(UserId viewer, ConversationId conversation, Seq seq, TimeMs now) override;
  ChangeResult create_group(const NewGroup& group, const NextId& next_id, TimeMs now) override;
  ChangeResult add_members(UserId actor,
                           ConversationId id,
                           const std::vector<UserId>& users,
                           const NextId& next_id,
                           TimeMs now) override;
  ChangeResult remove_member(
      UserId actor, ConversationId id, UserId target, const NextId& next_id, TimeMs now) override;
  ChangeResult rename_group(
      UserId actor, ConversationId id, const std::string& name, const NextId& next_id, TimeMs now) override;
  ChangeResult set_role(UserId actor,
                        ConversationId id,
                        UserId target,
                        domain::MemberRole role,
                        const NextId& next_id,
                        TimeMs now) override;
  ChangeResult join_by_invite(
      UserId user, ConversationId id, const std::string& code, const NextId& next_id, TimeMs now) override;
  InviteResult create_invite(UserId actor, ConversationId id, const std::string& code, TimeMs now) override;
  InviteOutcome revoke_invite(UserId actor, ConversationId id, const std::string& code, TimeMs now) override;
  ChangeResult edit_message(
      UserId actor, MessageId message, const std::string& body, const NextId& next_id, TimeMs now) override;
  ChangeResult delete_message(UserId actor, MessageId message, const NextId& next_id, TimeMs now) override;
  ChangeResult react(UserId actor,
                     MessageId message,
                     const std::string& emoji,
                     bool on,
                     const NextId& next_id,
                     TimeMs now) override;

  std::optional<Credentials> find_credentials(std::string_view login_folded) override;
  std::optional<domain::AuthContext> find_access(std::string_view access_hash, TimeMs now) override;
  std::optional<domain::User> find_user(UserId user) override;
  std::vector<domain::User> search_users(std::string_view prefix_folded, int limit) override;
  std::vector<domain::Conversation> list_conversations(UserId viewer) override;
  std::optional<domain::Conversation> get_conversation(UserId viewer, ConversationId id) override;
  std::optional<HistoryPage> history(UserId viewer, ConversationId id, const HistoryQuery& query) override;
  InviteResult list_invites(UserId actor, ConversationId id) override;
  std::optional<std::vector<domain::Receipt>> receipts(UserId viewer, ConversationId id) override;
  std::optional<std::vector<UserId>> members_if_member(UserId viewer, ConversationId id) override;
  std::vector<UserId> shared_contacts(UserId viewer, const std::vector<UserId>& users) override;
  SyncPage sync(UserId viewer, const std::vector<std::pair<ConversationId, Seq>>& since, int limit) override;
  MessageId max_message_id() override;
  bool healthy() override;

 private:
  // A read connection lent for one call; returned to the pool when the lease ends.
  class ReadLease {
   public:
    ReadLease(PostgresStore& owner, std::unique_ptr<detail::Connection> db)
        : owner_(owner), db_(std::move(db)) {}
    ReadLease(ReadLease&& other) noexcept : owner_(other.owner_), db_(std::move(other.db_)) {}
    ReadLease(const ReadLease&) = delete;
    ~ReadLease();
    detail::Connection& operator*() const { return *db_; }

   private:
    PostgresStore& owner_;
    std::unique_ptr<detail::Connection> db_;
  };
  ReadLease lease();
  void migrate();

  // Runs `fn`, one write on the writer connection, and settles what another node's writer can do
  // to it:
  // - it lost a race for a unique key (detail::UniqueViolation): its work is rolled back (to the
  //   job's savepoint, or to one of its own inside a transaction without a job) and it runs again;
  //   the rerun sees the committed winner;
  // - it found a conversation locked by another writer while this batch holds earlier jobs' locks
  //   (detail::LockBusy, from next_seq): split_batch() commits the earlier jobs and it runs again
  //   in a fresh transaction, where it may wait;
  // - it was chosen as the victim of a deadlock (40P01, which PostgreSQL detects after
  //   deadlock_timeout): it is undone, the batch split if earlier jobs hold locks, and rerun.
  // Still failing after kRaceAttempts runs is a real bug: the exception propagates.
  template <class Fn>
  auto settle_race(Fn&& fn) -> decltype(fn()) {
    for (int attempt = 1;; ++attempt) {
      const bool own = !job_open_ && writer_->in_transaction();
      if (own) writer_->exec_script("SAVEPOINT race");
      try {
        auto result = fn();
        if (own) writer_->exec_script("RELEASE SAVEPOINT race");
        return result;
      } catch (const detail::UniqueViolation&) {
        if (attempt >= kRaceAttempts) throw;
        if (job_open_) {
          writer_->exec_script("ROLLBACK TO SAVEPOINT job");  // keeps the savepoint for end_job
        } else if (own) {
          writer_->exec_script("ROLLBACK TO SAVEPOINT race; RELEASE SAVEPOINT race");
        }
        // Outside any transaction (autocommit) the failed statement undid only itself.
      } catch (const detail::LockBusy&) {
        if (attempt >= kRaceAttempts || !job_open_) throw;
        split_batch();
      } catch (const StoreUnavailable&) {
        // A deadlock this job was chosen to break (40P01; e.g. two nodes' batches inserting two
        // unique keys in opposite order): give up this job's locks, and the earlier jobs' too by
        // committing them, then run it again. Anything else unavailable fails the batch.
        if (attempt >= kRaceAttempts || !job_open_ || writer_->last_sqlstate() != "40P01") throw;
        if (jobs_done_ == 0) {
          writer_->exec_script("ROLLBACK TO SAVEPOINT job");
        } else {
          split_batch();
        }
      }
    }
  }
  // The next seq of a conversation, taking its row lock (see settle_race for when it may wait).
  detail::Result next_seq(ConversationId id, TimeMs now);
  bool may_wait() const noexcept;
  std::optional<AppendResult> earlier_use(const NewMessage& message);
  void split_batch();
  static constexpr int kRaceAttempts = 3;
  // The bodies of the racing writes, run by settle_race.
  CreateUserResult create_user_once(const NewUser& user, TimeMs now);
  RotateResult rotate_refresh_once(const RotateRequest& request, TimeMs now);
  OpenDirectResult open_direct_once(UserId self, UserId other, TimeMs now);
  AppendResult append_message_once(const NewMessage& message, MessageId id, TimeMs now);
  ChangeResult add_members_once(
      UserId actor, ConversationId id, const std::vector<UserId>& users, const NextId& next_id, TimeMs now);
  ChangeResult remove_member_once(
      UserId actor, ConversationId id, UserId target, const NextId& next_id, TimeMs now);
  ChangeResult rename_group_once(
      UserId actor, ConversationId id, const std::string& name, const NextId& next_id, TimeMs now);
  ChangeResult set_role_once(UserId actor,
                             ConversationId id,
                             UserId target,
                             domain::MemberRole role,
                             const NextId& next_id,
                             TimeMs now);
  ChangeResult join_by_invite_once(
      UserId user, ConversationId id, const std::string& code, const NextId& next_id, TimeMs now);
  std::vector<UserId> member_ids(detail::Connection& db, ConversationId id);
  ReadResult move_watermark(UserId viewer, ConversationId conversation, Seq seq, bool read);
  // Appends one event to a conversation's log on the writer connection.
  domain::Message append_event(ConversationId id,
                               UserId sender,
                               std::string_view type,
                               std::string_view body,
                               std::optional<MessageId> ref_id,
                               std::string_view data,
                               MessageId event_id,
                               TimeMs now);
  ChangeResult change_message(UserId actor,
                              MessageId message,
                              const NextId& next_id,
                              TimeMs now,
                              std::string_view type,
                              const std::string& body,
                              bool on);
  std::optional<domain::Conversation> load_conversation(detail::Connection& db,
                                                        UserId viewer,
                                                        ConversationId id);

  Options options_;
  std::unique_ptr<detail::Connection> writer_;
  bool job_open_ = false;         // between begin_job and end_job/rollback_job (writer thread only)
  bool release_pending_ = false;  // the last ended job's savepoint is not released yet
  int jobs_done_ = 0;             // jobs ended in the current transaction: it may hold their locks
  std::mutex readers_mutex_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<detail::Connection>> idle_readers_;
};

}  // namespace chat::store::postgres
