#pragma once

#include "store/sqlite/append_log.hpp"
#include "store/sqlite/sqlite_checkpointer.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/store.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace chat::store::sqlite {

// The embedded default: one SQLite file in WAL mode with synchronous=FULL. One read-write
// connection belongs to the writer thread; read-only connections are lent to readers one call at
// a time: `read_connections` opened at start, more opened when all are lent (reads also run inline
// on I/O threads, see cheap_reads), up to kMaxReadConnections, then a reader waits.
class SqliteStore final : public Store {
 public:
  struct Options {
    std::string path;  // the database file; its directory must exist
    int read_connections = 4;
    // WAL frames (pages) after which the background checkpointer copies the WAL into the database
    // (~66 MB of 4 KiB pages), then once per a quarter of this many new frames; at 4x this (~264 MB)
    // the writer checkpoints itself. See Checkpointer.
    int checkpoint_frames = 16000;
    // The append log (append_log.hpp) at `path` + "-log": batches of sends are made durable there
    // and published to SQLite later (commit_batch_deferred, publish). Off: every batch commits.
    bool append_log = true;
    // A run of the log longer than this ends with a SQLite commit instead (at least 1 MiB).
    std::size_t append_log_max_bytes = std::size_t{64} << 20;
    // begin_publish commits on a thread of its own while the writer goes on acknowledging sends
    // from the log (see "Publishing in the background" below). Off: begin_publish publishes
    // synchronously (tests, A/B runs).
    bool background_publish = true;
    // Tests: runs on the publisher's thread before each background COMMIT (to hold a publish
    // open); an exception from it fails that commit as a SQLite error would.
    std::function<void()> before_background_commit = {};
  };
  static constexpr int kMaxReadConnections = 64;

  explicit SqliteStore(Options options);
  ~SqliteStore() override;

  // The schema version this build migrates to; see kMigrations in the .cpp.
  static int schema_version();
  // Checkpoints completed by the background checkpointer and made inline by the writer (tests).
  std::uint64_t background_checkpoints() const noexcept;
  std::uint64_t inline_checkpoints() const noexcept;
  std::uint64_t finished_checkpoints() const noexcept;  // background passes the writer completed
  // Sends replayed from the append log when this store opened (tests, the startup log line).
  std::size_t replayed_at_open() const noexcept { return replayed_at_open_; }
  // Frames written to the append log (tests).
  std::uint64_t log_frames() const noexcept {
    return (logs_[0] ? logs_[0]->frames_written() : 0) + (logs_[1] ? logs_[1]->frames_written() : 0);
  }
  // Sends acknowledged from the log while a background publish ran (tests, the benchmark notes).
  std::uint64_t held_sends() const noexcept { return held_total_.load(std::memory_order_relaxed); }
  // Held sends whose rows are not in the open transaction yet (writer thread; for tests).
  std::size_t held_unwritten() const noexcept { return held_.size() - held_next_; }

  void begin_batch() override;
  void commit_batch() override;
  bool commit_batch_deferred() override;
  void publish() override;
  bool begin_publish(std::function<void()> done) override;
  bool finish_publish(bool wait, bool* deferred) override;
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
  bool cheap_reads() const noexcept override { return true; }

 private:
  // A read connection lent for one call; returned to the pool when the lease ends.
  class ReadLease {
   public:
    ReadLease(SqliteStore& owner, std::unique_ptr<detail::Db> db) : owner_(owner), db_(std::move(db)) {}
    ReadLease(ReadLease&& other) noexcept : owner_(other.owner_), db_(std::move(other.db_)) {}
    ReadLease(const ReadLease&) = delete;
    ~ReadLease() {
      if (!db_) return;
      std::lock_guard lock(owner_.readers_mutex_);
      owner_.idle_readers_.push_back(std::move(db_));
      owner_.readers_cv_.notify_one();
    }
    detail::Db& operator*() const { return *db_; }

   private:
    SqliteStore& owner_;
    std::unique_ptr<detail::Db> db_;
  };
  ReadLease lease();
  std::unique_ptr<detail::Db> open_reader();
  void migrate();
  std::vector<UserId> member_ids(detail::Db& db, ConversationId id);
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
  std::optional<domain::Conversation> load_conversation(detail::Db& db, UserId viewer, ConversationId id);

  // What appends know about a conversation, so that N sends to one conversation in a batch read
  // its members and last_seq once and write its row and each sender's read marker once (at
  // flush_appends) instead of N times. Kept across batches (a conversation's next send reads
  // nothing): this connection is the only writer, every writer method that changes members or
  // last_seq drops it (forget_appends), a rollback drops it, and begin_batch drops it when another
  // connection committed in between (PRAGMA data_version: tests, a sqlite3 shell). At most
  // kAppendCacheMax conversations. Writer thread only.
  struct AppendState {
    Seq last_seq = 0;  // the conversation's seq in this transaction, pending writes included
    TimeMs last_activity_at = 0;
    bool dirty = false;                                // last_seq/last_activity_at not written yet
    std::vector<UserId> members;                       // by user_id
    std::vector<Seq> joined_seqs;                      // of `members`, same order
    std::vector<std::pair<UserId, Seq>> read_markers;  // senders' read_seq not written yet
  };
  // Writes what appends deferred; the cached state stays valid (it is now what the rows say).
  // Every writer method but append_message calls this (or forget_appends) first, and end_job and
  // commit_batch do: nothing on the writer connection reads those rows while writes are pending.
  // flush_appends also marks the batch as more than sends (it cannot go to the append log).
  void flush_appends();
  void write_appends();
  // Inserts logged sends again (after a crash, or after SQLite rolled back the open transaction
  // that held them); each change only moves forward, so a send already there stays as it is.
  void replay(const std::vector<detail::LoggedMessage>& messages);
  // replay() of messages [from, to) that keeps appends_; `rows_only`: without the conversation
  // and read-marker updates (appends_ holds them, pending).
  void insert_logged(const std::vector<detail::LoggedMessage>& messages,
                     std::size_t from,
                     std::size_t to,
                     bool rows_only);
  // The records of both logs' runs (what the open transaction, or one SQLite rolled back, holds).
  std::vector<detail::LoggedMessage> logged_runs() const;
  void begin_transaction();
  // The append of a send while a background publish holds writer_ (see below), or nullopt when it
  // needs the database: then the caller ends the publish and appends as usual.
  std::optional<AppendResult> append_from_log(const NewMessage& message, MessageId id, TimeMs now);
  AppendResult appended(const NewMessage& message, MessageId id, Seq seq, TimeMs now, AppendState& state);
  // Ends a background publish (waiting for its commit if `wait`; false if it still runs and not
  // `wait`): the log it committed is reset, and the sends held meanwhile go into a new transaction
  // (inside a job, the job's own after a savepoint). If the commit failed (SQLite rolled the
  // transaction back): inside a batch both logs' runs go in again at once and the batch goes on;
  // outside one it throws the commit's StoreError and the next batch replays them.
  bool end_publish(bool wait);
  // Inserts up to `max` of the held sends end_publish left to drain (rows only, in order): at
  // 20 000 sends/s a publish holds a few hundred, at 40 000 several thousand (5-20 us each), and
  // inserting them all at once stopped every send queued behind them for up to 50 ms.
  void drain_held(std::size_t max);
  // All of them: before anything that needs the transaction to hold every acknowledged send (a
  // publish, a full commit, another writer method, a job's savepoint, a reply or a possible retry).
  void drain_all() {
    if (draining_) drain_held(held_.size());
  }
  void publisher_loop();
  // Ends probe_'s read transaction (at the end of each batch and publish).
  void end_probe() noexcept;
  // The open transaction is committed durably: the log's run is no longer needed.
  void committed_durably() noexcept;
  // flush_appends, then drops the cached state: for methods that may change a conversation's
  // members or last_seq themselves.
  void forget_appends();
  // Drops pending writes and cached state unwritten: their transaction or savepoint is rolled back.
  void discard_appends() noexcept;

  Options options_;
  std::unique_ptr<detail::Checkpointer> checkpointer_;  // outlives writer_, whose WAL hook it is
  std::unique_ptr<detail::Db> writer_;
  std::mutex readers_mutex_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<detail::Db>> idle_readers_;
  int open_readers_ = 0;  // idle or lent
  static constexpr std::size_t kAppendCacheMax = 4096;
  std::unordered_map<ConversationId, AppendState> appends_;
  bool appends_pending_ = false;    // some entry of appends_ has unwritten changes
  std::int64_t data_version_ = -1;  // PRAGMA data_version when appends_ was last known valid
  // The append logs (none when Options::append_log is off: log_ is nullptr), `log_` the one that
  // takes new frames, and the writer's state around them:
  std::unique_ptr<detail::AppendLog> logs_[2];
  detail::AppendLog* log_ = nullptr;
  int active_ = 0;              // log_ == logs_[active_].get()
  bool journal_only_ = true;    // the batch so far is sends only (it may go to the log)
  bool deferred_ = false;       // the open transaction holds logged batches not yet published
  bool needs_replay_ = false;   // SQLite rolled back logged batches: begin_batch replays the logs
  bool txn_open_ = false;       // the writer has a transaction open on writer_
  bool in_batch_ = false;       // between begin_batch and its commit or rollback
  bool in_job_ = false;         // between begin_job and end_job / rollback_job
  bool job_savepoint_ = false;  // ... and its SAVEPOINT is open
  detail::AppendLog::Mark job_mark_;
  std::size_t replayed_at_open_ = 0;

  // Publishing in the background. A publish (COMMIT of the transaction that holds the logged
  // batches) writes every page those batches changed to the WAL: at 16 000 sends/s, 5-25 ms during
  // which a synchronous publish stops the writer and every send behind it. begin_publish hands
  // the COMMIT to `publisher_` and switches new frames to the other log; until it is over, a send
  // is acknowledged from the log alone when everything it needs is in memory: its conversation's
  // members and last_seq in appends_, and no earlier use of its (sender, client_msg_id): not among
  // the sends SQLite cannot show yet (their keys, txn_keys_ + publishing_keys_), and not committed
  // (looked up on `probe_`, a read connection). It is kept in `held_` and inserted after the
  // publish (end_publish). Anything else (another write, a reply, a cold conversation, a possible
  // retry) waits for the publish to end, as every write did before. The two logs keep the
  // invariant: their runs together hold every acknowledged send that is not in a durable commit.
  std::unique_ptr<detail::Db> probe_;
  bool probe_open_ = false;  // probe_ has a read transaction open (until the batch ends)
  std::thread publisher_;
  std::mutex publish_mutex_;
  std::condition_variable publish_cv_;
  bool publish_requested_ = false;      // guarded by publish_mutex_
  bool publish_over_ = false;           // guarded by publish_mutex_
  bool publisher_stopping_ = false;     // guarded by publish_mutex_
  std::exception_ptr publish_error_;    // guarded by publish_mutex_
  std::function<void()> publish_done_;  // guarded by publish_mutex_
  bool publishing_ = false;             // writer thread: the publisher holds writer_
  std::vector<detail::LoggedMessage> held_;
  std::size_t held_batch_mark_ = 0;  // held_ before the current batch (acknowledged)
  std::size_t held_job_mark_ = 0;    // held_ before the current job
  bool held_cache_valid_ = false;    // appends_ kept every held send's pending writes
  // Not publishing: held_[held_next_..] are acknowledged sends whose rows are not inserted yet
  // (each begin_batch inserts drain_chunk() of them; see drain_held). Their keys are in
  // txn_keys_, their conversations' last_seq and read markers pending in appends_.
  bool draining_ = false;
  std::size_t held_next_ = 0;
  // An eighth of what is left, at least 64: ~0.5 ms per batch at 20 000 sends/s, and at 40 000
  // the few thousand held are in before the next publish.
  std::size_t drain_chunk() const noexcept { return std::max<std::size_t>(64, held_unwritten() / 8); }
  std::atomic<std::uint64_t> held_total_{0};
  std::unordered_set<std::uint64_t> txn_keys_;         // sends in the open transaction or held
  std::unordered_set<std::uint64_t> publishing_keys_;  // sends in the transaction being published
};

}  // namespace chat::store::sqlite
