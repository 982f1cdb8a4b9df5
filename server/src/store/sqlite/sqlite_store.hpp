#pragma once

#include "store/sqlite/sqlite_db.hpp"
#include "store/store.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace chat::store::sqlite {

// The embedded default: one SQLite file in WAL mode with synchronous=FULL. One read-write
// connection belongs to the writer thread; `read_connections` read-only connections are lent to
// readers one call at a time.
class SqliteStore final : public Store {
 public:
  struct Options {
    std::string path;  // the database file; its directory must exist
    int read_connections = 4;
  };

  explicit SqliteStore(Options options);
  ~SqliteStore() override;

  // The schema version this build migrates to; see kMigrations in the .cpp.
  static int schema_version();

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
  std::optional<domain::User> update_profile(UserId user, const ProfileUpdate& update) override;
  void set_last_seen(UserId user, TimeMs when) override;
  OpenDirectResult open_direct(UserId self, UserId other, TimeMs now) override;
  AppendResult append_message(const NewMessage& message, MessageId id, TimeMs now) override;
  ReadResult mark_read(UserId viewer, MessageId message, TimeMs now) override;
  ReadResult mark_read_seq(UserId viewer, ConversationId conversation, Seq seq, TimeMs now) override;

  std::optional<Credentials> find_credentials(std::string_view login_folded) override;
  std::optional<domain::AuthContext> find_access(std::string_view access_hash, TimeMs now) override;
  std::optional<domain::User> find_user(UserId user) override;
  std::vector<domain::User> search_users(std::string_view prefix_folded, int limit) override;
  std::vector<domain::Conversation> list_conversations(UserId viewer) override;
  std::optional<domain::Conversation> get_conversation(UserId viewer, ConversationId id) override;
  std::optional<HistoryPage> history(UserId viewer, ConversationId id, const HistoryQuery& query) override;
  MessageId max_message_id() override;
  bool healthy() override;

 private:
  class ReadLease;
  ReadLease lease();
  void migrate();
  std::vector<UserId> member_ids(detail::Db& db, ConversationId id);
  std::optional<domain::Conversation> load_conversation(detail::Db& db, UserId viewer, ConversationId id);

  Options options_;
  std::unique_ptr<detail::Db> writer_;
  std::mutex readers_mutex_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<detail::Db>> idle_readers_;
};

}  // namespace chat::store::sqlite
