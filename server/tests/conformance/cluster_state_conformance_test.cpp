// Cluster state conformance: presence directory, auth rate limiter and token revocation, each on
// the in-process implementation (embedded mode) and on a real redis-server (cluster mode), with
// the same cases. The Redis instances use CHATD_TEST_REDIS_URL (scripts/redis-test-server.sh) and
// skip without it, except in CI (CI set), where they fail. The outage cases start a private
// redis-server, kill it and start it again.

#include "auth/token_cache.hpp"
#include "bus/bus.hpp"
#include "bus/redis/redis_bus.hpp"
#include "bus/redis/redis_client.hpp"
#include "bus/redis/redis_rate_limiter.hpp"
#include "domain/rate_limiter.hpp"
#include "gateway/hub.hpp"
#include "presence/presence_directory.hpp"
#include "presence/presence_tracker.hpp"
#include "presence/redis_presence_directory.hpp"
#include "redis_test_env.hpp"

#include <atomic>
#include <gtest/gtest.h>
#include <memory>
#include <mutex>
#include <thread>

namespace {

using chat::bus::redis::RedisClient;
using chat::bus::redis::RedisUnavailable;
using chat::presence::PresenceDirectory;
using namespace std::chrono_literals;

constexpr chat::domain::TimeMs kT0 = 1'700'000'000'000;
constexpr auto kGrace = 5000ms;

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// ---------------------------------------------------------------------------------------------
// Presence directory

class PresenceDirectoryConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "local") {
      dir_ = std::make_unique<chat::presence::LocalPresenceDirectory>();
      return;
    }
    CHATD_REQUIRE_REDIS(url);
    client_ = std::make_unique<RedisClient>(chat::test::client_options(url));
    dir_ = std::make_unique<chat::presence::RedisPresenceDirectory>(*client_, chat::test::unique_prefix());
  }
  PresenceDirectory& dir() { return *dir_; }

  std::unique_ptr<RedisClient> client_;
  std::unique_ptr<PresenceDirectory> dir_;
};

TEST_P(PresenceDirectoryConformance, UnknownUserHasNoStatus) {
  EXPECT_FALSE(dir().status(42).has_value());
}

TEST_P(PresenceDirectoryConformance, OnlineWhileAnyDeviceOnAnyNodeThenOfflineOnceAfterGrace) {
  auto u = dir().set_count(7, 1, 1, kT0, kGrace);
  EXPECT_TRUE(u.went_online);
  EXPECT_FALSE(u.last_seen.has_value());
  EXPECT_EQ(u.pending, 0U);
  u = dir().set_count(7, 2, 1, kT0 + 1, kGrace);
  EXPECT_FALSE(u.went_online) << "already online through node 1";
  u = dir().set_count(7, 1, 0, kT0 + 2, kGrace);
  EXPECT_FALSE(u.went_online);
  EXPECT_EQ(u.pending, 0U) << "node 2 still holds a device";
  EXPECT_TRUE(dir().status(7)->online);
  u = dir().set_count(7, 2, 0, kT0 + 3, kGrace);
  ASSERT_NE(u.pending, 0U) << "last device gone: a grace period starts";
  EXPECT_TRUE(dir().status(7)->online) << "online during the grace period";
  const auto when = dir().expire(7, u.pending, kT0 + 5003);
  ASSERT_TRUE(when.has_value());
  EXPECT_EQ(*when, kT0 + 5003);
  const auto s = dir().status(7);
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->online);
  EXPECT_EQ(s->last_seen, kT0 + 5003);
  EXPECT_FALSE(dir().expire(7, u.pending, kT0 + 5004).has_value()) << "exactly one caller ends it";
  // Back online: the transition carries the last_seen recorded when it went offline.
  u = dir().set_count(7, 3, 1, kT0 + 6000, kGrace);
  EXPECT_TRUE(u.went_online);
  EXPECT_EQ(u.last_seen, kT0 + 5003);
}

TEST_P(PresenceDirectoryConformance, DeviceMovingBetweenNodesWithinGraceCancelsTheOffline) {
  ASSERT_TRUE(dir().set_count(8, 1, 1, kT0, kGrace).went_online);
  const auto gone = dir().set_count(8, 1, 0, kT0 + 10, kGrace);
  ASSERT_NE(gone.pending, 0U);
  const auto moved = dir().set_count(8, 2, 1, kT0 + 20, kGrace);
  EXPECT_FALSE(moved.went_online) << "still online: no frame";
  EXPECT_FALSE(dir().expire(8, gone.pending, kT0 + 5010).has_value()) << "the reconnect cancelled it";
  EXPECT_TRUE(dir().status(8)->online);
  // The sweep does not end a cancelled grace period either.
  EXPECT_TRUE(dir().sweep(kT0 + 60'000, 2000ms).empty());
  EXPECT_TRUE(dir().status(8)->online);
}

TEST_P(PresenceDirectoryConformance, ReportingIsIdempotent) {
  EXPECT_TRUE(dir().set_count(9, 1, 2, kT0, kGrace).went_online);
  EXPECT_FALSE(dir().set_count(9, 1, 2, kT0, kGrace).went_online);
  EXPECT_FALSE(dir().set_count(9, 1, 1, kT0, kGrace).went_online);
  const auto first = dir().set_count(9, 1, 0, kT0, kGrace);
  EXPECT_NE(first.pending, 0U);
  const auto again = dir().set_count(9, 1, 0, kT0 + 1, kGrace);
  EXPECT_EQ(again.pending, 0U) << "one grace period at a time";
  EXPECT_TRUE(dir().expire(9, first.pending, kT0 + 6000).has_value());
}

TEST_P(PresenceDirectoryConformance, DeadNodesLoseTheirDevices) {
  dir().heartbeat(1, kT0, 5000ms);
  dir().heartbeat(2, kT0, 5000ms);
  dir().set_count(10, 1, 1, kT0, kGrace);  // only on node 1
  dir().set_count(11, 1, 1, kT0, kGrace);  // on nodes 1 and 2
  dir().set_count(11, 2, 1, kT0, kGrace);
  EXPECT_TRUE(dir().sweep(kT0 + 1000, 2000ms).empty()) << "both nodes alive";
  dir().heartbeat(2, kT0 + 6000, 5000ms);  // node 1 stopped heartbeating (kill -9)
  const auto off = dir().sweep(kT0 + 6000, 2000ms);
  ASSERT_EQ(off.size(), 1U);
  EXPECT_EQ(off[0].user, 10);
  EXPECT_EQ(off[0].last_seen, kT0 + 6000);
  EXPECT_FALSE(dir().status(10)->online);
  EXPECT_EQ(dir().status(10)->last_seen, kT0 + 6000);
  EXPECT_TRUE(dir().status(11)->online);
  EXPECT_TRUE(dir().sweep(kT0 + 6001, 2000ms).empty()) << "each user once";
  // The device left on node 2 still counts: when it goes, the grace period starts as usual.
  EXPECT_NE(dir().set_count(11, 2, 0, kT0 + 7000, kGrace).pending, 0U);
}

TEST_P(PresenceDirectoryConformance, HeartbeatTellsWhetherTheNodeWasRegistered) {
  EXPECT_TRUE(dir().heartbeat(3, kT0, 5000ms)) << "first heartbeat";
  EXPECT_FALSE(dir().heartbeat(3, kT0 + 1000, 5000ms));
  dir().heartbeat(4, kT0 + 20'000, 5000ms);
  dir().sweep(kT0 + 20'000, 2000ms);  // node 3 lapsed: declared dead
  EXPECT_TRUE(dir().heartbeat(3, kT0 + 20'001, 5000ms)) << "back after being declared dead";
}

TEST_P(PresenceDirectoryConformance, OverdueGracePeriodsAreEndedBySweep) {
  dir().heartbeat(1, kT0, 60'000ms);
  dir().set_count(12, 1, 1, kT0, kGrace);
  ASSERT_NE(dir().set_count(12, 1, 0, kT0, kGrace).pending, 0U);  // its node never expires it
  EXPECT_TRUE(dir().sweep(kT0 + 5000 + 1000, 2000ms).empty()) << "within the slack";
  const auto off = dir().sweep(kT0 + 5000 + 2001, 2000ms);
  ASSERT_EQ(off.size(), 1U);
  EXPECT_EQ(off[0].user, 12);
  EXPECT_FALSE(dir().status(12)->online);
  EXPECT_TRUE(dir().sweep(kT0 + 60'000, 2000ms).empty());
}

TEST_P(PresenceDirectoryConformance, RestartedNodeForgetsItsDevicesWithoutFlapping) {
  dir().heartbeat(1, kT0, 60'000ms);
  dir().set_count(13, 1, 1, kT0, kGrace);
  dir().set_count(14, 1, 1, kT0, kGrace);
  dir().reset_node(1, kT0 + 100, kGrace);
  EXPECT_TRUE(dir().status(13)->online) << "in grace after the restart";
  // User 13 reconnects to the restarted node: no transition.
  EXPECT_FALSE(dir().set_count(13, 1, 1, kT0 + 200, kGrace).went_online);
  // User 14 does not come back: offline once the grace period is overdue.
  const auto off = dir().sweep(kT0 + 100 + 5000 + 2001, 2000ms);
  ASSERT_EQ(off.size(), 1U);
  EXPECT_EQ(off[0].user, 14);
  EXPECT_TRUE(dir().status(13)->online);
}

TEST_P(PresenceDirectoryConformance, StatusesAnswerManyUsersInOrderInOneCall) {
  dir().set_count(1, 1, 1, kT0, kGrace);
  dir().set_count(2, 1, 1, kT0, kGrace);
  const auto pending = dir().set_count(2, 1, 0, kT0 + 10, kGrace).pending;
  ASSERT_NE(pending, 0U);
  ASSERT_EQ(dir().expire(2, pending, kT0 + 5'010), kT0 + 5'010);
  const auto s = dir().statuses({3, 1, 2, 1});
  ASSERT_EQ(s.size(), 4U);
  EXPECT_FALSE(s[0].has_value()) << "unknown";
  ASSERT_TRUE(s[1].has_value());
  EXPECT_TRUE(s[1]->online);
  ASSERT_TRUE(s[2].has_value());
  EXPECT_FALSE(s[2]->online);
  EXPECT_EQ(s[2]->last_seen, kT0 + 5'010);
  ASSERT_TRUE(s[3].has_value());
  EXPECT_TRUE(s[3]->online);
  for (chat::domain::UserId u : {1, 2, 3}) {
    const auto one = dir().status(u);
    const auto many = dir().statuses({u});
    ASSERT_EQ(many.size(), 1U);
    ASSERT_EQ(one.has_value(), many[0].has_value()) << u;
    if (one) {
      EXPECT_EQ(one->online, many[0]->online);
      EXPECT_EQ(one->last_seen, many[0]->last_seen);
    }
  }
  EXPECT_TRUE(dir().statuses({}).empty());
  EXPECT_THROW(dir().statuses(std::vector<chat::domain::UserId>(PresenceDirectory::kMaxStatusBatch + 1, 1)),
               std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Backends,
                         PresenceDirectoryConformance,
                         ::testing::Values(std::string("local"), std::string("redis")),
                         param_name);

TEST(RedisPresenceDirectory, UnreachableThrowsAndRecovers) {
  chat::test::RedisProcess redis;
  RedisClient client(chat::test::client_options(redis.url()));
  chat::presence::RedisPresenceDirectory dir(client, chat::test::unique_prefix());
  EXPECT_TRUE(dir.set_count(1, 1, 1, kT0, kGrace).went_online);
  redis.stop();
  EXPECT_THROW(dir.set_count(1, 1, 0, kT0, kGrace), RedisUnavailable);
  EXPECT_THROW((void)dir.status(1), RedisUnavailable);
  redis.start();  // empty (no persistence): nodes re-report what they hold
  EXPECT_TRUE(chat::test::eventually([&] {
    try {
      return dir.set_count(1, 1, 1, kT0, kGrace).went_online;
    } catch (const RedisUnavailable&) {
      return false;
    }
  }));
}

TEST(RedisPresenceDirectory, OfflineHashesExpireAndAMissingHashIsNeverOnline) {
  CHATD_REQUIRE_REDIS(url);
  RedisClient client(chat::test::client_options(url));
  const auto prefix = chat::test::unique_prefix();
  chat::presence::RedisPresenceDirectory dir(client, prefix, 1'500ms);
  const auto key = prefix + "u:7";
  const auto pttl = [&] { return client.command({"PTTL", key}).integer; };
  EXPECT_TRUE(dir.set_count(7, 1, 1, kT0, kGrace).went_online);
  EXPECT_EQ(pttl(), -1) << "online: kept";
  const auto g = dir.set_count(7, 1, 0, kT0, kGrace).pending;
  ASSERT_NE(g, 0U);
  EXPECT_EQ(pttl(), -1) << "grace period: kept";
  ASSERT_EQ(dir.expire(7, g, kT0 + 5'000), kT0 + 5'000);
  EXPECT_GT(pttl(), 0) << "offline: expires";
  ASSERT_TRUE(chat::test::eventually([&] { return !dir.status(7).has_value(); }));
  EXPECT_EQ(client.command({"EXISTS", key}).integer, 0);
  EXPECT_FALSE(dir.statuses({7})[0].has_value()) << "unknown (the store answers), not online";
  // Nothing recreates it as online: a dead node's sweep, a node reset, a stale disconnect.
  dir.heartbeat(1, kT0, 1ms);
  EXPECT_TRUE(dir.sweep(kT0 + 60'000, 0ms).empty());
  dir.reset_node(1, kT0 + 60'000, kGrace);
  dir.set_count(7, 1, 0, kT0 + 60'000, kGrace);
  EXPECT_FALSE(dir.status(7).has_value());
  EXPECT_EQ(client.command({"EXISTS", key}).integer, 0);
  // A returning user recreates it, without a TTL while online.
  EXPECT_TRUE(dir.set_count(7, 2, 1, kT0 + 70'000, kGrace).went_online);
  EXPECT_EQ(pttl(), -1);
  ASSERT_TRUE(dir.status(7).has_value());
  EXPECT_TRUE(dir.status(7)->online);
  // Offline through a dead node's sweep: the hash expires too.
  dir.heartbeat(2, kT0 + 70'000, 1'000ms);
  const auto off = dir.sweep(kT0 + 80'000, 0ms);
  ASSERT_EQ(off.size(), 1U);
  EXPECT_EQ(off[0].user, 7);
  EXPECT_GT(pttl(), 0);
  // A hash left without a TTL by an older version gets one at the next report of the user.
  client.command({"HSET", prefix + "u:8", "on", "0", "ls", "5"});
  dir.set_count(8, 1, 0, kT0, kGrace);
  EXPECT_GT(client.command({"PTTL", prefix + "u:8"}).integer, 0);
}

TEST(RedisClient, ScriptsRunBySha1AndAreLoadedAgainAfterAFlushOrARestart) {
  chat::test::RedisProcess redis;
  RedisClient client(chat::test::client_options(redis.url()));
  const std::string script = "return ARGV[1] .. KEYS[1]";
  EXPECT_EQ(client.eval(script, {"k"}, {"v"}).str, "vk");
  EXPECT_EQ(client.eval(script, {"k"}, {"w"}).str, "wk");
  EXPECT_EQ(client.script_loads(), 1U) << "the body is sent once";
  const auto stats = client.command({"INFO", "commandstats"}).str;
  EXPECT_NE(stats.find("cmdstat_evalsha:calls=2"), std::string::npos) << stats;
  EXPECT_EQ(stats.find("cmdstat_eval:"), std::string::npos) << "no EVAL: " << stats;
  client.command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(client.eval(script, {"k"}, {"x"}).str, "xk") << "NOSCRIPT: loaded again";
  EXPECT_EQ(client.script_loads(), 2U);
  redis.stop();
  redis.start();  // a fresh server, without the script
  EXPECT_TRUE(chat::test::eventually([&] {
    try {
      return client.eval(script, {"k"}, {"y"}).str == "yk";
    } catch (const RedisUnavailable&) {
      return false;
    }
  }));
  EXPECT_EQ(client.script_loads(), 3U);
  EXPECT_EQ(client.eval("return 1 +", {}, {}).type, chat::bus::redis::Reply::Type::error)
      << "a script that does not compile is an error reply, not a crash";
}

// ---------------------------------------------------------------------------------------------
// Presence trackers of two nodes over one directory, publishing to a recording Bus.

class RecordingBus final : public chat::bus::Bus {
 public:
  void publish(std::vector<chat::domain::UserId>, chat::gateway::SharedFrame, std::uint64_t) override {}
  void revoke_session(chat::domain::UserId, chat::domain::SessionId) override {}
  void publish_to_watchers(chat::domain::UserId subject, chat::gateway::SharedFrame frame) override {
    std::lock_guard lock(mutex);
    frames.emplace_back(subject, *frame);
  }
  std::vector<std::pair<chat::domain::UserId, std::string>> snapshot() {
    std::lock_guard lock(mutex);
    return frames;
  }
  std::mutex mutex;
  std::vector<std::pair<chat::domain::UserId, std::string>> frames;
};

chat::domain::TimeMs wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Awaits tracker.statuses(users) from a coroutine on a private io_context run by this thread.
struct StatusesCall {
  std::vector<std::optional<chat::presence::Status>> result;
  std::thread::id resumed_on;
};
StatusesCall await_statuses(chat::presence::PresenceTracker& tracker,
                            std::vector<chat::domain::UserId> users) {
  chat::net::io_context io;
  StatusesCall call;
  chat::net::co_spawn(
      io,
      [&tracker, &call, users]() -> chat::net::awaitable<void> {
        auto op = tracker.statuses(users);
        call.result = co_await std::move(op);
        call.resumed_on = std::this_thread::get_id();
      },
      chat::net::detached);
  io.run();
  return call;
}

std::size_t count_frames(RecordingBus& bus, const std::string& needle) {
  std::size_t n = 0;
  for (const auto& [subject, frame] : bus.snapshot())
    if (frame.find(needle) != std::string::npos) ++n;
  return n;
}

class PresenceTrackerCluster : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "local") {
      dir_ = std::make_unique<chat::presence::LocalPresenceDirectory>();
    } else {
      CHATD_REQUIRE_REDIS(url);
      client_ = std::make_unique<RedisClient>(chat::test::client_options(url));
      dir_ = std::make_unique<chat::presence::RedisPresenceDirectory>(*client_, chat::test::unique_prefix());
    }
  }
  std::unique_ptr<chat::presence::PresenceTracker> node(std::uint32_t id, RecordingBus& bus) {
    chat::presence::PresenceTracker::Options o;
    o.grace = 300ms;
    o.node_id = id;
    o.remote = true;
    o.heartbeat = 100ms;
    o.node_ttl = 500ms;
    o.sweep_slack = 200ms;
    auto t = std::make_unique<chat::presence::PresenceTracker>(
        timers_, bus, *dir_, o, wall_ms,
        [this](chat::domain::UserId, chat::domain::TimeMs) { ++last_seen_writes_; });
    t->start();
    return t;
  }

  chat::net::io_context timers_;
  std::unique_ptr<RedisClient> client_;
  std::unique_ptr<PresenceDirectory> dir_;
  std::atomic<int> last_seen_writes_{0};
};

TEST_P(PresenceTrackerCluster, MoveBetweenNodesWithinGracePublishesNothing) {
  RecordingBus bus1;
  RecordingBus bus2;
  auto n1 = node(1, bus1);
  auto n2 = node(2, bus2);
  n1->connected(5);
  ASSERT_TRUE(chat::test::eventually([&] { return count_frames(bus1, "\"status\":\"online\"") == 1; }));
  n1->disconnected(5);
  n2->connected(5);
  ASSERT_TRUE(chat::test::eventually([&] { return n2->status(5) && n2->status(5)->online; }));
  std::this_thread::sleep_for(800ms);  // past the grace period and the sweep slack
  EXPECT_EQ(count_frames(bus1, "\"status\":\"offline\"") + count_frames(bus2, "\"status\":\"offline\""), 0U);
  EXPECT_EQ(count_frames(bus2, "\"status\":\"online\""), 0U) << "no second online frame";
  EXPECT_EQ(last_seen_writes_.load(), 0);
  n2->disconnected(5);
  ASSERT_TRUE(chat::test::eventually([&] {
    return count_frames(bus1, "\"status\":\"offline\"") + count_frames(bus2, "\"status\":\"offline\"") == 1;
  }));
  EXPECT_TRUE(chat::test::eventually([&] { return last_seen_writes_.load() == 1; }));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(last_seen_writes_.load(), 1) << "last_seen written once per offline transition";
}

TEST_P(PresenceTrackerCluster, StoppedNodeUsersGoOfflineThroughSurvivors) {
  RecordingBus bus1;
  RecordingBus bus2;
  auto n1 = node(1, bus1);
  auto n2 = node(2, bus2);
  n1->connected(6);
  ASSERT_TRUE(chat::test::eventually([&] { return n2->status(6) && n2->status(6)->online; }));
  n1->stop();  // like kill -9: no disconnect reported, no more heartbeats
  ASSERT_TRUE(chat::test::eventually([&] { return count_frames(bus2, "\"status\":\"offline\"") == 1; }));
  EXPECT_FALSE(n2->status(6)->online);
}

TEST_P(PresenceTrackerCluster, StatusesOfManyUsersInOneAwaitableCall) {
  RecordingBus bus1;
  RecordingBus bus2;
  auto n1 = node(1, bus1);
  auto n2 = node(2, bus2);
  n1->connected(8);
  ASSERT_TRUE(chat::test::eventually([&] { return n2->status(8) && n2->status(8)->online; }));
  const auto call = await_statuses(*n2, {8, 12345, 8});
  EXPECT_EQ(call.resumed_on, std::this_thread::get_id()) << "resumed on the caller's executor";
  ASSERT_EQ(call.result.size(), 3U);
  ASSERT_TRUE(call.result[0].has_value());
  EXPECT_TRUE(call.result[0]->online) << "a device on another node";
  EXPECT_FALSE(call.result[1].has_value());
  ASSERT_TRUE(call.result[2].has_value());
  EXPECT_TRUE(await_statuses(*n2, {}).result.empty());
}

TEST_P(PresenceTrackerCluster, NodeDeclaredDeadAfterAStallReportsItsDevicesAgain) {
  RecordingBus bus1;
  auto n1 = node(1, bus1);
  n1->connected(9);
  ASSERT_TRUE(chat::test::eventually([&] { return n1->status(9) && n1->status(9)->online; }));
  // Another node's sweep sees node 1 lapsed (as after a stall longer than the node TTL).
  const auto off = dir_->sweep(wall_ms() + 60'000, 200ms);
  ASSERT_EQ(off.size(), 1U) << "went offline";
  // Node 1's next heartbeat finds itself unregistered and reports its device again.
  EXPECT_TRUE(chat::test::eventually([&] { return dir_->status(9) && dir_->status(9)->online; }));
}

INSTANTIATE_TEST_SUITE_P(Backends,
                         PresenceTrackerCluster,
                         ::testing::Values(std::string("local"), std::string("redis")),
                         param_name);

// A directory that records which threads its lookups ran on (cluster mode runs them on the
// presence thread, never on the awaiting I/O thread); otherwise the in-process one.
class RecordingDirectory final : public PresenceDirectory {
 public:
  Update set_count(chat::domain::UserId user,
                   NodeId node,
                   int count,
                   chat::domain::TimeMs now,
                   std::chrono::milliseconds grace) override {
    return inner.set_count(user, node, count, now, grace);
  }
  std::optional<chat::domain::TimeMs> expire(chat::domain::UserId user,
                                             std::uint64_t generation,
                                             chat::domain::TimeMs now) override {
    return inner.expire(user, generation, now);
  }
  std::optional<chat::presence::Status> status(chat::domain::UserId user) override {
    ++single_lookups;
    return inner.status(user);
  }
  std::vector<std::optional<chat::presence::Status>> statuses(
      const std::vector<chat::domain::UserId>& users) override {
    {
      std::lock_guard lock(mutex);
      threads.push_back(std::this_thread::get_id());
    }
    return inner.statuses(users);
  }
  bool heartbeat(NodeId node, chat::domain::TimeMs now, std::chrono::milliseconds ttl) override {
    return inner.heartbeat(node, now, ttl);
  }
  std::vector<WentOffline> sweep(chat::domain::TimeMs now, std::chrono::milliseconds slack) override {
    return inner.sweep(now, slack);
  }
  void reset_node(NodeId node, chat::domain::TimeMs now, std::chrono::milliseconds grace) override {
    inner.reset_node(node, now, grace);
  }

  chat::presence::LocalPresenceDirectory inner;
  std::mutex mutex;
  std::vector<std::thread::id> threads;
  std::atomic<int> single_lookups{0};
};

TEST(PresenceTracker, ClusterModeLooksStatusesUpOnThePresenceThreadInOneCall) {
  RecordingDirectory dir;
  chat::net::io_context timers;
  RecordingBus bus;
  chat::presence::PresenceTracker::Options o;
  o.node_id = 1;
  o.remote = true;
  chat::presence::PresenceTracker tracker(timers, bus, dir, o, wall_ms, nullptr);
  tracker.start();
  std::vector<chat::domain::UserId> users;
  for (chat::domain::UserId u = 1; u <= 500; ++u) users.push_back(u);  // the protocol's maximum
  const auto call = await_statuses(tracker, users);
  EXPECT_EQ(call.result.size(), 500U);
  EXPECT_EQ(call.resumed_on, std::this_thread::get_id());
  std::lock_guard lock(dir.mutex);
  ASSERT_EQ(dir.threads.size(), 1U) << "one batched lookup";
  EXPECT_NE(dir.threads[0], std::this_thread::get_id()) << "not on the awaiting thread";
  EXPECT_EQ(dir.single_lookups.load(), 0);
  tracker.stop();
}

TEST(RedisPresenceTracker, RedisOutageThenRecoveryRestoresPresence) {
  chat::test::RedisProcess redis;
  RedisClient client(chat::test::client_options(redis.url()));
  chat::presence::RedisPresenceDirectory dir(client, chat::test::unique_prefix());
  chat::net::io_context timers;
  RecordingBus bus;
  chat::presence::PresenceTracker::Options o;
  o.grace = 300ms;
  o.node_id = 1;
  o.remote = true;
  o.heartbeat = 100ms;
  chat::presence::PresenceTracker tracker(timers, bus, dir, o, wall_ms, nullptr);
  tracker.start();
  tracker.connected(3);
  ASSERT_TRUE(chat::test::eventually([&] { return count_frames(bus, "\"status\":\"online\"") == 1; }));
  redis.stop();
  tracker.connected(4);  // while Redis is away
  EXPECT_TRUE(chat::test::eventually([&] { return tracker.status(4) && tracker.status(4)->online; }))
      << "answers from this node's devices";
  {
    const auto call = await_statuses(tracker, {4, 3, 99});
    ASSERT_EQ(call.result.size(), 3U);
    EXPECT_TRUE(call.result[0] && call.result[0]->online) << "batched lookups fall back too";
    EXPECT_TRUE(call.result[1] && call.result[1]->online);
    EXPECT_FALSE(call.result[2].has_value()) << "unknown: the store answers";
  }
  redis.start();  // empty: the tracker re-reports both users
  ASSERT_TRUE(chat::test::eventually([&] {
    try {
      const auto s3 = dir.status(3);
      const auto s4 = dir.status(4);
      return s3 && s3->online && s4 && s4->online;
    } catch (const RedisUnavailable&) {
      return false;
    }
  }));
  tracker.stop();
}

// ---------------------------------------------------------------------------------------------
// Auth rate limiter

class RateLimiterConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "redis") {
      CHATD_REQUIRE_REDIS(url);
      url_ = url;
      prefix_ = chat::test::unique_prefix();
    }
  }
  // One "node"'s limiter; on Redis every node shares the buckets.
  std::shared_ptr<chat::domain::RateLimiter> limiter(double per_minute, double burst) {
    if (GetParam() == "local") return std::make_shared<chat::domain::LocalRateLimiter>(per_minute, burst);
    clients_.push_back(std::make_unique<RedisClient>(chat::test::client_options(url_)));
    return std::make_shared<chat::bus::redis::RedisRateLimiter>(*clients_.back(), prefix_, per_minute, burst);
  }
  std::string url_;
  std::string prefix_;
  std::vector<std::unique_ptr<RedisClient>> clients_;
};

TEST_P(RateLimiterConformance, BurstThenRefusalWithRetryAfterThenRefill) {
  auto l = limiter(60, 3);  // one per second, three at once
  std::chrono::milliseconds wait{0};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l->try_take("ip:1", kT0, &wait)) << i;
  EXPECT_FALSE(l->try_take("ip:1", kT0, &wait));
  EXPECT_GT(wait.count(), 0);
  EXPECT_LE(wait.count(), 1000);
  EXPECT_FALSE(l->try_take("ip:1", kT0 + 500, &wait));
  EXPECT_TRUE(l->try_take("ip:1", kT0 + 1000, &wait));
  EXPECT_FALSE(l->try_take("ip:1", kT0 + 1000, &wait));
  // A long pause refills to the burst, not beyond.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l->try_take("ip:1", kT0 + 600'000, &wait)) << i;
  EXPECT_FALSE(l->try_take("ip:1", kT0 + 600'000, &wait));
}

TEST_P(RateLimiterConformance, KeysAreIndependent) {
  auto l = limiter(10, 1);
  std::chrono::milliseconds wait{0};
  EXPECT_TRUE(l->try_take("a", kT0, &wait));
  EXPECT_FALSE(l->try_take("a", kT0, &wait));
  EXPECT_TRUE(l->try_take("b", kT0, &wait));
}

TEST_P(RateLimiterConformance, HighRatesWork) {
  auto l = limiter(100'000, 100'000);
  std::chrono::milliseconds wait{0};
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(l->try_take("busy", kT0, &wait)) << i;
}

INSTANTIATE_TEST_SUITE_P(Backends,
                         RateLimiterConformance,
                         ::testing::Values(std::string("local"), std::string("redis")),
                         param_name);

TEST(RedisRateLimiter, SharedByEveryNode) {
  CHATD_REQUIRE_REDIS(url);
  RedisClient c1(chat::test::client_options(url));
  RedisClient c2(chat::test::client_options(url));
  const auto prefix = chat::test::unique_prefix();
  chat::bus::redis::RedisRateLimiter node1(c1, prefix, 10, 10);
  chat::bus::redis::RedisRateLimiter node2(c2, prefix, 10, 10);
  std::chrono::milliseconds wait{0};
  int allowed = 0;
  for (int i = 0; i < 10; ++i) {
    allowed += node1.try_take("alice", kT0, &wait) ? 1 : 0;
    allowed += node2.try_take("alice", kT0, &wait) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 10) << "one bucket for the cluster, not one per node";
}

TEST(RedisRateLimiter, FallsBackToLocalBucketsWhileRedisIsAwayAndRecovers) {
  chat::test::RedisProcess redis;
  RedisClient client(chat::test::client_options(redis.url()));
  chat::bus::redis::RedisRateLimiter l(client, chat::test::unique_prefix(), 60, 2);
  std::chrono::milliseconds wait{0};
  EXPECT_TRUE(l.try_take("k", kT0, &wait));
  EXPECT_FALSE(l.degraded());
  redis.stop();
  EXPECT_TRUE(l.try_take("k", kT0, &wait)) << "a fresh local bucket";
  EXPECT_TRUE(l.degraded());
  EXPECT_TRUE(l.try_take("k", kT0, &wait));
  EXPECT_FALSE(l.try_take("k", kT0, &wait)) << "the local bucket still limits";
  redis.start();
  EXPECT_TRUE(chat::test::eventually([&] {
    (void)l.try_take("other", kT0, &wait);
    return !l.degraded();
  }));
}

// ---------------------------------------------------------------------------------------------
// Token revocation: two nodes' caches; a revocation on node A reaches node B's cache.

struct CacheNode {
  explicit CacheNode(std::chrono::milliseconds ttl = 60'000ms) : cache({1000, ttl}) {}
  chat::auth::TokenCache cache;
};

// Two nodes wired through Redis pub/sub (RedisBus invalidations), as app/main.cpp does.
struct RedisNodes {
  RedisNodes(const std::string& url, const std::string& channel) : hub({&io}) {
    chat::bus::redis::RedisBus::Options o;
    chat::bus::redis::parse_redis_url(url, o.host, o.port);
    o.channel = channel;
    o.node_id = 1;
    bus_a = std::make_unique<chat::bus::redis::RedisBus>(hub, o);
    o.node_id = 2;
    bus_b = std::make_unique<chat::bus::redis::RedisBus>(hub, o);
    wire(*bus_a, a);
    wire(*bus_b, b);
    bus_a->start();
    bus_b->start();
  }
  ~RedisNodes() {
    bus_a->stop();
    bus_b->stop();
  }
  static void wire(chat::bus::redis::RedisBus& bus, CacheNode& node) {
    node.cache.set_enabled(false);
    auto* cache = &node.cache;
    bus.on_invalidate = [cache](chat::domain::SessionId s) { cache->invalidate_session(s); };
    bus.on_subscription = [cache](bool up) { cache->set_enabled(up); };
    cache->set_broadcast([&bus](chat::domain::SessionId s) { bus.invalidate_tokens(s); });
  }
  chat::net::io_context io;
  chat::gateway::Hub hub;
  CacheNode a;
  CacheNode b;
  std::unique_ptr<chat::bus::redis::RedisBus> bus_a;
  std::unique_ptr<chat::bus::redis::RedisBus> bus_b;
};

class TokenRevocationConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "local") {
      // Embedded mode: one node, revocations invalidate in process.
      local_ = std::make_unique<CacheNode>();
      a_ = b_ = &local_->cache;
      return;
    }
    CHATD_REQUIRE_REDIS(url);
    redis_ = std::make_unique<RedisNodes>(url, chat::test::unique_prefix() + "events");
    a_ = &redis_->a.cache;
    b_ = &redis_->b.cache;
    ASSERT_TRUE(chat::test::eventually([&] { return a_->enabled() && b_->enabled(); }))
        << "enabled once subscribed";
  }
  std::unique_ptr<CacheNode> local_;
  std::unique_ptr<RedisNodes> redis_;
  chat::auth::TokenCache* a_ = nullptr;
  chat::auth::TokenCache* b_ = nullptr;
};

TEST_P(TokenRevocationConformance, RevocationOnOneNodeInvalidatesEveryNode) {
  const auto now = chat::auth::TokenCache::Clock::now();
  const chat::domain::AuthContext alice{1, 100, 1000};
  const chat::domain::AuthContext bob{2, 200, 2000};
  a_->insert("hash-a", alice, a_->epoch(), now);
  b_->insert("hash-a", alice, b_->epoch(), now);
  b_->insert("hash-b", bob, b_->epoch(), now);
  ASSERT_TRUE(b_->find("hash-a", now, kT0).has_value());
  a_->revoke_session(100);
  EXPECT_FALSE(a_->find("hash-a", now, kT0).has_value());
  EXPECT_TRUE(chat::test::eventually([&] { return !b_->find("hash-a", now, kT0).has_value(); }, 1000ms))
      << "within 1 s on the other node";
  EXPECT_TRUE(b_->find("hash-b", now, kT0).has_value()) << "other sessions stay cached";
}

TEST_P(TokenRevocationConformance, ReadBeforeARevocationIsNotCachedAfterIt) {
  const auto now = chat::auth::TokenCache::Clock::now();
  const auto epoch = b_->epoch();  // a store read starts on node B
  a_->revoke_session(300);         // the session is revoked meanwhile
  ASSERT_TRUE(chat::test::eventually([&] { return b_->epoch() != epoch; }, 1000ms));
  b_->insert("hash-c", chat::domain::AuthContext{3, 300, 3000}, epoch, now);  // the stale read ends
  EXPECT_FALSE(b_->find("hash-c", now, kT0).has_value());
}

INSTANTIATE_TEST_SUITE_P(Backends,
                         TokenRevocationConformance,
                         ::testing::Values(std::string("local"), std::string("redis")),
                         param_name);

TEST(TokenCache, EntriesExpireAndTheCacheIsBounded) {
  chat::auth::TokenCache cache({3, 1000ms});
  const auto t = chat::auth::TokenCache::Clock::now();
  for (int i = 0; i < 10; ++i) {
    std::string key = std::to_string(i);  // not "h" + ...: GCC 12 -Wrestrict false positive at -O3
    key.insert(key.begin(), 'h');
    cache.insert(key, chat::domain::AuthContext{i, i, i}, cache.epoch(), t);
  }
  EXPECT_LE(cache.size(), 3U);
  cache.insert("x", chat::domain::AuthContext{1, 1, 1}, cache.epoch(), t);
  EXPECT_TRUE(cache.find("x", t + 999ms, kT0).has_value());
  EXPECT_FALSE(cache.find("x", t + 1000ms, kT0).has_value());
  cache.set_enabled(false);
  cache.insert("y", chat::domain::AuthContext{1, 1, 1}, cache.epoch(), t);
  EXPECT_FALSE(cache.find("y", t, kT0).has_value()) << "disabled: bypassed";
}

TEST(TokenCache, NeverServesAnEntryPastItsTokenExpiry) {
  // The cache TTL (60 s) outlives the token (1 s left): the token's own expiry wins.
  chat::auth::TokenCache cache({10, 60'000ms});
  const auto t = chat::auth::TokenCache::Clock::now();
  const chat::domain::AuthContext auth{1, 1, 1, kT0 + 1'000};
  cache.insert("h", auth, cache.epoch(), t);
  const auto hit = cache.find("h", t, kT0 + 999);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->access_expires_at, kT0 + 1'000);
  EXPECT_FALSE(cache.find("h", t + 1ms, kT0 + 1'000).has_value()) << "expired at access_expires_at";
  EXPECT_FALSE(cache.find("h", t + 1ms, kT0 + 999).has_value()) << "dropped, not hidden";
  EXPECT_EQ(cache.size(), 0U);
}

TEST(RedisTokenRevocation, SubscriptionDownDisablesTheCacheUntilResubscribed) {
  chat::test::RedisProcess redis;
  RedisNodes nodes(redis.url(), "chatd_t:events");
  auto& b = nodes.b.cache;
  ASSERT_TRUE(chat::test::eventually([&] { return b.enabled(); }));
  const auto now = chat::auth::TokenCache::Clock::now();
  b.insert("hash", chat::domain::AuthContext{1, 1, 1}, b.epoch(), now);
  ASSERT_TRUE(b.find("hash", now, kT0).has_value());
  redis.stop();
  ASSERT_TRUE(chat::test::eventually([&] { return !b.enabled(); })) << "the subscription dropped";
  EXPECT_FALSE(b.find("hash", now, kT0).has_value()) << "cleared: a missed revocation is never served";
  b.insert("hash", chat::domain::AuthContext{1, 1, 1}, b.epoch(), now);
  EXPECT_FALSE(b.find("hash", now, kT0).has_value()) << "bypassed while down";
  // A revocation made on node A while Redis is down reaches B once both are back.
  nodes.a.cache.revoke_session(7);
  redis.start();
  ASSERT_TRUE(chat::test::eventually([&] { return b.enabled() && nodes.a.cache.enabled(); }));
  b.insert("hash7", chat::domain::AuthContext{7, 7, 7}, b.epoch(), now);
  // Queued invalidations are published after the publisher reconnects, which may be before or
  // after B resubscribed; a fresh revocation after both are up must arrive.
  nodes.a.cache.revoke_session(7);
  EXPECT_TRUE(chat::test::eventually([&] { return !b.find("hash7", now, kT0).has_value(); }, 2000ms));
}

}  // namespace
