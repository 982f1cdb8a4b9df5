// The Store contract (store/store.hpp), written once and run against every backend: SQLite (a file
// in a fresh temp dir) and PostgreSQL (a fresh database per test, from CHATD_TEST_PG_DSN). No mocks:
// the point is the SQL. Writes run inside begin_batch/begin_job ... end_job/commit_batch, as on the
// writer thread. Without CHATD_TEST_PG_DSN the PostgreSQL instances skip, except in CI (CI set),
// where they fail: `make test` starts a server with scripts/pg-test-server.sh and sets the variable.

#include "domain/limits.hpp"
#include "store/errors.hpp"
#include "store_backends.hpp"
#include "store_builders.hpp"
#include "test_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <gtest/gtest.h>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using namespace chat::store;  // NOLINT(google-build-using-namespace): the test reads like the contract
using chat::domain::ConversationId;
using chat::domain::MemberRole;
using chat::domain::MessageId;
using chat::domain::Seq;
using chat::domain::UserId;
using chat::test::cat;

constexpr TimeMs kT0 = 1'750'000'000'000;
using Ids = std::vector<UserId>;
using Seqs = std::vector<Seq>;

// Runs `fn` as one job of one batch, as StoreService's writer thread does, and commits.
template <class Fn>
auto in_job(Store& store, Fn&& fn) {
  store.begin_batch();
  store.begin_job();
  try {
    auto result = fn();
    store.end_job();
    store.commit_batch();
    return result;
  } catch (...) {
    store.rollback_job();
    store.rollback_batch();
    throw;
  }
}

Ids sorted(Ids ids) {
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<std::string> types(const std::vector<chat::domain::Message>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.type);
  return out;
}

Seqs seqs(const std::vector<chat::domain::Message>& messages) {
  Seqs out;
  for (const auto& m : messages) out.push_back(m.seq);
  return out;
}

class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      backend_ = std::make_unique<chat::test::SqliteBackend>();
    } else {
      const char* dsn = std::getenv("CHATD_TEST_PG_DSN");
      if (dsn == nullptr || *dsn == '\0') {
        if (std::getenv("CI") != nullptr)
          FAIL() << "CHATD_TEST_PG_DSN is not set (run scripts/pg-test-server.sh)";
        GTEST_SKIP() << "CHATD_TEST_PG_DSN is not set; start one with scripts/pg-test-server.sh start";
      }
      backend_ = std::make_unique<chat::test::PostgresBackend>(dsn);
    }
    open();
  }
  void TearDown() override {
    store_.reset();
    backend_.reset();
  }

  void open() { store_ = backend_->open(); }
  void close() { store_.reset(); }
  Store& store() { return *store_; }

  NextId ids() {
    return [this] { return ++next_id_; };
  }

  UserId add_user(const std::string& name, const std::string& display = {}) {
    auto r = in_job(store(), [&] {
      return store().create_user(
          chat::test::new_user(name, cat(name, "@example.com"), cat("hash-", name), display), kT0);
    });
    EXPECT_EQ(r.outcome, CreateUserOutcome::created) << name;
    return r.user.id;
  }

  // `count` users named <prefix>0, <prefix>1, ... in one batch.
  Ids add_users(const std::string& prefix, int count) {
    return in_job(store(), [&] {
      Ids out;
      for (int i = 0; i < count; ++i) {
        const auto name = cat(prefix, std::to_string(i));
        out.push_back(
            store().create_user(chat::test::new_user(name, cat(name, "@example.com"), "h", ""), kT0).user.id);
      }
      return out;
    });
  }

  ConversationId direct(UserId a, UserId b, TimeMs now = kT0) {
    return in_job(store(), [&] { return store().open_direct(a, b, now); }).conversation_id;
  }

  AppendResult append(ConversationId c,
                      UserId sender,
                      const std::string& client_id,
                      TimeMs now = kT0,
                      std::optional<MessageId> reply_to = std::nullopt) {
    ++next_id_;
    return in_job(store(), [&] {
      auto m = chat::test::new_message(c, sender, client_id, cat("body ", client_id));
      m.reply_to = reply_to;
      return store().append_message(m, next_id_, now);
    });
  }

  SessionIds add_session(UserId user,
                         const std::string& access,
                         const std::string& refresh,
                         TimeMs now = kT0) {
    return in_job(store(), [&] {
      return store().create_session(
          chat::test::new_session(user, access, now + 3'600'000, refresh, now + 86'400'000), now);
    });
  }

  RotateResult rotate(const std::string& old_refresh,
                      const std::string& access,
                      const std::string& refresh,
                      TimeMs now = kT0 + 1000) {
    return in_job(store(), [&] {
      return store().rotate_refresh(
          chat::test::rotate_request(old_refresh, access, now + 3'600'000, refresh, now + 86'400'000), now);
    });
  }

  ChangeResult group(UserId owner, const Ids& members, const std::string& name = "team", TimeMs now = kT0) {
    NewGroup g;
    g.owner = owner;
    g.name = name;
    g.members = members;
    return in_job(store(), [&] { return store().create_group(g, ids(), now); });
  }
  ChangeResult add(UserId actor, ConversationId c, const Ids& users) {
    return in_job(store(), [&] { return store().add_members(actor, c, users, ids(), kT0); });
  }
  ChangeResult remove(UserId actor, ConversationId c, UserId target, TimeMs now = kT0) {
    return in_job(store(), [&] { return store().remove_member(actor, c, target, ids(), now); });
  }
  ChangeResult set_role(UserId actor, ConversationId c, UserId target, MemberRole role) {
    return in_job(store(), [&] { return store().set_role(actor, c, target, role, ids(), kT0); });
  }
  ChangeResult edit(UserId actor, MessageId m, const std::string& body, TimeMs now = kT0 + 100) {
    return in_job(store(), [&] { return store().edit_message(actor, m, body, ids(), now); });
  }
  ChangeResult erase(UserId actor, MessageId m) {
    return in_job(store(), [&] { return store().delete_message(actor, m, ids(), kT0 + 200); });
  }
  ChangeResult react(UserId actor, MessageId m, const std::string& emoji, bool on, TimeMs now = kT0 + 300) {
    return in_job(store(), [&] { return store().react(actor, m, emoji, on, ids(), now); });
  }
  InviteResult invite(UserId actor, ConversationId c, const std::string& code, TimeMs now = kT0) {
    return in_job(store(), [&] { return store().create_invite(actor, c, code, now); });
  }
  ChangeResult join(UserId user, ConversationId c, const std::string& code) {
    return in_job(store(), [&] { return store().join_by_invite(user, c, code, ids(), kT0 + 50); });
  }
  MemberRole role_of(UserId viewer, ConversationId c, UserId user) {
    const auto conv = store().get_conversation(viewer, c);
    EXPECT_TRUE(conv);
    for (const auto& m : conv->members) {
      if (m.user_id == user) return m.role;
    }
    ADD_FAILURE() << "no member " << user;
    return MemberRole::member;
  }

  std::unique_ptr<chat::test::StoreBackend> backend_;
  std::unique_ptr<Store> store_;
  MessageId next_id_ = 1000;
};

// ---------------------------------------------------------------------------------------------
// Schema

TEST_P(StoreConformance, MigrationsCreateSchemaAndReopenIsIdempotent) {
  // Goal: a new store is migrated, and opening it again neither fails nor re-runs migrations (the
  // data stays). Method: write, reopen twice, read back.
  EXPECT_GE(backend_->schema_version(), 1);
  add_user("alice");
  close();
  open();
  close();
  open();
  EXPECT_TRUE(store().healthy());
  EXPECT_TRUE(store().find_credentials("alice"));
  EXPECT_GT(add_user("bob"), 0);
}

TEST_P(StoreConformance, FutureSchemaVersionIsRefused) {
  // Goal: a database written by a newer chatd is not touched. Method: set the version to N + 1 and
  // reopen: StoreCorrupt; at N (the current version) it opens.
  close();
  backend_->set_schema_version(backend_->schema_version() + 1);
  EXPECT_THROW(open(), StoreCorrupt);
  backend_->set_schema_version(backend_->schema_version());
  EXPECT_NO_THROW(open());
  EXPECT_TRUE(store().healthy());
}

// ---------------------------------------------------------------------------------------------
// Users and credentials

TEST_P(StoreConformance, UsernameAndEmailAreUniqueCaseInsensitively) {
  // Goal: create_user reports username_taken / email_taken for case variants. Method: register
  // Alice, then try the same name and the same email in other cases.
  auto first = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("Alice", "Alice@Example.com", "h", ""), kT0);
  });
  ASSERT_EQ(first.outcome, CreateUserOutcome::created);
  EXPECT_GT(first.user.id, 0);
  EXPECT_EQ(first.user.username, "Alice");
  EXPECT_EQ(first.user.email, "Alice@Example.com");
  EXPECT_EQ(first.user.display_name, "Alice");  // defaults to the username
  EXPECT_EQ(first.user.created_at, kT0);
  EXPECT_FALSE(first.user.last_seen);

  auto same_name = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("aLICE", "other@example.com", "h", ""), kT0);
  });
  EXPECT_EQ(same_name.outcome, CreateUserOutcome::username_taken);
  auto same_email = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("bob", "ALICE@example.COM", "h", ""), kT0);
  });
  EXPECT_EQ(same_email.outcome, CreateUserOutcome::email_taken);
  auto other = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("bob", "bob@example.com", "h", "Bobby"), kT0);
  });
  EXPECT_EQ(other.outcome, CreateUserOutcome::created);
  EXPECT_EQ(other.user.display_name, "Bobby");
  EXPECT_NE(other.user.id, first.user.id);
}

TEST_P(StoreConformance, FindCredentialsByFoldedUsernameOrEmail) {
  // Goal: login works by username or email, both folded. Method: create a mixed-case user and look
  // it up by the folded forms; an unknown login is nullopt.
  auto created = in_job(store(), [&] {
    return store().create_user(chat::test::new_user("Carol", "Carol@Example.com", "argon-hash", ""), kT0);
  });
  const auto by_name = store().find_credentials("carol");
  ASSERT_TRUE(by_name);
  EXPECT_EQ(by_name->user_id, created.user.id);
  EXPECT_EQ(by_name->password_hash, "argon-hash");
  const auto by_email = store().find_credentials("carol@example.com");
  ASSERT_TRUE(by_email);
  EXPECT_EQ(by_email->user_id, created.user.id);
  EXPECT_FALSE(store().find_credentials("dave"));
  EXPECT_FALSE(store().find_credentials(""));
  const auto user = store().find_user(created.user.id);
  ASSERT_TRUE(user);
  EXPECT_EQ(user->username, "Carol");
  EXPECT_FALSE(store().find_user(created.user.id + 100));
}

TEST_P(StoreConformance, SearchUsersByPrefixOfUsernameOrDisplayName) {
  // Goal: search is a case-insensitive prefix match on username and display name, ordered by
  // username, limited; LIKE's metacharacters are plain characters. Method: six users, several
  // folded prefixes.
  const auto alice = add_user("alice", "Wonder Alice");
  const auto alina = add_user("Alina");
  const auto bob = add_user("bob", "Alpha Bob");
  add_user("carl", "Carl");
  const auto under = add_user("al_x");
  const auto percent = add_user("pc%1");
  const auto ids = [](const std::vector<chat::domain::User>& users) {
    Ids out;
    for (const auto& u : users) out.push_back(u.id);
    return out;
  };
  // Ordered by folded username: al_x < alice < alina < bob.
  EXPECT_EQ(ids(store().search_users("al", 20)), (Ids{under, alice, alina, bob}));
  EXPECT_EQ(ids(store().search_users("ali", 20)), (Ids{alice, alina}));
  EXPECT_EQ(ids(store().search_users("wonder", 20)), (Ids{alice}));
  EXPECT_EQ(ids(store().search_users("alpha b", 20)), (Ids{bob}));
  EXPECT_EQ(ids(store().search_users("al_", 20)), (Ids{under}));
  EXPECT_EQ(ids(store().search_users("pc%", 20)), (Ids{percent}));
  EXPECT_TRUE(store().search_users("a%", 20).empty());
  EXPECT_TRUE(store().search_users("zed", 20).empty());
  EXPECT_EQ(store().search_users("al", 2).size(), 2U);
  EXPECT_EQ(store().search_users("al", 1).size(), 1U);
}

TEST_P(StoreConformance, ProfileUpdateAndLastSeen) {
  // Goal: update_profile changes only the given fields; set_last_seen is visible; an unknown user is
  // nullopt. Method: update the display name, then the bio, then read the user back.
  const auto a = add_user("alice");
  auto updated = in_job(store(), [&] {
    return store().update_profile(
        a, chat::test::profile_update(std::string("Queen A"), std::nullopt, std::nullopt));
  });
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->display_name, "Queen A");
  updated = in_job(store(), [&] {
    return store().update_profile(
        a, chat::test::profile_update(std::nullopt, std::string("pic.png"), std::string("hi")));
  });
  EXPECT_EQ(updated->display_name, "Queen A");
  EXPECT_EQ(updated->profile_picture, "pic.png");
  EXPECT_EQ(updated->bio, "hi");
  in_job(store(), [&] {
    store().set_last_seen(a, kT0 + 42);
    return 0;
  });
  EXPECT_EQ(store().find_user(a)->last_seen, kT0 + 42);
  EXPECT_EQ(store().search_users("queen", 20).size(), 1U);
  EXPECT_FALSE(in_job(store(), [&] { return store().update_profile(a + 100, ProfileUpdate{}); }));
}

// ---------------------------------------------------------------------------------------------
// Sessions and devices

TEST_P(StoreConformance, FindAccessHonoursExpiryAndRevocation) {
  // Goal: an access hash maps to its session until it expires or the session is revoked. Method:
  // look up at, just before and at the expiry time; then revoke twice.
  const auto user = add_user("alice");
  const auto s = add_session(user, "access-1", "refresh-1");
  EXPECT_GT(s.session_id, 0);
  EXPECT_GT(s.device_id, 0);
  const auto auth = store().find_access("access-1", kT0);
  ASSERT_TRUE(auth);
  EXPECT_EQ(auth->user_id, user);
  EXPECT_EQ(auth->session_id, s.session_id);
  EXPECT_EQ(auth->device_id, s.device_id);
  EXPECT_EQ(auth->access_expires_at, kT0 + 3'600'000) << "the expiry travels with the context (token cache)";
  EXPECT_TRUE(store().find_access("access-1", kT0 + 3'600'000 - 1));
  EXPECT_FALSE(store().find_access("access-1", kT0 + 3'600'000));  // expired
  EXPECT_FALSE(store().find_access("refresh-1", kT0));             // a refresh token is not an access one
  EXPECT_FALSE(store().find_access("unknown", kT0));

  EXPECT_TRUE(in_job(store(), [&] { return store().revoke_session(s.session_id, kT0); }));
  EXPECT_FALSE(store().find_access("access-1", kT0));
  EXPECT_FALSE(in_job(store(), [&] { return store().revoke_session(s.session_id, kT0); }));
  EXPECT_FALSE(in_job(store(), [&] { return store().revoke_session(s.session_id + 99, kT0); }));
}

TEST_P(StoreConformance, TokenHashesAreBinary) {
  // Goal: token hashes are raw bytes (SHA-256), NULs and high bytes included. Method: a session
  // whose hashes are 32 arbitrary bytes; look up by the exact bytes and by a one-byte change.
  const auto user = add_user("alice");
  std::string access(32, '\0');
  std::string refresh(32, '\xff');
  for (int i = 0; i < 32; ++i) access[static_cast<std::size_t>(i)] = static_cast<char>(i * 8);
  add_session(user, access, refresh);
  EXPECT_TRUE(store().find_access(access, kT0));
  auto other = access;
  other[31] = 'x';
  EXPECT_FALSE(store().find_access(other, kT0));
  EXPECT_EQ(rotate(refresh, std::string(32, '\x01'), std::string(32, '\x02')).outcome,
            RotateOutcome::rotated);
  EXPECT_TRUE(store().find_access(std::string(32, '\x01'), kT0 + 2000));
}

TEST_P(StoreConformance, RotateRefreshIssuesNewTokensAndDetectsReuse) {
  // Goal: rotation replaces both tokens; presenting the old refresh token again revokes the session.
  // Method: rotate r1 -> r2, check the tokens, replay r1, then try r2.
  const auto user = add_user("alice");
  const auto s = add_session(user, "a1", "r1");
  const auto rotated = rotate("r1", "a2", "r2");
  ASSERT_EQ(rotated.outcome, RotateOutcome::rotated);
  EXPECT_EQ(rotated.auth.user_id, user);
  EXPECT_EQ(rotated.auth.session_id, s.session_id);
  EXPECT_EQ(rotated.auth.device_id, s.device_id);
  EXPECT_FALSE(store().find_access("a1", kT0 + 2000));
  EXPECT_TRUE(store().find_access("a2", kT0 + 2000));

  const auto replay = rotate("r1", "a3", "r3");
  EXPECT_EQ(replay.outcome, RotateOutcome::reused);
  EXPECT_EQ(replay.auth.session_id, s.session_id);
  EXPECT_EQ(replay.auth.user_id, user);
  EXPECT_FALSE(store().find_access("a2", kT0 + 2000));
  EXPECT_EQ(rotate("r2", "a4", "r4").outcome, RotateOutcome::not_found);
}

TEST_P(StoreConformance, RotateRefreshUnknownOrExpired) {
  // Goal: an unknown refresh token and an expired one are not_found. Method: rotate a random token,
  // and a real one at and just before its expiry (kT0 + 1 day).
  const auto user = add_user("alice");
  add_session(user, "a1", "r1");
  EXPECT_EQ(rotate("nope", "x", "y").outcome, RotateOutcome::not_found);
  EXPECT_EQ(rotate("r1", "a2", "r2", kT0 + 86'400'000).outcome, RotateOutcome::not_found);
  EXPECT_EQ(rotate("r1", "a2", "r2", kT0 + 86'400'000 - 1).outcome, RotateOutcome::rotated);
}

TEST_P(StoreConformance, RotateRefreshDetectsReuseOfAnyEarlierToken) {
  // Goal: presenting ANY already-rotated refresh token revokes the session. Method: rotate
  // r1 -> r2 -> r3, then replay r1 (two rotations old).
  const auto user = add_user("alice");
  add_session(user, "a1", "r1");
  ASSERT_EQ(rotate("r1", "a2", "r2").outcome, RotateOutcome::rotated);
  ASSERT_EQ(rotate("r2", "a3", "r3").outcome, RotateOutcome::rotated);
  EXPECT_EQ(rotate("r1", "a4", "r4").outcome, RotateOutcome::reused);
  EXPECT_FALSE(store().find_access("a3", kT0 + 2000));
}

TEST_P(StoreConformance, ListDevicesAndRevokeDevice) {
  // Goal: list_devices shows live sessions (not revoked, refresh not expired), most recently active
  // first; revoke_device revokes one device of its owner only and returns the sessions it ended.
  // Method: three sessions of alice at different times, one of bob; rotate one; revoke devices.
  const auto alice = add_user("alice");
  const auto bob = add_user("bob");
  const auto d1 = add_session(alice, "a1", "r1", kT0);
  const auto d2 = add_session(alice, "a2", "r2", kT0 + 10);
  const auto d3 = add_session(alice, "a3", "r3", kT0 + 20);
  const auto b1 = add_session(bob, "b1", "rb1", kT0);
  auto list = store().list_devices(alice, kT0 + 100);
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].device_id, d3.device_id);
  EXPECT_EQ(list[0].session_id, d3.session_id);
  EXPECT_EQ(list[0].type, chat::domain::DeviceType::web);
  EXPECT_EQ(list[0].name, "laptop");
  EXPECT_EQ(list[0].created_at, kT0 + 20);
  EXPECT_EQ(list[1].device_id, d2.device_id);
  EXPECT_EQ(list[2].device_id, d1.device_id);

  // Rotating touches the device: d1 moves to the top.
  ASSERT_EQ(rotate("r1", "a1b", "r1b", kT0 + 500).outcome, RotateOutcome::rotated);
  list = store().list_devices(alice, kT0 + 600);
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].device_id, d1.device_id);
  EXPECT_EQ(list[0].last_active, kT0 + 500);

  // Bob cannot revoke alice's device; alice can, once.
  EXPECT_TRUE(in_job(store(), [&] { return store().revoke_device(bob, d2.device_id, kT0); }).empty());
  EXPECT_EQ(in_job(store(), [&] { return store().revoke_device(alice, d2.device_id, kT0); }),
            (std::vector<SessionId>{d2.session_id}));
  EXPECT_TRUE(in_job(store(), [&] { return store().revoke_device(alice, d2.device_id, kT0); }).empty());
  EXPECT_FALSE(store().find_access("a2", kT0));
  list = store().list_devices(alice, kT0 + 600);
  ASSERT_EQ(list.size(), 2U);
  // Past d3's refresh expiry (kT0 + 20 + 1 day) only the rotated d1 is left.
  list = store().list_devices(alice, kT0 + 20 + 86'400'000);
  ASSERT_EQ(list.size(), 1U);
  EXPECT_EQ(list[0].device_id, d1.device_id);
  EXPECT_EQ(store().list_devices(bob, kT0).size(), 1U);
  EXPECT_EQ(store().list_devices(bob, kT0)[0].session_id, b1.session_id);
}

// ---------------------------------------------------------------------------------------------
// Direct conversations and messages

TEST_P(StoreConformance, OpenDirectIsOnePerPair) {
  // Goal: one direct conversation per unordered pair; unknown users are refused; a self conversation
  // has one member. Method: open (a,b), (a,b), (b,a), (a,unknown), (a,a).
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto created = in_job(store(), [&] { return store().open_direct(a, b, kT0); });
  ASSERT_EQ(created.outcome, OpenDirectOutcome::created);
  const auto again = in_job(store(), [&] { return store().open_direct(a, b, kT0 + 1); });
  EXPECT_EQ(again.outcome, OpenDirectOutcome::existing);
  EXPECT_EQ(again.conversation_id, created.conversation_id);
  const auto reverse = in_job(store(), [&] { return store().open_direct(b, a, kT0 + 2); });
  EXPECT_EQ(reverse.outcome, OpenDirectOutcome::existing);
  EXPECT_EQ(reverse.conversation_id, created.conversation_id);
  const auto unknown = in_job(store(), [&] { return store().open_direct(a, b + 1000, kT0); });
  EXPECT_EQ(unknown.outcome, OpenDirectOutcome::user_not_found);

  const auto conv = store().get_conversation(a, created.conversation_id);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->type, chat::domain::ConversationType::direct);
  EXPECT_EQ(conv->members.size(), 2U);
  EXPECT_EQ(conv->last_seq, 0);
  EXPECT_FALSE(conv->last_message);
  EXPECT_EQ(conv->created_at, kT0);

  const auto self = in_job(store(), [&] { return store().open_direct(a, a, kT0); });
  ASSERT_EQ(self.outcome, OpenDirectOutcome::created);
  EXPECT_NE(self.conversation_id, created.conversation_id);
  const auto notes = store().get_conversation(a, self.conversation_id);
  ASSERT_TRUE(notes);
  ASSERT_EQ(notes->members.size(), 1U);
  EXPECT_EQ(notes->members[0].user_id, a);
  EXPECT_EQ(notes->members[0].username, "alice");
  EXPECT_EQ(in_job(store(), [&] { return store().open_direct(a, a, kT0); }).outcome,
            OpenDirectOutcome::existing);
}

TEST_P(StoreConformance, NonMembersCannotTellAConversationExists) {
  // Goal: every viewer-taking read answers a non-member as it answers an unknown id. Method: read
  // alice/bob's conversation as carl, and an unknown id as alice.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto conv = direct(a, b);
  EXPECT_TRUE(store().get_conversation(b, conv));
  EXPECT_FALSE(store().get_conversation(c, conv));
  EXPECT_FALSE(store().get_conversation(a, conv + 1000));
  EXPECT_FALSE(store().history(c, conv, HistoryQuery{}));
  EXPECT_FALSE(store().receipts(c, conv));
  EXPECT_FALSE(store().members_if_member(c, conv));
  EXPECT_FALSE(store().members_if_member(a, conv + 1000));
  EXPECT_EQ(sorted(*store().members_if_member(a, conv)), (Ids{a, b}));
  EXPECT_EQ(store().list_invites(c, conv).outcome, InviteOutcome::not_found);
}

TEST_P(StoreConformance, AppendAssignsGaplessSeqAndReturnsMembers) {
  // Goal: seq is 1, 2, 3 with no gaps per conversation, independent across conversations, and the
  // result names the members to fan out to. Method: three appends in one conversation, one in another.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  const auto ac = direct(a, c);
  for (int i = 1; i <= 3; ++i) {
    const auto r = append(ab, i % 2 == 0 ? b : a, cat("m", std::to_string(i)), kT0 + i);
    ASSERT_EQ(r.outcome, AppendOutcome::appended);
    EXPECT_EQ(r.message.seq, i);
    EXPECT_EQ(r.message.id, next_id_);
    EXPECT_EQ(r.message.conversation_id, ab);
    EXPECT_EQ(r.message.created_at, kT0 + i);
    EXPECT_EQ(r.message.body, cat("body m", std::to_string(i)));
    EXPECT_EQ(r.message.type, "text");
    EXPECT_EQ(sorted(r.members), (Ids{a, b}));
  }
  const auto other = append(ac, c, "x1");
  ASSERT_EQ(other.outcome, AppendOutcome::appended);
  EXPECT_EQ(other.message.seq, 1);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 3);
  EXPECT_EQ(store().max_message_id(), next_id_);
}

TEST_P(StoreConformance, DuplicateClientMsgIdReturnsTheOriginal) {
  // Goal: a retry with the same (sender, client_msg_id) stores nothing and returns the first message;
  // the same id in another conversation is a conflict; another sender may reuse the id. Method:
  // append, retry, compare, then count messages in history.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  const auto ac = direct(a, c);
  const auto first = append(ab, a, "c1");
  ASSERT_EQ(first.outcome, AppendOutcome::appended);
  const auto retry = append(ab, a, "c1", kT0 + 5000);
  EXPECT_EQ(retry.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(retry.message.id, first.message.id);
  EXPECT_EQ(retry.message.seq, first.message.seq);
  EXPECT_EQ(retry.message.created_at, first.message.created_at);
  EXPECT_EQ(retry.message.body, first.message.body);
  EXPECT_EQ(retry.message.client_msg_id, "c1");
  const auto page = store().history(a, ab, HistoryQuery{});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->messages.size(), 1U);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 1);

  EXPECT_EQ(append(ac, a, "c1").outcome, AppendOutcome::conflict);
  EXPECT_EQ(store().get_conversation(a, ac)->last_seq, 0);
  const auto bobs = append(ab, b, "c1");
  EXPECT_EQ(bobs.outcome, AppendOutcome::appended);
  EXPECT_EQ(bobs.message.seq, 2);
}

TEST_P(StoreConformance, RetryOfAStoredMessageIsAnsweredFirst) {
  // Goal: a retry of a stored (sender, client_msg_id) gets the original (or conflict) even when the
  // append would now be refused otherwise: the sender left, the conversation is unknown, the
  // reply_to is bad. Method: bob appends to a group, is removed, then retries in several ways.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto g = group(a, {b}).conversation_id;
  const auto other = group(a, {}).conversation_id;
  const auto first = append(g, b, "c1");
  ASSERT_EQ(first.outcome, AppendOutcome::appended);
  ASSERT_EQ(remove(a, g, b).outcome, ChangeOutcome::ok);
  const auto retry = append(g, b, "c1", kT0 + 10);
  EXPECT_EQ(retry.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(retry.message.id, first.message.id);
  EXPECT_EQ(append(g, b, "c1", kT0 + 10, MessageId{999'999}).outcome, AppendOutcome::duplicate);
  EXPECT_EQ(append(other, b, "c1").outcome, AppendOutcome::conflict);
  EXPECT_EQ(append(other + 1000, b, "c1").outcome, AppendOutcome::conflict);
  EXPECT_EQ(append(g, b, "c2").outcome, AppendOutcome::not_found);
  EXPECT_EQ(append(g, a, "c3", kT0, MessageId{999'999}).outcome, AppendOutcome::bad_reply);
  EXPECT_EQ(store().get_conversation(a, g)->last_seq, 3);  // created, bob's message, bob removed
}

TEST_P(StoreConformance, AppendByNonMemberIsNotFound) {
  // Goal: a non-member and an unknown conversation get the same not_found. Method: carl appends to
  // alice/bob, alice appends to a missing id; nothing is stored.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  EXPECT_EQ(append(ab, c, "x").outcome, AppendOutcome::not_found);
  EXPECT_EQ(append(ab + 1000, a, "y").outcome, AppendOutcome::not_found);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 0);
  EXPECT_EQ(store().max_message_id(), 0);
}

TEST_P(StoreConformance, RepliesMustNameAVisibleTextMessageOfTheConversation) {
  // Goal: reply_to must be a text message of the same conversation that the sender can see.
  // Method: reply to a message, an unknown id, a message of another conversation, an event, and
  // (as a member added later) a message from before the join.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  const auto ac = direct(a, c);
  const auto m1 = append(ab, a, "m1").message.id;
  const auto elsewhere = append(ac, a, "x1").message.id;
  const auto reply = append(ab, b, "r1", kT0, m1);
  ASSERT_EQ(reply.outcome, AppendOutcome::appended);
  EXPECT_EQ(reply.message.ref_id, m1);
  EXPECT_EQ(store().history(a, ab, HistoryQuery{})->messages.back().ref_id, m1);
  EXPECT_EQ(append(ab, b, "r2", kT0, 999'999).outcome, AppendOutcome::bad_reply);
  EXPECT_EQ(append(ab, b, "r3", kT0, elsewhere).outcome, AppendOutcome::bad_reply);

  const auto g = group(a, {b}).conversation_id;
  const auto before = append(g, a, "g1").message.id;
  const auto created_event = store().history(a, g, HistoryQuery{})->messages.front();
  ASSERT_EQ(created_event.type, "created");
  EXPECT_EQ(append(g, a, "g2", kT0, created_event.id).outcome, AppendOutcome::bad_reply);
  ASSERT_EQ(add(a, g, {c}).outcome, ChangeOutcome::ok);
  EXPECT_EQ(append(g, c, "g3", kT0, before).outcome, AppendOutcome::bad_reply);
  EXPECT_EQ(append(g, b, "g4", kT0, before).outcome, AppendOutcome::appended);
}

TEST_P(StoreConformance, HistoryPagesAreAscendingWithHasMore) {
  // Goal: the latest page, before=S and after=S return ascending pages of at most `limit`, with
  // has_more telling if there is more in that direction. Method: 10 messages, several cursors.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  for (int i = 1; i <= 10; ++i) append(ab, a, cat("m", std::to_string(i)));
  const auto q = [&](std::optional<Seq> before, std::optional<Seq> after, int limit) {
    return *store().history(b, ab, chat::test::history_query(before, after, limit));
  };
  auto latest = q(std::nullopt, std::nullopt, 3);
  EXPECT_EQ(seqs(latest.messages), (Seqs{8, 9, 10}));
  EXPECT_TRUE(latest.has_more);
  auto all = q(std::nullopt, std::nullopt, 10);
  EXPECT_EQ(seqs(all.messages), (Seqs{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_FALSE(all.has_more);  // limit N = count: nothing more
  auto more = q(std::nullopt, std::nullopt, 9);
  EXPECT_EQ(more.messages.size(), 9U);
  EXPECT_TRUE(more.has_more);  // limit N - 1: one more

  auto before = q(8, std::nullopt, 3);
  EXPECT_EQ(seqs(before.messages), (Seqs{5, 6, 7}));
  EXPECT_TRUE(before.has_more);
  auto first_page = q(4, std::nullopt, 3);
  EXPECT_EQ(seqs(first_page.messages), (Seqs{1, 2, 3}));
  EXPECT_FALSE(first_page.has_more);
  auto before_one = q(1, std::nullopt, 3);
  EXPECT_TRUE(before_one.messages.empty());
  EXPECT_FALSE(before_one.has_more);

  auto after = q(std::nullopt, 2, 3);
  EXPECT_EQ(seqs(after.messages), (Seqs{3, 4, 5}));
  EXPECT_TRUE(after.has_more);
  auto tail = q(std::nullopt, 7, 3);
  EXPECT_EQ(seqs(tail.messages), (Seqs{8, 9, 10}));
  EXPECT_FALSE(tail.has_more);
  auto past_end = q(std::nullopt, 10, 3);
  EXPECT_TRUE(past_end.messages.empty());
  EXPECT_FALSE(past_end.has_more);

  const auto& m = all.messages.front();
  EXPECT_EQ(m.conversation_id, ab);
  EXPECT_EQ(m.sender_id, a);
  EXPECT_EQ(m.client_msg_id, "m1");
  EXPECT_EQ(m.body, "body m1");
  EXPECT_EQ(m.created_at, kT0);
  EXPECT_FALSE(m.ref_id);
  EXPECT_FALSE(m.edited_at);
  EXPECT_FALSE(m.deleted);
  EXPECT_EQ(m.data, "");
}

TEST_P(StoreConformance, TextIsStoredByteForByte) {
  // Goal: bodies come back exactly as sent: multi-byte UTF-8, quotes, backslashes, SQL-looking text.
  // Method: append such a body and read it from history.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  const std::string body =
      "h\xC3\xA9llo \xF0\x9F\x98\x80 'quoted' \"dq\" \\ %_ $1 ?1 ); DROP TABLE users; --";
  ++next_id_;
  ASSERT_EQ(in_job(store(),
                   [&] {
                     return store().append_message(chat::test::new_message(ab, a, "u1", body), next_id_, kT0);
                   })
                .outcome,
            AppendOutcome::appended);
  EXPECT_EQ(store().history(b, ab, HistoryQuery{})->messages.front().body, body);
}

TEST_P(StoreConformance, MarkReadMovesUpOnlyAndIsCapped) {
  // Goal: the read watermark only moves up, never beyond last_seq; a non-member gets not_found; no
  // change is `unchanged`. Method: mark_read_seq and mark_read with various seqs.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  std::vector<MessageId> msgs;
  for (int i = 1; i <= 5; ++i) msgs.push_back(append(ab, a, cat("m", std::to_string(i))).message.id);

  auto r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 3, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.read_seq, 3);
  EXPECT_EQ(r.delivered_seq, 3);  // read implies delivered
  EXPECT_EQ(r.conversation_id, ab);
  EXPECT_EQ(sorted(r.members), (Ids{a, b}));

  r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 2, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::unchanged);
  EXPECT_EQ(r.read_seq, 3);
  r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 3, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::unchanged);

  r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 1000, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.read_seq, 5);  // capped at last_seq
  EXPECT_EQ(store().get_conversation(b, ab)->read_seq, 5);

  EXPECT_EQ(in_job(store(), [&] { return store().mark_read_seq(c, ab, 1, kT0); }).outcome,
            ReadOutcome::not_found);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read_seq(b, ab + 1000, 1, kT0); }).outcome,
            ReadOutcome::not_found);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(c, msgs[0], kT0); }).outcome,
            ReadOutcome::not_found);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(b, 999'999, kT0); }).outcome,
            ReadOutcome::not_found);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(a, msgs[4], kT0); }).outcome,
            ReadOutcome::unchanged);
}

TEST_P(StoreConformance, MarkReadByMessageId) {
  // Goal: mark_read uses the seq of the given message. Method: 4 messages, mark the 2nd then the 4th.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  std::vector<MessageId> msgs;
  for (int i = 1; i <= 4; ++i) msgs.push_back(append(ab, a, cat("m", std::to_string(i))).message.id);
  auto r = in_job(store(), [&] { return store().mark_read(b, msgs[1], kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.read_seq, 2);
  EXPECT_EQ(r.conversation_id, ab);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(b, msgs[0], kT0); }).outcome,
            ReadOutcome::unchanged);
  EXPECT_EQ(in_job(store(), [&] { return store().mark_read(b, msgs[3], kT0); }).read_seq, 4);
  EXPECT_EQ(store().get_conversation(b, ab)->unread_count, 0);
}

TEST_P(StoreConformance, DeliveredWatermarkMovesUpOnlyAndReceiptsShowBoth) {
  // Goal: the delivered watermark moves up only, capped at last_seq, independent of read (but read
  // raises it); receipts list every member's watermarks by user id. Method: 4 messages, several marks.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  for (int i = 1; i <= 4; ++i) append(ab, a, cat("m", std::to_string(i)));
  auto r = in_job(store(), [&] { return store().mark_delivered_seq(b, ab, 2, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.delivered_seq, 2);
  EXPECT_EQ(r.read_seq, 0);
  EXPECT_EQ(sorted(r.members), (Ids{a, b}));
  EXPECT_EQ(in_job(store(), [&] { return store().mark_delivered_seq(b, ab, 1, kT0); }).outcome,
            ReadOutcome::unchanged);
  r = in_job(store(), [&] { return store().mark_delivered_seq(b, ab, 99, kT0); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.delivered_seq, 4);
  // Reading below the delivered mark leaves it; the read mark moves.
  r = in_job(store(), [&] { return store().mark_read_seq(b, ab, 3, kT0); });
  EXPECT_EQ(r.read_seq, 3);
  EXPECT_EQ(r.delivered_seq, 4);

  const auto receipts = store().receipts(a, ab);
  ASSERT_TRUE(receipts);
  ASSERT_EQ(receipts->size(), 2U);
  const auto& first = a < b ? (*receipts)[0] : (*receipts)[1];
  const auto& second = a < b ? (*receipts)[1] : (*receipts)[0];
  EXPECT_EQ(first.user_id, a);
  EXPECT_EQ(first.read_seq, 4);  // the sender has read up to their own last message
  EXPECT_EQ(second.user_id, b);
  EXPECT_EQ(second.delivered_seq, 4);
  EXPECT_EQ(second.read_seq, 3);
  const auto conv = store().get_conversation(b, ab);
  EXPECT_EQ(conv->delivered_seq, 4);
  EXPECT_EQ(conv->read_seq, 3);
  EXPECT_EQ(conv->unread_count, 1);
}

TEST_P(StoreConformance, ListConversationsByActivityWithUnreadAndLastMessage) {
  // Goal: the list is ordered by last activity, unread_count counts others' messages above the
  // read watermark, last_message is the newest. Method: three conversations with messages at
  // controlled times.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b, kT0);
  const auto ac = direct(a, c, kT0 + 1);
  const auto self = direct(a, a, kT0 + 2);
  auto list = store().list_conversations(a);
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].id, self);
  EXPECT_EQ(list[1].id, ac);
  EXPECT_EQ(list[2].id, ab);

  append(ab, b, "b1", kT0 + 10);
  append(ab, b, "b2", kT0 + 11);
  append(ab, a, "a1", kT0 + 12);
  append(ab, b, "b3", kT0 + 13);
  append(ac, c, "c1", kT0 + 20);
  list = store().list_conversations(a);
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].id, ac);
  EXPECT_EQ(list[1].id, ab);
  EXPECT_EQ(list[2].id, self);
  EXPECT_EQ(list[0].unread_count, 1);
  EXPECT_EQ(list[1].unread_count, 1);
  EXPECT_EQ(list[1].read_seq, 3);
  ASSERT_TRUE(list[1].last_message);
  EXPECT_EQ(list[1].last_message->client_msg_id, "b3");
  EXPECT_EQ(list[1].last_seq, 4);
  EXPECT_FALSE(list[2].last_message);

  const auto bobs = store().list_conversations(b);
  ASSERT_EQ(bobs.size(), 1U);
  EXPECT_EQ(bobs[0].unread_count, 0);
  EXPECT_EQ(store().list_conversations(c).size(), 1U);

  append(ab, b, "b4", kT0 + 30);
  list = store().list_conversations(a);
  EXPECT_EQ(list[0].id, ab);
  EXPECT_EQ(list[0].unread_count, 2);
}

// ---------------------------------------------------------------------------------------------
// Groups

TEST_P(StoreConformance, CreateGroupMakesOwnerAndMembersWithACreatedEvent) {
  // Goal: create_group stores the owner (role owner) and the members (deduplicated), logs one
  // `created` event at seq 1 naming everyone, and fans out to all; unknown users fail the whole
  // group. Method: create with a duplicate and the owner listed again; then with an unknown user.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto r = group(a, {b, c, b, a}, "Team");
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_GT(r.conversation_id, 0);
  ASSERT_EQ(r.events.size(), 1U);
  const auto& e = r.events[0];
  EXPECT_EQ(e.type, "created");
  EXPECT_EQ(e.seq, 1);
  EXPECT_EQ(e.sender_id, a);
  EXPECT_EQ(e.body, "Team");
  EXPECT_EQ(e.id, next_id_);
  EXPECT_EQ(e.data, cat(R"({"user_ids":[")", std::to_string(a), R"(",")", std::to_string(b), R"(",")",
                        std::to_string(c), R"("]})"));
  EXPECT_EQ(sorted(r.recipients), sorted({a, b, c}));

  const auto conv = store().get_conversation(c, r.conversation_id);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->type, chat::domain::ConversationType::group);
  EXPECT_EQ(conv->name, "Team");
  EXPECT_EQ(conv->last_seq, 1);
  EXPECT_EQ(conv->members.size(), 3U);
  EXPECT_EQ(role_of(c, r.conversation_id, a), MemberRole::owner);
  EXPECT_EQ(role_of(c, r.conversation_id, b), MemberRole::member);
  ASSERT_TRUE(conv->last_message);
  EXPECT_EQ(conv->last_message->type, "created");
  const auto history = store().history(b, r.conversation_id, HistoryQuery{});
  ASSERT_EQ(history->messages.size(), 1U);
  EXPECT_EQ(history->messages[0].data, e.data);

  EXPECT_EQ(group(a, {b, c + 1000}).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(store().list_conversations(a).size(), 1U);
}

TEST_P(StoreConformance, GroupMemberLimitAtCreateAndAdd) {
  // Goal: a group holds at most group_members_max members, owner included, when created, added to
  // or joined. Method: create at N + 1 (refused) and N (accepted), then add one more (refused);
  // a group at N - 1 takes one more.
  const auto max = static_cast<int>(chat::domain::limits::group_members_max);
  const auto owner = add_user("owner");
  const auto others = add_users("u", max);  // max others + owner = max + 1
  EXPECT_EQ(group(owner, others).outcome, ChangeOutcome::group_full);
  const Ids fill(others.begin(), others.end() - 1);
  const auto full = group(owner, fill);
  ASSERT_EQ(full.outcome, ChangeOutcome::ok);
  EXPECT_EQ(store().get_conversation(owner, full.conversation_id)->members.size(),
            static_cast<std::size_t>(max));
  EXPECT_EQ(add(owner, full.conversation_id, {others.back()}).outcome, ChangeOutcome::group_full);
  // Adding someone already in is no change, even when full.
  EXPECT_EQ(add(owner, full.conversation_id, {fill.front()}).outcome, ChangeOutcome::ok);
  ASSERT_EQ(invite(owner, full.conversation_id, "full-code").outcome, InviteOutcome::ok);
  EXPECT_EQ(join(others.back(), full.conversation_id, "full-code").outcome, ChangeOutcome::group_full);

  const Ids most(others.begin(), others.end() - 2);  // max - 1 with the owner
  const auto almost = group(owner, most);
  ASSERT_EQ(almost.outcome, ChangeOutcome::ok);
  const auto added = add(owner, almost.conversation_id, {others.back()});
  EXPECT_EQ(added.outcome, ChangeOutcome::ok);
  EXPECT_EQ(added.recipients.size(), static_cast<std::size_t>(max));
}

TEST_P(StoreConformance, AddMembersNeedsAnAdminOfAGroup) {
  // Goal: only owners/admins of a group add members; members get forbidden, non-members not_found,
  // direct conversations forbidden; already-members are skipped; a new member sees the log from the
  // event that added them. Method: a group of alice (owner) and bob; try each actor.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto d = add_user("dora");
  const auto g = group(a, {b}).conversation_id;
  append(g, a, "before");
  EXPECT_EQ(add(b, g, {c}).outcome, ChangeOutcome::forbidden);
  EXPECT_EQ(add(c, g, {d}).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(add(a, g + 1000, {c}).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(add(a, g, {c, d + 1000}).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(add(a, direct(a, b), {c}).outcome, ChangeOutcome::forbidden);

  const auto r = add(a, g, {b, c, c});
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_EQ(r.conversation_id, g);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "member_added");
  EXPECT_EQ(r.events[0].seq, 3);
  EXPECT_EQ(r.events[0].sender_id, a);
  EXPECT_EQ(r.events[0].data, cat(R"({"user_ids":[")", std::to_string(c), R"("]})"));
  EXPECT_EQ(sorted(r.recipients), sorted({a, b, c}));
  EXPECT_EQ(role_of(a, g, c), MemberRole::member);
  // Carl sees the log from his member_added event on.
  EXPECT_EQ(seqs(store().history(c, g, HistoryQuery{})->messages), (Seqs{3}));
  EXPECT_EQ(seqs(store().history(b, g, HistoryQuery{})->messages), (Seqs{1, 2, 3}));
  // Nobody new: ok, nothing logged.
  const auto none = add(a, g, {b, c});
  EXPECT_EQ(none.outcome, ChangeOutcome::ok);
  EXPECT_TRUE(none.events.empty());
  EXPECT_EQ(store().get_conversation(a, g)->last_seq, 3);
}

TEST_P(StoreConformance, RemoveMemberFollowsTheRoles) {
  // Goal: admins remove members, only the owner removes admins, nobody removes the owner (invalid),
  // members remove nobody; the removed member gets the event, then loses access. Method: a group
  // with an owner, an admin and two members.
  const auto owner = add_user("owner");
  const auto admin = add_user("admin");
  const auto m1 = add_user("member1");
  const auto m2 = add_user("member2");
  const auto stranger = add_user("stranger");
  const auto g = group(owner, {admin, m1, m2}).conversation_id;
  ASSERT_EQ(set_role(owner, g, admin, MemberRole::admin).outcome, ChangeOutcome::ok);

  EXPECT_EQ(remove(m1, g, m2).outcome, ChangeOutcome::forbidden);
  EXPECT_EQ(remove(admin, g, owner).outcome, ChangeOutcome::invalid);
  EXPECT_EQ(remove(stranger, g, m1).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(remove(admin, g, stranger).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(remove(owner, direct(owner, m1), m1).outcome, ChangeOutcome::forbidden);

  const auto r = remove(admin, g, m1);
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "member_removed");
  EXPECT_EQ(r.events[0].sender_id, admin);
  EXPECT_EQ(r.events[0].data, cat(R"({"user_ids":[")", std::to_string(m1), R"("]})"));
  EXPECT_EQ(sorted(r.recipients), sorted({owner, admin, m1, m2}));  // m1 hears it too
  EXPECT_FALSE(store().get_conversation(m1, g));
  EXPECT_EQ(append(g, m1, "late").outcome, AppendOutcome::not_found);
  EXPECT_EQ(store().get_conversation(owner, g)->members.size(), 3U);

  // A second admin cannot remove the first; the owner can.
  ASSERT_EQ(set_role(owner, g, m2, MemberRole::admin).outcome, ChangeOutcome::ok);
  EXPECT_EQ(remove(m2, g, admin).outcome, ChangeOutcome::forbidden);
  EXPECT_EQ(remove(owner, g, admin).outcome, ChangeOutcome::ok);
}

TEST_P(StoreConformance, LeavingAndOwnerHandOver) {
  // Goal: anyone may leave (member_left); an owner who leaves hands the group to the
  // longest-standing admin, else the longest-standing member (role_changed event); the last one
  // out leaves no heir. Method: leave in turn and check the events and roles.
  const auto owner = add_user("owner");
  const auto early = add_user("early");
  const auto late = add_user("late");
  const auto admin = add_user("admin");
  const auto g = group(owner, {early}, "team", kT0).conversation_id;
  ASSERT_EQ(in_job(store(),
                   [&] {
                     return store().add_members(owner, g, {late, admin}, ids(), kT0 + 10);
                   })
                .outcome,
            ChangeOutcome::ok);
  ASSERT_EQ(set_role(owner, g, admin, MemberRole::admin).outcome, ChangeOutcome::ok);

  // A plain member leaves: one event, no hand-over.
  auto r = remove(late, g, late);
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_EQ(types(r.events), (std::vector<std::string>{"member_left"}));
  EXPECT_EQ(r.events[0].sender_id, late);
  EXPECT_EQ(r.events[0].data, "");
  EXPECT_FALSE(store().get_conversation(late, g));

  // The owner leaves: the admin (joined later than `early`) is preferred.
  r = remove(owner, g, owner);
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_EQ(types(r.events), (std::vector<std::string>{"member_left", "role_changed"}));
  EXPECT_EQ(r.events[1].seq, r.events[0].seq + 1);
  EXPECT_EQ(r.events[1].data, cat(R"({"user_id":")", std::to_string(admin), R"(","role":"owner"})"));
  EXPECT_EQ(role_of(early, g, admin), MemberRole::owner);

  // The new owner leaves: no admin left, the longest-standing member inherits.
  r = remove(admin, g, admin);
  EXPECT_EQ(types(r.events), (std::vector<std::string>{"member_left", "role_changed"}));
  EXPECT_EQ(role_of(early, g, early), MemberRole::owner);
  // The last one out.
  r = remove(early, g, early);
  EXPECT_EQ(types(r.events), (std::vector<std::string>{"member_left"}));
  EXPECT_TRUE(store().list_conversations(early).empty());
}

TEST_P(StoreConformance, SetRoleAndRename) {
  // Goal: admins change roles (never to or of the owner) and rename the group; members cannot;
  // setting the same role logs nothing. Method: each case once.
  const auto owner = add_user("owner");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto stranger = add_user("stranger");
  const auto g = group(owner, {b, c}).conversation_id;
  auto r = set_role(owner, g, b, MemberRole::admin);
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "role_changed");
  EXPECT_EQ(r.events[0].data, cat(R"({"user_id":")", std::to_string(b), R"(","role":"admin"})"));
  EXPECT_EQ(sorted(r.recipients), sorted({owner, b, c}));
  r = set_role(owner, g, b, MemberRole::admin);
  EXPECT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(set_role(c, g, b, MemberRole::member).outcome, ChangeOutcome::forbidden);
  EXPECT_EQ(set_role(b, g, c, MemberRole::owner).outcome, ChangeOutcome::forbidden);
  EXPECT_EQ(set_role(b, g, owner, MemberRole::member).outcome, ChangeOutcome::invalid);
  EXPECT_EQ(set_role(b, g, stranger, MemberRole::admin).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(set_role(stranger, g, c, MemberRole::admin).outcome, ChangeOutcome::not_found);
  EXPECT_EQ(set_role(b, g, c, MemberRole::admin).outcome, ChangeOutcome::ok);  // admins promote too

  const auto rename = [&](UserId actor, ConversationId id, const std::string& name) {
    return in_job(store(), [&] { return store().rename_group(actor, id, name, ids(), kT0); });
  };
  auto renamed = rename(b, g, "New name");
  ASSERT_EQ(renamed.outcome, ChangeOutcome::ok);
  ASSERT_EQ(renamed.events.size(), 1U);
  EXPECT_EQ(renamed.events[0].type, "renamed");
  EXPECT_EQ(renamed.events[0].body, "New name");
  EXPECT_EQ(store().get_conversation(owner, g)->name, "New name");
  EXPECT_EQ(store().get_conversation(owner, g)->last_message->type, "renamed");
  ASSERT_EQ(set_role(owner, g, c, MemberRole::member).outcome, ChangeOutcome::ok);
  EXPECT_EQ(rename(c, g, "x").outcome, ChangeOutcome::forbidden);
  EXPECT_EQ(rename(stranger, g, "x").outcome, ChangeOutcome::not_found);
  EXPECT_EQ(rename(owner, direct(owner, b), "x").outcome, ChangeOutcome::forbidden);
}

TEST_P(StoreConformance, InvitesCreateListRevokeAndJoin) {
  // Goal: admins create, list and revoke invite codes; anyone with a live code joins (once), sees
  // the log from the join, and a revoked or foreign code is not_found. Method: walk through it.
  const auto owner = add_user("owner");
  const auto b = add_user("bob");
  const auto joiner = add_user("joiner");
  const auto other = add_user("other");
  const auto g = group(owner, {b}).conversation_id;
  const auto g2 = group(other, {}).conversation_id;
  append(g, owner, "before");

  auto created = invite(owner, g, "code-1", kT0 + 1);
  ASSERT_EQ(created.outcome, InviteOutcome::ok);
  ASSERT_EQ(created.invites.size(), 1U);
  EXPECT_EQ(created.invites[0].code, "code-1");
  EXPECT_EQ(created.invites[0].conversation_id, g);
  EXPECT_EQ(created.invites[0].created_by, owner);
  EXPECT_EQ(created.invites[0].created_at, kT0 + 1);
  ASSERT_EQ(invite(owner, g, "code-2", kT0 + 2).outcome, InviteOutcome::ok);
  EXPECT_EQ(invite(b, g, "code-3").outcome, InviteOutcome::forbidden);
  EXPECT_EQ(invite(joiner, g, "code-3").outcome, InviteOutcome::not_found);
  EXPECT_EQ(invite(owner, direct(owner, b), "code-3").outcome, InviteOutcome::forbidden);

  auto listed = store().list_invites(owner, g);
  ASSERT_EQ(listed.outcome, InviteOutcome::ok);
  ASSERT_EQ(listed.invites.size(), 2U);
  EXPECT_EQ(listed.invites[0].code, "code-1");
  EXPECT_EQ(listed.invites[1].code, "code-2");
  EXPECT_EQ(store().list_invites(b, g).outcome, InviteOutcome::forbidden);

  EXPECT_EQ(join(joiner, g, "nope").outcome, ChangeOutcome::not_found);
  EXPECT_EQ(join(joiner, g2, "code-1").outcome, ChangeOutcome::not_found);  // a code of another group
  auto joined = join(joiner, g, "code-1");
  ASSERT_EQ(joined.outcome, ChangeOutcome::ok);
  ASSERT_EQ(joined.events.size(), 1U);
  EXPECT_EQ(joined.events[0].type, "member_joined");
  EXPECT_EQ(joined.events[0].sender_id, joiner);
  EXPECT_EQ(joined.events[0].seq, 3);
  EXPECT_EQ(sorted(joined.recipients), sorted({owner, b, joiner}));
  EXPECT_EQ(seqs(store().history(joiner, g, HistoryQuery{})->messages), (Seqs{3}));
  EXPECT_EQ(role_of(owner, g, joiner), MemberRole::member);
  auto again = join(joiner, g, "code-2");
  EXPECT_EQ(again.outcome, ChangeOutcome::ok);
  EXPECT_TRUE(again.events.empty());

  const auto revoke = [&](UserId actor, ConversationId id, const std::string& code) {
    return in_job(store(), [&] { return store().revoke_invite(actor, id, code, kT0); });
  };
  EXPECT_EQ(revoke(b, g, "code-1"), InviteOutcome::forbidden);
  EXPECT_EQ(revoke(other, g, "code-1"), InviteOutcome::not_found);
  EXPECT_EQ(revoke(owner, g, "code-1"), InviteOutcome::ok);
  EXPECT_EQ(revoke(owner, g, "code-1"), InviteOutcome::not_found);
  EXPECT_EQ(revoke(owner, g, "unknown"), InviteOutcome::not_found);
  listed = store().list_invites(owner, g);
  ASSERT_EQ(listed.invites.size(), 1U);
  EXPECT_EQ(listed.invites[0].code, "code-2");
  EXPECT_EQ(join(other, g, "code-1").outcome, ChangeOutcome::not_found);
  EXPECT_EQ(join(other, g, "code-2").outcome, ChangeOutcome::ok);
}

// ---------------------------------------------------------------------------------------------
// Edits, deletes, reactions

TEST_P(StoreConformance, EditAndDeleteAreTheAuthorsAlone) {
  // Goal: only the author edits or deletes a text message; the event refers to it; the message
  // reads back in its new state; events and deleted messages cannot be changed (invalid); others
  // get forbidden, non-members not_found. Method: each case on one conversation.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  const auto m = append(ab, a, "m1").message;
  const auto other = append(ab, b, "m2").message;

  auto r = edit(a, m.id, "changed", kT0 + 100);
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_EQ(r.conversation_id, ab);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "edit");
  EXPECT_EQ(r.events[0].body, "changed");
  EXPECT_EQ(r.events[0].ref_id, m.id);
  EXPECT_EQ(r.events[0].seq, 3);
  ASSERT_TRUE(r.message);
  EXPECT_EQ(r.message->body, "changed");
  EXPECT_EQ(r.message->edited_at, kT0 + 100);
  EXPECT_EQ(sorted(r.recipients), sorted({a, b}));
  const auto page = store().history(b, ab, HistoryQuery{});
  ASSERT_EQ(page->messages.size(), 3U);
  EXPECT_EQ(page->messages[0].body, "changed");
  EXPECT_EQ(page->messages[0].edited_at, kT0 + 100);
  // An edit is not the conversation's last message.
  EXPECT_EQ(store().get_conversation(a, ab)->last_message->id, other.id);

  EXPECT_EQ(edit(b, m.id, "x").outcome, ChangeOutcome::forbidden);
  EXPECT_EQ(edit(c, m.id, "x").outcome, ChangeOutcome::not_found);
  EXPECT_EQ(edit(a, 999'999, "x").outcome, ChangeOutcome::not_found);
  EXPECT_EQ(edit(a, r.events[0].id, "x").outcome, ChangeOutcome::invalid);  // an event
  EXPECT_EQ(erase(b, m.id).outcome, ChangeOutcome::forbidden);

  ASSERT_EQ(react(b, m.id, "+1", true).outcome, ChangeOutcome::ok);
  r = erase(a, m.id);
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "delete");
  EXPECT_EQ(r.events[0].body, "");
  EXPECT_EQ(r.events[0].ref_id, m.id);
  ASSERT_TRUE(r.message);
  EXPECT_TRUE(r.message->deleted);
  EXPECT_EQ(r.message->body, "");
  EXPECT_TRUE(r.message->reactions.empty());
  const auto after = store().history(b, ab, HistoryQuery{})->messages.front();
  EXPECT_TRUE(after.deleted);
  EXPECT_EQ(after.body, "");
  EXPECT_TRUE(after.reactions.empty());
  EXPECT_EQ(erase(a, m.id).outcome, ChangeOutcome::invalid);
  EXPECT_EQ(edit(a, m.id, "again").outcome, ChangeOutcome::invalid);
  EXPECT_EQ(react(b, m.id, "+1", true).outcome, ChangeOutcome::invalid);
}

TEST_P(StoreConformance, DeletedMessagesAreNotUnread) {
  // Goal: unread_count counts text messages of others that are not deleted. Method: bob sends two,
  // deletes one; alice's unread count is 1.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  const auto m1 = append(ab, b, "m1").message.id;
  append(ab, b, "m2");
  ASSERT_EQ(erase(b, m1).outcome, ChangeOutcome::ok);
  EXPECT_EQ(store().get_conversation(a, ab)->unread_count, 1);
}

TEST_P(StoreConformance, ReactionsToggleAndGroupByEmoji) {
  // Goal: any member who can see a message reacts; adding a reaction twice or removing one that is
  // not there changes nothing and logs nothing; messages read back with reactions grouped by emoji
  // (bytewise order), users in reaction order. Method: three users react with two emoji.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto late = add_user("late");
  const auto stranger = add_user("stranger");
  const auto g = group(a, {b, c}).conversation_id;
  const auto m = append(g, a, "m1").message;
  const std::string heart = "\xE2\x9D\xA4";  // sorts after "+1" bytewise

  auto r = react(b, m.id, heart, true, kT0 + 300);
  ASSERT_EQ(r.outcome, ChangeOutcome::ok);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].type, "reaction");
  EXPECT_EQ(r.events[0].body, heart);
  EXPECT_EQ(r.events[0].ref_id, m.id);
  EXPECT_EQ(r.events[0].data, R"({"on":true})");
  EXPECT_EQ(sorted(r.recipients), sorted({a, b, c}));
  ASSERT_EQ(r.message->reactions.size(), 1U);
  ASSERT_EQ(react(a, m.id, heart, true, kT0 + 301).events.size(), 1U);
  ASSERT_EQ(react(c, m.id, "+1", true, kT0 + 302).events.size(), 1U);

  r = react(b, m.id, heart, true, kT0 + 303);  // again: nothing changes
  EXPECT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_TRUE(r.events.empty());
  ASSERT_TRUE(r.message);
  ASSERT_EQ(r.message->reactions.size(), 2U);
  EXPECT_EQ(r.message->reactions[0].emoji, "+1");
  EXPECT_EQ(r.message->reactions[0].user_ids, (Ids{c}));
  EXPECT_EQ(r.message->reactions[1].emoji, heart);
  EXPECT_EQ(r.message->reactions[1].user_ids, (Ids{b, a}));  // in the order they reacted

  const auto page = store().history(c, g, HistoryQuery{});
  const auto& read_back = page->messages[1];
  ASSERT_EQ(read_back.id, m.id);
  ASSERT_EQ(read_back.reactions.size(), 2U);
  EXPECT_EQ(read_back.reactions[1].user_ids, (Ids{b, a}));
  // Reaction events themselves carry no reactions, and are not the last message.
  EXPECT_TRUE(page->messages.back().reactions.empty());
  EXPECT_EQ(store().get_conversation(a, g)->last_message->id, m.id);
  EXPECT_EQ(store().get_conversation(a, g)->last_message->reactions.size(), 2U);

  r = react(b, m.id, heart, false);
  ASSERT_EQ(r.events.size(), 1U);
  EXPECT_EQ(r.events[0].data, R"({"on":false})");
  EXPECT_EQ(r.message->reactions[1].user_ids, (Ids{a}));
  r = react(b, m.id, heart, false);
  EXPECT_EQ(r.outcome, ChangeOutcome::ok);
  EXPECT_TRUE(r.events.empty());

  EXPECT_EQ(react(stranger, m.id, "+1", true).outcome, ChangeOutcome::not_found);
  ASSERT_EQ(add(a, g, {late}).outcome, ChangeOutcome::ok);
  EXPECT_EQ(react(late, m.id, "+1", true).outcome, ChangeOutcome::not_found);  // from before the join
  EXPECT_EQ(react(a, r.message->id + 999'999, "+1", true).outcome, ChangeOutcome::not_found);
}

TEST_P(StoreConformance, EveryMessageOfAPageGetsItsOwnReactions) {
  // Goal: a history page (and a sync page) carries, on each text message, that message's reactions
  // and no other's, grouped by emoji; messages without reactions, deleted messages and events carry
  // none. Method: five messages, reactions on the 1st, 2nd and 4th, the 4th deleted, read back
  // as one page, as two pages, and through sync.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  std::vector<MessageId> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(append(ab, i % 2 == 0 ? a : b, cat("m", std::to_string(i))).message.id);
  ASSERT_EQ(react(b, ids[0], "+1", true, kT0 + 300).outcome, ChangeOutcome::ok);
  ASSERT_EQ(react(a, ids[0], "+1", true, kT0 + 301).outcome, ChangeOutcome::ok);
  ASSERT_EQ(react(a, ids[1], "ok", true, kT0 + 302).outcome, ChangeOutcome::ok);
  ASSERT_EQ(react(a, ids[1], "+1", true, kT0 + 303).outcome, ChangeOutcome::ok);
  ASSERT_EQ(react(b, ids[3], "+1", true, kT0 + 304).outcome, ChangeOutcome::ok);
  ASSERT_EQ(erase(b, ids[3]).outcome, ChangeOutcome::ok);

  const auto check = [&](const std::vector<chat::domain::Message>& messages) {
    for (const auto& m : messages) {
      if (m.id == ids[0]) {
        ASSERT_EQ(m.reactions.size(), 1U);
        EXPECT_EQ(m.reactions[0].emoji, "+1");
        EXPECT_EQ(m.reactions[0].user_ids, (Ids{b, a}));
      } else if (m.id == ids[1]) {
        ASSERT_EQ(m.reactions.size(), 2U);
        EXPECT_EQ(m.reactions[0].emoji, "+1");
        EXPECT_EQ(m.reactions[0].user_ids, (Ids{a}));
        EXPECT_EQ(m.reactions[1].emoji, "ok");
        EXPECT_EQ(m.reactions[1].user_ids, (Ids{a}));
      } else {
        EXPECT_TRUE(m.reactions.empty()) << m.id << " " << m.type;
      }
    }
  };
  const auto whole = store().history(a, ab, HistoryQuery{});
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->messages.size(), 11U);  // 5 messages, 5 reaction events, 1 delete event
  check(whole->messages);
  const auto older = store().history(a, ab, chat::test::history_query(3, std::nullopt, 2));
  ASSERT_TRUE(older);
  ASSERT_EQ(older->messages.size(), 2U);
  EXPECT_EQ(older->messages[1].id, ids[1]);
  check(older->messages);
  const auto synced = store().sync(b, {}, 100);
  EXPECT_EQ(synced.events.size(), 11U);
  check(synced.events);
}

// ---------------------------------------------------------------------------------------------
// Sync and contacts

TEST_P(StoreConformance, SyncReturnsEverythingAfterTheWatermarks) {
  // Goal: sync returns, by conversation then seq, every event after the given watermarks (0 for
  // conversations not named, never before the join), at most `limit`, with has_more; conversations
  // named but not the viewer's come back in `removed`. Method: two conversations, a group the
  // viewer was removed from, and an unknown id.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto ab = direct(a, b);
  const auto ac = direct(a, c);
  for (int i = 1; i <= 3; ++i) append(ab, a, cat("ab", std::to_string(i)));
  for (int i = 1; i <= 2; ++i) append(ac, c, cat("ac", std::to_string(i)));
  const auto g = group(c, {a}).conversation_id;
  ASSERT_EQ(remove(c, g, a).outcome, ChangeOutcome::ok);

  auto page = store().sync(a, {}, 100);
  EXPECT_FALSE(page.has_more);
  EXPECT_TRUE(page.removed.empty());
  std::vector<std::pair<ConversationId, Seq>> got;
  for (const auto& e : page.events) got.emplace_back(e.conversation_id, e.seq);
  const auto [lo, hi] = std::minmax(ab, ac);
  const auto lo_n = lo == ab ? 3 : 2;
  const auto hi_n = hi == ab ? 3 : 2;
  std::vector<std::pair<ConversationId, Seq>> want;
  for (int i = 1; i <= lo_n; ++i) want.emplace_back(lo, i);
  for (int i = 1; i <= hi_n; ++i) want.emplace_back(hi, i);
  EXPECT_EQ(got, want);

  page = store().sync(a, {{ab, 2}, {ac, 2}, {g, 0}, {ab + ac + g + 1000, 0}}, 100);
  ASSERT_EQ(page.events.size(), 1U);
  EXPECT_EQ(page.events[0].conversation_id, ab);
  EXPECT_EQ(page.events[0].seq, 3);
  EXPECT_EQ(page.events[0].client_msg_id, "ab3");
  EXPECT_FALSE(page.has_more);
  EXPECT_EQ(sorted(page.removed), sorted({g, ab + ac + g + 1000}));

  page = store().sync(a, {}, 4);
  EXPECT_EQ(page.events.size(), 4U);
  EXPECT_TRUE(page.has_more);
  page = store().sync(a, {}, 5);
  EXPECT_EQ(page.events.size(), 5U);
  EXPECT_FALSE(page.has_more);

  // A member added later syncs from the event that added them.
  const auto d = add_user("dora");
  ASSERT_EQ(add(c, g, {d}).outcome, ChangeOutcome::ok);
  page = store().sync(d, {{g, 0}}, 100);
  EXPECT_EQ(types(page.events), (std::vector<std::string>{"member_added"}));
  EXPECT_TRUE(page.removed.empty());
}

TEST_P(StoreConformance, SyncCarriesCurrentMessageState) {
  // Goal: text messages in a sync page read back in their current state (edited, reactions).
  // Method: edit and react, then sync from 0.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  const auto m = append(ab, a, "m1").message.id;
  ASSERT_EQ(edit(a, m, "new").outcome, ChangeOutcome::ok);
  ASSERT_EQ(react(b, m, "+1", true).outcome, ChangeOutcome::ok);
  const auto page = store().sync(b, {}, 100);
  EXPECT_EQ(types(page.events), (std::vector<std::string>{"text", "edit", "reaction"}));
  EXPECT_EQ(page.events[0].body, "new");
  ASSERT_EQ(page.events[0].reactions.size(), 1U);
  EXPECT_EQ(page.events[0].reactions[0].user_ids, (Ids{b}));
}

TEST_P(StoreConformance, SharedContacts) {
  // Goal: shared_contacts keeps the users who share a conversation with the viewer (the viewer
  // included), in the given order. Method: alice shares a direct with bob and a group with carl.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto d = add_user("dora");
  direct(a, b);
  group(c, {a});
  EXPECT_EQ(store().shared_contacts(a, {d, c, a, b, 999'999}), (Ids{c, a, b}));
  EXPECT_EQ(store().shared_contacts(d, {a, b, c}), Ids{});
  EXPECT_EQ(store().shared_contacts(d, {d}), (Ids{d}));
  EXPECT_TRUE(store().shared_contacts(a, {}).empty());
}

// ---------------------------------------------------------------------------------------------
// Transactions, durability, connections

TEST_P(StoreConformance, RolledBackJobLeavesNoTrace) {
  // Goal: rollback_job undoes that job alone while the batch commits the others. Method: one batch
  // with three jobs, the middle one rolled back.
  store().begin_batch();
  store().begin_job();
  store().create_user(chat::test::new_user("kept1", "kept1@x.y", "h", ""), kT0);
  store().end_job();
  store().begin_job();
  store().create_user(chat::test::new_user("ghost", "ghost@x.y", "h", ""), kT0);
  store().rollback_job();
  store().begin_job();
  store().create_user(chat::test::new_user("kept2", "kept2@x.y", "h", ""), kT0);
  store().end_job();
  store().commit_batch();
  EXPECT_TRUE(store().find_credentials("kept1"));
  EXPECT_FALSE(store().find_credentials("ghost"));
  EXPECT_TRUE(store().find_credentials("kept2"));
  EXPECT_GT(add_user("ghost"), 0);
}

TEST_P(StoreConformance, RolledBackBatchLeavesNoTrace) {
  // Goal: rollback_batch undoes every job of the batch. Method: a finished job, then rollback_batch
  // instead of commit.
  store().begin_batch();
  store().begin_job();
  store().create_user(chat::test::new_user("one", "one@x.y", "h", ""), kT0);
  store().end_job();
  store().rollback_batch();
  EXPECT_FALSE(store().find_credentials("one"));
  EXPECT_GT(add_user("one"), 0);
}

TEST_P(StoreConformance, LaterJobsOfABatchSeeItsAppends) {
  // Goal: jobs of one batch see what earlier jobs appended (a store may defer the conversation row
  // and the senders' read markers to the end of the batch): seqs stay gapless across appends and
  // events, watermarks are capped at the batch's last seq, new members get the next message, and
  // the committed rows are those of one append at a time. Method: one batch of appends to a group
  // and a direct conversation mixed with marks, a rename and an add, as StoreService runs it (no
  // savepoint per job where the store allows that); then read everything back.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = add_user("carl");
  const auto g = group(a, {b}).conversation_id;  // seq 1: created
  const auto ab = direct(a, b);
  const bool savepoints = !store().optimistic_batches();
  auto job = [&](auto&& fn) {
    if (savepoints) store().begin_job();
    auto r = fn();
    if (savepoints) store().end_job();
    return r;
  };
  auto send = [&](ConversationId conv, UserId sender, const std::string& cid, TimeMs now) {
    ++next_id_;
    return job([&] {
      return store().append_message(chat::test::new_message(conv, sender, cid, cat("body ", cid)), next_id_,
                                    now);
    });
  };
  store().begin_batch();
  EXPECT_EQ(send(g, a, "g1", kT0 + 10).message.seq, 2);
  EXPECT_EQ(send(g, b, "g2", kT0 + 10).message.seq, 3);
  EXPECT_EQ(send(ab, b, "d1", kT0 + 10).message.seq, 1);
  EXPECT_EQ(send(g, a, "g3", kT0 + 10).message.seq, 4);
  auto r = job([&] { return store().mark_delivered_seq(b, g, 99, kT0 + 10); });
  EXPECT_EQ(r.outcome, ReadOutcome::updated);
  EXPECT_EQ(r.delivered_seq, 4);
  EXPECT_EQ(r.read_seq, 3);
  EXPECT_EQ(job([&] { return store().mark_read_seq(a, g, 4, kT0 + 10); }).outcome, ReadOutcome::unchanged);
  const auto renamed = job([&] { return store().rename_group(a, g, "renamed", ids(), kT0 + 10); });
  ASSERT_EQ(renamed.events.size(), 1U);
  EXPECT_EQ(renamed.events[0].seq, 5);
  EXPECT_EQ(send(g, b, "g4", kT0 + 20).message.seq, 6);
  const auto added = job([&] { return store().add_members(a, g, {c}, ids(), kT0 + 20); });
  ASSERT_EQ(added.events.size(), 1U);
  EXPECT_EQ(added.events[0].seq, 7);
  const auto last = send(g, a, "g5", kT0 + 30);
  EXPECT_EQ(last.message.seq, 8);
  EXPECT_EQ(sorted(last.members), sorted(Ids{a, b, c}));
  EXPECT_EQ(send(g, c, "g6", kT0 + 30).message.seq, 9);
  EXPECT_EQ(send(g, a, "g3", kT0 + 30).outcome, AppendOutcome::duplicate);
  store().commit_batch();

  const auto page = store().history(a, g, HistoryQuery{});
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(page->messages), (Seqs{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(store().get_conversation(a, g)->last_seq, 9);
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 1);
  const auto receipts = store().receipts(a, g);
  ASSERT_TRUE(receipts);
  for (const auto& receipt : *receipts) {
    const Seq read = receipt.user_id == a ? 8 : receipt.user_id == b ? 6 : 9;
    EXPECT_EQ(receipt.read_seq, read) << receipt.user_id;
    EXPECT_EQ(receipt.delivered_seq, read) << receipt.user_id;
  }
  EXPECT_EQ(store().get_conversation(b, ab)->read_seq, 1);
  const auto list = store().list_conversations(a);
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0].id, g);  // last activity kT0 + 30, the direct one kT0 + 10
  EXPECT_EQ(list[1].id, ab);
}

TEST_P(StoreConformance, ReplayedBatchGivesTheSeqsOfTheJobsThatSucceeded) {
  // Goal: after a failed job, the batch's replay (StoreService::run_with_savepoints) gives exactly
  // the seqs and read markers of the jobs that succeed: nothing of the rolled-back attempt or of the
  // failed job's appends survives, in the database or in what the store remembers of the batch.
  // Method: the optimistic attempt (where the store runs one) appends and is rolled back; the
  // replay appends m1, m2, then m3 in a job that is rolled back, then m4.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto ab = direct(a, b);
  auto send = [&](UserId sender, const std::string& cid) {
    ++next_id_;
    return store().append_message(chat::test::new_message(ab, sender, cid, cat("body ", cid)), next_id_, kT0);
  };
  if (store().optimistic_batches()) {
    store().begin_batch();
    EXPECT_EQ(send(a, "m1").message.seq, 1);
    EXPECT_EQ(send(b, "m2").message.seq, 2);
    EXPECT_EQ(send(a, "m3").message.seq, 3);
    store().rollback_batch();
  }
  store().begin_batch();
  store().begin_job();
  EXPECT_EQ(send(a, "m1").message.seq, 1);
  store().end_job();
  store().begin_job();
  EXPECT_EQ(send(b, "m2").message.seq, 2);
  store().end_job();
  store().begin_job();
  EXPECT_EQ(send(a, "m3").message.seq, 3);
  store().rollback_job();
  store().begin_job();
  EXPECT_EQ(send(b, "m4").message.seq, 3);
  store().end_job();
  store().commit_batch();

  const auto page = store().history(a, ab, HistoryQuery{});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->messages.size(), 3U);
  EXPECT_EQ(page->messages[2].client_msg_id, "m4");
  EXPECT_EQ(store().get_conversation(a, ab)->last_seq, 3);
  EXPECT_EQ(store().get_conversation(a, ab)->read_seq, 1);
  EXPECT_EQ(store().get_conversation(b, ab)->read_seq, 3);
  EXPECT_EQ(append(ab, a, "m3").message.seq, 4);
  EXPECT_EQ(store().get_conversation(a, ab)->read_seq, 4);
}

TEST_P(StoreConformance, UncommittedWritesAreInvisibleToReaders) {
  // Goal: reads see committed data only. Method: read between a job's write and the commit.
  store().begin_batch();
  store().begin_job();
  store().create_user(chat::test::new_user("pending", "pending@x.y", "h", ""), kT0);
  store().end_job();
  EXPECT_FALSE(store().find_credentials("pending"));
  store().commit_batch();
  EXPECT_TRUE(store().find_credentials("pending"));
}

TEST_P(StoreConformance, ConstraintViolationIsAStoreError) {
  // Goal: a write the schema refuses (a duplicate invite code) throws StoreError, not a value, and
  // the batch can be rolled back and the store used again. Method: create the same code twice.
  const auto a = add_user("alice");
  const auto g = group(a, {}).conversation_id;
  ASSERT_EQ(invite(a, g, "same").outcome, InviteOutcome::ok);
  EXPECT_THROW(invite(a, g, "same"), StoreError);
  EXPECT_EQ(store().list_invites(a, g).invites.size(), 1U);
  EXPECT_GT(add_user("bob"), 0);
}

TEST_P(StoreConformance, DataSurvivesReopening) {
  // Goal: committed data is durable across store instances. Method: write users, a session, a
  // conversation and messages; close; open a new store; read everything back and keep going.
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  add_session(a, "acc", "ref");
  const auto ab = direct(a, b);
  append(ab, a, "m1");
  const auto last = append(ab, b, "m2");
  const auto g = group(a, {b}).conversation_id;
  ASSERT_EQ(invite(a, g, "keep").outcome, InviteOutcome::ok);
  close();
  open();
  EXPECT_TRUE(store().find_credentials("alice"));
  EXPECT_TRUE(store().find_access("acc", kT0));
  const auto conv = store().get_conversation(a, ab);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->last_seq, 2);
  EXPECT_EQ(store().max_message_id(), next_id_);
  EXPECT_GT(next_id_, last.message.id);  // the group's created event came after
  EXPECT_EQ(store().list_invites(a, g).invites.size(), 1U);
  EXPECT_EQ(append(ab, a, "m3").message.seq, 3);
  EXPECT_EQ(append(ab, a, "m1").outcome, AppendOutcome::duplicate);
}

TEST_P(StoreConformance, DroppedConnectionsAreReestablished) {
  // Goal: a server restart (every connection cut) costs at most the calls in flight: the next
  // batch and the next reads reconnect. Method: cut the connections between calls (PostgreSQL).
  const auto a = add_user("alice");
  if (!backend_->drop_connections()) GTEST_SKIP() << "an embedded store has no connection to lose";
  EXPECT_TRUE(store().find_credentials("alice"));
  EXPECT_GT(add_user("bob"), a);
  ASSERT_TRUE(backend_->drop_connections());
  EXPECT_GT(add_user("carl"), 0);
  EXPECT_TRUE(store().healthy());
  EXPECT_EQ(store().search_users("", 10).size(), 3U);
  // Cut in the middle of a batch: that batch fails as unavailable (retryable) and the next works.
  store().begin_batch();
  store().begin_job();
  ASSERT_TRUE(backend_->drop_connections());
  EXPECT_THROW(store().create_user(chat::test::new_user("dora", "dora@x.y", "h", ""), kT0), StoreUnavailable);
  store().rollback_job();
  store().rollback_batch();
  EXPECT_FALSE(store().find_credentials("dora"));
  EXPECT_GT(add_user("dora"), 0);
}

// ---------------------------------------------------------------------------------------------
// Races between nodes: two stores on one database (PostgreSQL; SQLite has a single writer).
// Store A runs a write and keeps its batch open; store B runs, in one batch, an unrelated job and
// then the same write, which blocks on A's uncommitted row; once the database reports B waiting
// for a lock, A commits. B's racing job must answer what a sequential run answers, and B's other
// job must commit.

struct RaceOutcome {
  UserId bystander = 0;  // B's unrelated job, in the same batch as the racing one
};

int race_bystanders = 0;  // one per race_stores call: names must differ across instantiations

template <class First, class Race>
auto race_stores(chat::test::StoreBackend& backend, Store& a, First first, Race race) {
  auto b = backend.open();
  a.begin_batch();
  a.begin_job();
  auto first_result = first(a);
  a.end_job();
  std::optional<decltype(race(*b))> race_result;
  RaceOutcome outcome;
  std::exception_ptr error;
  std::atomic<bool> finished{false};
  const auto name = cat("bystander", std::to_string(++race_bystanders));
  std::thread other([&] {
    try {
      b->begin_batch();
      b->begin_job();
      outcome.bystander =
          b->create_user(chat::test::new_user(name, cat(name, "@example.com"), "h", ""), kT0).user.id;
      b->end_job();
      b->begin_job();
      race_result = race(*b);
      b->end_job();
      b->commit_batch();
    } catch (...) {
      error = std::current_exception();
      b->rollback_job();
      b->rollback_batch();
    }
    finished = true;
  });
  // Wait (without a deadline that could fail a slow run) until B blocks on A's row, or is done.
  while (!finished && backend.lock_waiters() < 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  a.commit_batch();
  other.join();
  if (error) std::rethrow_exception(error);
  EXPECT_GT(outcome.bystander, 0);
  EXPECT_TRUE(a.find_user(outcome.bystander)) << "the loser's other job was lost";
  return std::make_pair(std::move(first_result), std::move(*race_result));
}

#define SKIP_IF_SINGLE_WRITER()                                  \
  if (backend_->lock_waiters() < 0) {                            \
    GTEST_SKIP() << "one writer: check-then-insert cannot race"; \
  }

TEST_P(StoreConformance, RaceForAUsernameOrEmailAnswersTaken) {
  // Goal: the same username (or email) registered on two nodes at once: one is created, the other
  // gets username_taken (email_taken), as if they had run one after the other.
  SKIP_IF_SINGLE_WRITER();
  const auto [won, lost] = race_stores(
      *backend_, store(),
      [](Store& s) { return s.create_user(chat::test::new_user("alice", "alice@a.example", "h", ""), kT0); },
      [](Store& s) { return s.create_user(chat::test::new_user("ALICE", "other@a.example", "h", ""), kT0); });
  EXPECT_EQ(won.outcome, CreateUserOutcome::created);
  EXPECT_EQ(lost.outcome, CreateUserOutcome::username_taken);
  const auto [won2, lost2] = race_stores(
      *backend_, store(),
      [](Store& s) { return s.create_user(chat::test::new_user("bob", "bob@b.example", "h", ""), kT0); },
      [](Store& s) { return s.create_user(chat::test::new_user("bobby", "BOB@b.example", "h", ""), kT0); });
  EXPECT_EQ(won2.outcome, CreateUserOutcome::created);
  EXPECT_EQ(lost2.outcome, CreateUserOutcome::email_taken);
  EXPECT_EQ(store().search_users("bob", 10).size(), 1U);
}

TEST_P(StoreConformance, RaceForAClientMsgIdAnswersTheOriginal) {
  // Goal: a send retried on another node while the first attempt is still committing stores one
  // message; the retry gets the original (same id and seq), and the log has no gap.
  SKIP_IF_SINGLE_WRITER();
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto c = direct(a, b);
  const auto [won, lost] = race_stores(
      *backend_, store(),
      [&](Store& s) { return s.append_message(chat::test::new_message(c, a, "m1", "hi"), 5001, kT0); },
      [&](Store& s) { return s.append_message(chat::test::new_message(c, a, "m1", "hi"), 5002, kT0); });
  EXPECT_EQ(won.outcome, AppendOutcome::appended);
  EXPECT_EQ(lost.outcome, AppendOutcome::duplicate);
  EXPECT_EQ(lost.message.id, 5001);
  EXPECT_EQ(lost.message.seq, won.message.seq);
  const auto conv = store().get_conversation(a, c);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->last_seq, 1);
  EXPECT_EQ(append(c, b, "m2").message.seq, 2);
}

TEST_P(StoreConformance, RaceForADirectPairAnswersTheExistingConversation) {
  // Goal: both users open their direct conversation at once on two nodes: one conversation.
  SKIP_IF_SINGLE_WRITER();
  const auto a = add_user("alice");
  const auto b = add_user("bob");
  const auto [won, lost] = race_stores(
      *backend_, store(), [&](Store& s) { return s.open_direct(a, b, kT0); },
      [&](Store& s) { return s.open_direct(b, a, kT0); });
  EXPECT_EQ(won.outcome, OpenDirectOutcome::created);
  EXPECT_EQ(lost.outcome, OpenDirectOutcome::existing);
  EXPECT_EQ(lost.conversation_id, won.conversation_id);
  EXPECT_EQ(store().list_conversations(a).size(), 1U);
  EXPECT_EQ(store().list_conversations(b).size(), 1U);
}

TEST_P(StoreConformance, RaceToJoinByInviteAnswersAlreadyAMember) {
  // Goal: the same invite joined twice at once (two tabs, two nodes): one member_joined event;
  // the other join is "already a member" (ok, no event), as a second join in sequence.
  SKIP_IF_SINGLE_WRITER();
  const auto owner = add_user("owner");
  const auto u = add_user("user");
  const auto g = group(owner, {}).conversation_id;
  ASSERT_EQ(invite(owner, g, "code-1").outcome, InviteOutcome::ok);
  std::int64_t next = 9000;
  const NextId id_a = [&next] { return ++next; };
  std::int64_t next_b = 9500;
  const NextId id_b = [&next_b] { return ++next_b; };
  const auto [won, lost] = race_stores(
      *backend_, store(), [&](Store& s) { return s.join_by_invite(u, g, "code-1", id_a, kT0); },
      [&](Store& s) { return s.join_by_invite(u, g, "code-1", id_b, kT0); });
  EXPECT_EQ(won.outcome, ChangeOutcome::ok);
  EXPECT_EQ(types(won.events), std::vector<std::string>{"member_joined"});
  EXPECT_EQ(lost.outcome, ChangeOutcome::ok);
  EXPECT_TRUE(lost.events.empty());
  const auto conv = store().get_conversation(owner, g);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->members.size(), 2U);
  EXPECT_EQ(conv->last_seq, won.events.front().seq);
}

TEST_P(StoreConformance, RaceToAddTheSameMemberAddsThemOnce) {
  // Goal: two admins add the same user at once on two nodes: one member_added event, the other
  // add finds them a member already (ok, no event).
  SKIP_IF_SINGLE_WRITER();
  const auto owner = add_user("owner");
  const auto u = add_user("user");
  const auto g = group(owner, {}).conversation_id;
  std::int64_t next = 9000;
  const NextId id_a = [&next] { return ++next; };
  std::int64_t next_b = 9500;
  const NextId id_b = [&next_b] { return ++next_b; };
  const auto [won, lost] = race_stores(
      *backend_, store(), [&](Store& s) { return s.add_members(owner, g, {u}, id_a, kT0); },
      [&](Store& s) { return s.add_members(owner, g, {u}, id_b, kT0); });
  EXPECT_EQ(types(won.events), std::vector<std::string>{"member_added"});
  EXPECT_EQ(lost.outcome, ChangeOutcome::ok);
  EXPECT_TRUE(lost.events.empty());
  const auto conv = store().get_conversation(owner, g);
  ASSERT_TRUE(conv);
  EXPECT_EQ(conv->members.size(), 2U);
}

TEST_P(StoreConformance, RaceToRotateOneRefreshTokenAnswersReused) {
  // Goal: one refresh token presented on two nodes at once (a stolen copy racing the owner): one
  // rotation wins, the other sees the token already rotated away, i.e. reuse, and the session is
  // revoked, as when the two arrive one after the other. Never two live token pairs.
  SKIP_IF_SINGLE_WRITER();
  const auto u = add_user("alice");
  add_session(u, "access-0", "refresh-0");
  const auto request = [](const std::string& access, const std::string& refresh) {
    return chat::test::rotate_request("refresh-0", access, kT0 + 3'600'000, refresh, kT0 + 86'400'000);
  };
  const auto [won, lost] = race_stores(
      *backend_, store(),
      [&](Store& s) { return s.rotate_refresh(request("access-1", "refresh-1"), kT0 + 1); },
      [&](Store& s) { return s.rotate_refresh(request("access-2", "refresh-2"), kT0 + 1); });
  EXPECT_EQ(won.outcome, RotateOutcome::rotated);
  EXPECT_EQ(lost.outcome, RotateOutcome::reused);
  // Reuse revoked the session: neither pair works.
  EXPECT_FALSE(store().find_access("access-1", kT0 + 2));
  EXPECT_FALSE(store().find_access("access-2", kT0 + 2));
  EXPECT_EQ(rotate("refresh-2", "access-3", "refresh-3").outcome, RotateOutcome::not_found);
}

TEST_P(StoreConformance, WritersOfTwoNodesLockingConversationsInOppositeOrderDoNotDeadlock) {
  // Goal: node A's batch appends to c1 then c2 while node B's appends to c2 then c1. Waiting for a
  // conversation's row while holding another would deadlock (PostgreSQL then aborts one whole
  // batch after deadlock_timeout). Both batches must commit every job, with gapless seqs.
  SKIP_IF_SINGLE_WRITER();
  const auto u = add_user("alice");
  const auto v = add_user("bob");
  const auto w = add_user("carl");
  const auto c1 = direct(u, v);
  const auto c2 = direct(u, w);
  auto other = backend_->open();
  Store& a = store();
  a.begin_batch();
  a.begin_job();
  const auto a1 = a.append_message(chat::test::new_message(c1, u, "a1", "a1"), 7001, kT0);
  a.end_job();
  std::vector<AppendResult> b_results;
  std::exception_ptr error;
  std::atomic<bool> finished{false};
  std::thread b_thread([&] {
    try {
      other->begin_batch();
      for (const auto& [c, cmid, id] : {std::tuple{c2, "b1", 7101}, std::tuple{c1, "b2", 7102}}) {
        other->begin_job();
        b_results.push_back(other->append_message(chat::test::new_message(c, u, cmid, cmid), id, kT0));
        other->end_job();
      }
      other->commit_batch();
    } catch (...) {
      error = std::current_exception();
      other->rollback_job();
      other->rollback_batch();
    }
    finished = true;
  });
  // B's second job waits for c1 (held by A): then A goes on to c2.
  while (!finished && backend_->lock_waiters() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  a.begin_job();
  const auto a2 = a.append_message(chat::test::new_message(c2, u, "a2", "a2"), 7002, kT0);
  a.end_job();
  a.commit_batch();
  b_thread.join();
  if (error) std::rethrow_exception(error);
  ASSERT_EQ(b_results.size(), 2U);
  for (const auto& r : {a1, a2, b_results[0], b_results[1]}) EXPECT_EQ(r.outcome, AppendOutcome::appended);
  EXPECT_EQ(sorted({a1.message.seq, b_results[1].message.seq}), (Ids{1, 2}));
  EXPECT_EQ(sorted({a2.message.seq, b_results[0].message.seq}), (Ids{1, 2}));
  EXPECT_EQ(store().get_conversation(u, c1)->last_seq, 2);
  EXPECT_EQ(store().get_conversation(u, c2)->last_seq, 2);
}

TEST_P(StoreConformance, WritersRacingForTwoUniqueKeysInOppositeOrderBothComplete) {
  // Goal: node A opens direct pairs K1 then K2 in one batch while node B opens K2 then K1. Each
  // waits for the other's uncommitted key: a deadlock, which PostgreSQL breaks by failing one
  // statement. The victim's job must be rerun (after releasing its batch's locks), not fail the
  // batch: every open answers created or existing, one conversation per pair.
  SKIP_IF_SINGLE_WRITER();
  const auto u = add_user("alice");
  const auto v = add_user("bob");
  const auto w = add_user("carl");
  const auto x = add_user("dora");
  auto other = backend_->open();
  Store& a = store();
  a.begin_batch();
  a.begin_job();
  const auto a1 = a.open_direct(u, v, kT0);
  a.end_job();
  std::vector<OpenDirectResult> b_results;
  std::exception_ptr error;
  std::atomic<bool> finished{false};
  std::thread b_thread([&] {
    try {
      other->begin_batch();
      for (const auto& [p, q] : {std::pair{w, x}, std::pair{v, u}}) {
        other->begin_job();
        b_results.push_back(other->open_direct(p, q, kT0));
        other->end_job();
      }
      other->commit_batch();
    } catch (...) {
      error = std::current_exception();
      other->rollback_job();
      other->rollback_batch();
    }
    finished = true;
  });
  while (!finished && backend_->lock_waiters() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  a.begin_job();
  const auto a2 = a.open_direct(x, w, kT0);
  a.end_job();
  a.commit_batch();
  b_thread.join();
  if (error) std::rethrow_exception(error);
  ASSERT_EQ(b_results.size(), 2U);
  EXPECT_EQ(a1.conversation_id, b_results[1].conversation_id);
  EXPECT_EQ(a2.conversation_id, b_results[0].conversation_id);
  EXPECT_EQ(store().list_conversations(u).size(), 1U);
  EXPECT_EQ(store().list_conversations(w).size(), 1U);
  for (const auto& r : {a1, a2, b_results[0], b_results[1]}) {
    EXPECT_TRUE(r.outcome == OpenDirectOutcome::created || r.outcome == OpenDirectOutcome::existing);
  }
}

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

INSTANTIATE_TEST_SUITE_P(Backends,
                         StoreConformance,
                         ::testing::Values(std::string("sqlite"), std::string("postgres")),
                         backend_name);

}  // namespace
