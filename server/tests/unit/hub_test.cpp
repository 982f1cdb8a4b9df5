// gateway::Hub across two shards: two io_contexts, each run by its own thread, as in the server.
// FakeConnection is a test double of our own gateway::Connection interface: it records what the hub
// hands it. Synchronisation without timing: jobs posted to one io_context run in order, so a no-op
// posted to every shard after a publish runs after that publish's deliveries (see drain()).

#include "gateway/hub.hpp"

#include "gateway/connection.hpp"
#include "net/post_batch.hpp"

#include <boost/asio/executor_work_guard.hpp>

#include <atomic>
#include <functional>
#include <future>
#include <gtest/gtest.h>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = chat::net;
using chat::domain::SessionId;
using chat::domain::UserId;
using chat::gateway::Hub;
using chat::gateway::SharedFrame;

class FakeConnection final : public chat::gateway::Connection {
 public:
  FakeConnection(std::uint64_t id, SessionId session) : id_(id), session_(session) {}

  void deliver(SharedFrame frame, chat::gateway::Urgency urgency) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mutex_);
      frames_.push_back(*frame);
      urgencies_.push_back(urgency);
      thread_ = std::this_thread::get_id();
      hook = on_deliver;
    }
    if (hook) hook();
  }
  void close_with(std::uint16_t code, std::string_view reason) override {
    std::lock_guard lock(mutex_);
    closes_.push_back(code);
    reason_ = std::string(reason);
  }
  std::uint64_t connection_id() const noexcept override { return id_; }
  SessionId session_id() const noexcept override { return session_; }

  std::vector<std::string> frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  std::vector<std::uint16_t> closes() const {
    std::lock_guard lock(mutex_);
    return closes_;
  }
  std::vector<chat::gateway::Urgency> urgencies() const {
    std::lock_guard lock(mutex_);
    return urgencies_;
  }
  std::string reason() const {
    std::lock_guard lock(mutex_);
    return reason_;
  }
  std::thread::id delivery_thread() const {
    std::lock_guard lock(mutex_);
    return thread_;
  }

  std::function<void()> on_deliver;  // set before attaching; runs on the shard thread

 private:
  std::uint64_t id_;
  SessionId session_;
  mutable std::mutex mutex_;
  std::vector<std::string> frames_;
  std::vector<chat::gateway::Urgency> urgencies_;
  std::vector<std::uint16_t> closes_;
  std::string reason_;
  std::thread::id thread_;
};

SharedFrame frame(std::string text) {
  return std::make_shared<const std::string>(std::move(text));
}

class HubTest : public ::testing::Test {
 protected:
  HubTest() : hub_({&shards_[0], &shards_[1]}) {
    hub_.on_delivered = [this](std::size_t n) { delivered_ += n; };
    for (std::size_t i = 0; i < 2; ++i) {
      threads_[i] = std::thread([this, i] { shards_[i].run(); });
      thread_ids_[i] = threads_[i].get_id();
    }
  }

  ~HubTest() override {
    for (auto& w : work_) w.reset();
    for (auto& t : threads_) t.join();
  }

  // Runs `fn` on the thread of `shard` and waits for it.
  void on_shard(std::size_t shard, std::function<void()> fn) {
    std::promise<void> done;
    net::post(shards_[shard], [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // Waits until every job posted to the shards so far has run.
  void drain() {
    for (std::size_t i = 0; i < 2; ++i) on_shard(i, [] {});
  }

  std::shared_ptr<FakeConnection> connect(std::size_t shard,
                                          UserId user,
                                          std::uint64_t id,
                                          SessionId session) {
    auto c = std::make_shared<FakeConnection>(id, session);
    on_shard(shard, [&] { hub_.attach(shard, user, c); });
    return c;
  }

  net::io_context shards_[2];
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work_ = {
      net::make_work_guard(shards_[0]), net::make_work_guard(shards_[1])};
  Hub hub_;
  std::thread threads_[2];
  std::thread::id thread_ids_[2];
  std::atomic<std::size_t> delivered_{0};
};

constexpr UserId kAlice = 1;
constexpr UserId kBob = 2;
constexpr UserId kCarol = 3;

TEST_F(HubTest, PublishReachesRecipientsOnBothShardsExceptTheSender) {
  // Goal: a frame reaches every connection of every recipient, on both shards, on that shard's
  // thread; not the excepted connection and not other users. Method: alice on both shards, bob on
  // shard 1, carol on shard 0; publish to alice and bob except alice's shard-0 connection.
  EXPECT_EQ(hub_.shard_count(), 2U);
  auto alice0 = connect(0, kAlice, 1, 100);
  auto alice1 = connect(1, kAlice, 2, 101);
  auto bob1 = connect(1, kBob, 3, 200);
  auto carol0 = connect(0, kCarol, 4, 300);
  hub_.publish({kAlice, kBob}, frame("m1"), /*except_connection=*/1);
  drain();
  EXPECT_TRUE(alice0->frames().empty());
  EXPECT_EQ(alice1->frames(), (std::vector<std::string>{"m1"}));
  EXPECT_EQ(bob1->frames(), (std::vector<std::string>{"m1"}));
  EXPECT_TRUE(carol0->frames().empty());
  EXPECT_EQ(alice1->delivery_thread(), thread_ids_[1]);
  EXPECT_EQ(bob1->delivery_thread(), thread_ids_[1]);
  EXPECT_EQ(delivered_.load(), 2U);

  // Without an exception (0) the sending connection gets it too; unknown recipients are ignored.
  hub_.publish({kAlice, 999}, frame("m2"));
  drain();
  EXPECT_EQ(alice0->frames(), (std::vector<std::string>{"m2"}));
  EXPECT_EQ(alice0->delivery_thread(), thread_ids_[0]);
  EXPECT_EQ(alice1->frames(), (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(delivered_.load(), 4U);
  EXPECT_TRUE(alice0->closes().empty());
}

TEST_F(HubTest, FramesPublishedFromOneThreadArriveInOrder) {
  // Goal: frames published in order by one thread (the store writer) arrive in that order at every
  // connection on every shard. Method: a separate thread publishes 2000 numbered frames to two
  // users with connections on both shards.
  std::vector<std::shared_ptr<FakeConnection>> conns = {connect(0, kAlice, 1, 100),
                                                        connect(1, kAlice, 2, 101), connect(0, kBob, 3, 200),
                                                        connect(1, kBob, 4, 201)};
  constexpr int kFrames = 2000;
  std::thread writer([this] {
    for (int i = 0; i < kFrames; ++i) hub_.publish({kAlice, kBob}, frame(std::to_string(i)));
  });
  writer.join();
  drain();
  for (const auto& c : conns) {
    const auto got = c->frames();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kFrames)) << "connection " << c->connection_id();
    for (int i = 0; i < kFrames; ++i) {
      ASSERT_EQ(got[static_cast<std::size_t>(i)], std::to_string(i)) << "connection " << c->connection_id();
    }
  }
  EXPECT_EQ(delivered_.load(), static_cast<std::size_t>(kFrames) * conns.size());
}

TEST_F(HubTest, RevokeSessionClosesOnlyThatSession) {
  // Goal: revoke_session closes every connection of that (user, session) with 4001 on every shard,
  // and nothing else. Method: alice's session 10 on both shards, her session 11, and bob.
  auto a10_0 = connect(0, kAlice, 1, 10);
  auto a10_1 = connect(1, kAlice, 2, 10);
  auto a11 = connect(1, kAlice, 3, 11);
  auto bob = connect(0, kBob, 4, 12);
  hub_.revoke_session(kAlice, 10);
  drain();
  EXPECT_EQ(a10_0->closes(), (std::vector<std::uint16_t>{4001}));
  EXPECT_EQ(a10_1->closes(), (std::vector<std::uint16_t>{4001}));
  EXPECT_EQ(a10_0->reason(), "session revoked");
  EXPECT_TRUE(a11->closes().empty());
  EXPECT_TRUE(bob->closes().empty());
  // A session of another user is matched by user too.
  hub_.revoke_session(kBob, 10);
  hub_.revoke_session(kCarol, 12);
  drain();
  EXPECT_TRUE(bob->closes().empty());
  EXPECT_EQ(a10_0->closes().size(), 1U);
}

TEST_F(HubTest, CloseAllClosesEverythingWith1001) {
  // Goal: close_all closes every connection on every shard with 1001. Method: four connections of
  // three users on two shards.
  std::vector<std::shared_ptr<FakeConnection>> conns = {connect(0, kAlice, 1, 10), connect(1, kAlice, 2, 11),
                                                        connect(1, kBob, 3, 12), connect(0, kCarol, 4, 13)};
  hub_.close_all();
  drain();
  for (const auto& c : conns) {
    EXPECT_EQ(c->closes(), (std::vector<std::uint16_t>{1001})) << c->connection_id();
    EXPECT_EQ(c->reason(), "server shutting down");
  }
}

TEST_F(HubTest, DetachRemovesAConnection) {
  // Goal: after detach, a connection gets nothing more while the user's other connections still
  // do; detaching unknown users or ids is harmless. Method: detach one of alice's two connections.
  auto keep = connect(0, kAlice, 1, 10);
  auto gone = connect(0, kAlice, 2, 11);
  on_shard(0, [&] {
    hub_.detach(0, kAlice, 2);
    hub_.detach(0, kAlice, 99);
    hub_.detach(0, kCarol, 1);
  });
  hub_.publish({kAlice}, frame("x"));
  drain();
  EXPECT_EQ(keep->frames(), (std::vector<std::string>{"x"}));
  EXPECT_TRUE(gone->frames().empty());
  // Detaching the last one forgets the user; publishing to them is a no-op.
  on_shard(0, [&] { hub_.detach(0, kAlice, 1); });
  hub_.publish({kAlice}, frame("y"));
  hub_.close_all();
  drain();
  EXPECT_EQ(keep->frames(), (std::vector<std::string>{"x"}));
  EXPECT_TRUE(keep->closes().empty());
  EXPECT_EQ(delivered_.load(), 1U);
}

TEST_F(HubTest, DestroyedConnectionIsSkipped) {
  // Goal: the hub holds weak_ptrs: a connection destroyed without detaching is skipped without a
  // crash by publish, revoke_session and close_all. Method: attach two, destroy one, use the hub.
  auto alive = connect(1, kAlice, 1, 10);
  auto doomed = connect(1, kAlice, 2, 10);
  doomed.reset();
  hub_.publish({kAlice}, frame("x"));
  hub_.revoke_session(kAlice, 10);
  drain();
  EXPECT_EQ(alive->frames(), (std::vector<std::string>{"x"}));
  EXPECT_EQ(alive->closes(), (std::vector<std::uint16_t>{4001}));
  EXPECT_EQ(delivered_.load(), 1U);
  // detach also sweeps the expired entry.
  on_shard(1, [&] { hub_.detach(1, kAlice, 1); });
  hub_.close_all();
  drain();
  EXPECT_EQ(alive->closes().size(), 1U);
}

TEST_F(HubTest, ConnectionDetachingItselfDuringDeliveryIsSafe) {
  // Goal: a connection that detaches itself while a frame is delivered (a slow consumer being
  // closed) does not disturb delivery to the user's other connections. Method: the first
  // connection's deliver() detaches it; publish twice.
  auto first = std::make_shared<FakeConnection>(1, 10);
  first->on_deliver = [this] { hub_.detach(0, kAlice, 1); };
  on_shard(0, [&] { hub_.attach(0, kAlice, first); });
  auto second = connect(0, kAlice, 2, 10);
  hub_.publish({kAlice}, frame("a"));
  hub_.publish({kAlice}, frame("b"));
  drain();
  EXPECT_EQ(first->frames(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(second->frames(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(HubTest, OnlyConnectionDetachingItselfDuringDeliveryIsSafe) {
  // Goal: the single-connection fast path (no copy of the list) survives the connection detaching
  // itself inside deliver(), which erases the user's entry from the map being walked. Method: bob's
  // only connection detaches itself on delivery; publish to alice and bob twice (ASan checks the
  // walk; alice still gets both frames).
  auto bob = std::make_shared<FakeConnection>(3, 30);
  bob->on_deliver = [this] { hub_.detach(0, kBob, 3); };
  on_shard(0, [&] { hub_.attach(0, kBob, bob); });
  auto alice = connect(0, kAlice, 1, 10);
  hub_.publish({kBob, kAlice}, frame("a"));
  hub_.publish({kBob, kAlice}, frame("b"));
  drain();
  EXPECT_EQ(bob->frames(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(alice->frames(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(HubTest, PresenceWatchersGetFramesUntilUnwatched) {
  // Goal: publish_to_watchers reaches every connection watching the subject, on both shards, and
  // no longer after unwatch; a destroyed watcher is skipped. Method: three watchers of alice.
  auto w0 = std::make_shared<FakeConnection>(1, 10);
  auto w1 = std::make_shared<FakeConnection>(2, 11);
  auto doomed = std::make_shared<FakeConnection>(3, 12);
  on_shard(0, [&] { hub_.watch(0, w0, {kAlice, kBob}); });
  on_shard(1, [&] {
    hub_.watch(1, w1, {kAlice});
    hub_.watch(1, doomed, {kAlice});
  });
  doomed.reset();
  hub_.publish_to_watchers(kAlice, frame("alice online"));
  hub_.publish_to_watchers(kCarol, frame("carol online"));  // nobody watches carol
  drain();
  EXPECT_EQ(w0->frames(), (std::vector<std::string>{"alice online"}));
  EXPECT_EQ(w1->frames(), (std::vector<std::string>{"alice online"}));
  EXPECT_EQ(w1->delivery_thread(), thread_ids_[1]);
  on_shard(0, [&] { hub_.unwatch(0, 1, {kAlice}); });
  hub_.publish_to_watchers(kAlice, frame("alice offline"));
  hub_.publish_to_watchers(kBob, frame("bob offline"));
  drain();
  EXPECT_EQ(w0->frames(), (std::vector<std::string>{"alice online", "bob offline"}));
  EXPECT_EQ(w1->frames(), (std::vector<std::string>{"alice online", "alice offline"}));
}

TEST_F(HubTest, OnDeliveredCountsFramesPerShard) {
  // Goal: on_delivered is told how many frames each publish handed to connections, per shard, and
  // not called when nothing was delivered. Method: count calls and totals for three publishes.
  std::atomic<int> calls{0};
  hub_.on_delivered = [&](std::size_t n) {
    ++calls;
    delivered_ += n;
  };
  auto a0 = connect(0, kAlice, 1, 10);
  auto a1 = connect(1, kAlice, 2, 11);
  auto b1 = connect(1, kBob, 3, 12);
  hub_.publish({kAlice, kBob}, frame("x"));  // shard 0: 1, shard 1: 2
  drain();
  EXPECT_EQ(delivered_.load(), 3U);
  EXPECT_EQ(calls.load(), 2);
  hub_.publish({kCarol}, frame("y"));  // nobody
  drain();
  EXPECT_EQ(calls.load(), 2);
  hub_.publish({kBob}, frame("z"), 3);  // only connection excepted
  drain();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(delivered_.load(), 3U);
}

// Without shard threads: the test thread plays both shards and counts, with poll(), the jobs the
// hub posted to each io_context. Deterministic: nothing runs until polled.
class HubPostsTest : public ::testing::Test {
 protected:
  HubPostsTest() : hub_({&shards_[0], &shards_[1]}) {}

  std::shared_ptr<FakeConnection> attach(std::size_t shard, UserId user, std::uint64_t id) {
    auto c = std::make_shared<FakeConnection>(id, 1);
    hub_.attach(shard, user, c);
    return c;
  }
  // Jobs run on each shard since the last call.
  std::vector<std::size_t> poll() {
    std::vector<std::size_t> ran;
    for (auto& io : shards_) {
      ran.push_back(io.poll());
      io.restart();
    }
    return ran;
  }

  net::io_context shards_[2];
  Hub hub_;
};

TEST_F(HubPostsTest, PublishPostsOnlyToShardsWithARecipient) {
  // Goal: a publish wakes only the shards where a recipient has a connection (the per-user shard
  // hint), follows attach/detach, and still delivers. Method: count the jobs each io_context got.
  auto bob1 = attach(1, kBob, 1);
  hub_.publish({kAlice, kBob}, frame("m1"));
  EXPECT_EQ(poll(), (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(bob1->frames(), (std::vector<std::string>{"m1"}));

  hub_.publish({kCarol}, frame("nobody"));
  EXPECT_EQ(poll(), (std::vector<std::size_t>{0, 0}));

  // A second connection on shard 0, then the shard-1 one leaves: only shard 0 is left.
  auto bob0 = attach(0, kBob, 2);
  hub_.publish({kBob}, frame("m2"));
  EXPECT_EQ(poll(), (std::vector<std::size_t>{1, 1}));
  hub_.detach(1, kBob, 1);
  hub_.publish({kBob}, frame("m3"));
  EXPECT_EQ(poll(), (std::vector<std::size_t>{1, 0}));
  EXPECT_EQ(bob0->frames(), (std::vector<std::string>{"m2", "m3"}));
  EXPECT_EQ(bob1->frames(), (std::vector<std::string>{"m1", "m2"}));

  // Two connections of one user on one shard: the bit stays until the last one detaches.
  auto bob0b = attach(0, kBob, 3);
  hub_.detach(0, kBob, 2);
  hub_.publish({kBob}, frame("m4"));
  EXPECT_EQ(poll(), (std::vector<std::size_t>{1, 0}));
  EXPECT_EQ(bob0b->frames(), (std::vector<std::string>{"m4"}));
  hub_.detach(0, kBob, 3);
  hub_.publish({kBob}, frame("m5"));
  EXPECT_EQ(poll(), (std::vector<std::size_t>{0, 0}));
}

TEST_F(HubPostsTest, PublishesInsideAPostBatchLeaveAsOnePostPerShardInOrder) {
  // Goal: inside a transport::PostBatch, every publish and every other task for one shard leaves
  // in one post, run in the order added; outside a batch each publish is its own post. Method:
  // three publishes and a task inside a scope, then three publishes without one.
  auto alice0 = attach(0, kAlice, 1);
  auto bob1 = attach(1, kBob, 2);
  std::vector<std::string> order;
  {
    chat::transport::PostBatch batch;
    hub_.publish({kAlice, kBob}, frame("a"));
    hub_.publish({kAlice}, frame("b"));
    chat::transport::PostBatch::post(shards_[0], [&] { order.push_back("task"); });
    hub_.publish({kAlice, kBob}, frame("c"));
    EXPECT_EQ(poll(), (std::vector<std::size_t>{0, 0}));  // nothing before the scope ends
  }
  alice0->on_deliver = [&] { order.push_back("deliver"); };
  EXPECT_EQ(poll(), (std::vector<std::size_t>{1, 1}));
  EXPECT_EQ(alice0->frames(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(bob1->frames(), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(order, (std::vector<std::string>{"deliver", "deliver", "task", "deliver"}));

  hub_.publish({kAlice}, frame("d"));
  hub_.publish({kAlice}, frame("e"));
  hub_.publish({kAlice, kBob}, frame("f"));
  EXPECT_EQ(poll(), (std::vector<std::size_t>{3, 1}));
  EXPECT_EQ(alice0->frames(), (std::vector<std::string>{"a", "b", "c", "d", "e", "f"}));
}

}  // namespace

TEST_F(HubTest, BigFanOutsAreBatchableSmallOnesAndWatchersPrompt) {
  // Goal: only a big group's fan-out may be coalesced by the transport (gateway::Urgency); a
  // direct conversation, a small group and presence updates leave at once. Method: one recipient
  // connection; publish to it within a 2-member list, a (kBatchableFanout - 1)-member list and a
  // kBatchableFanout-member list, then a presence update; check the urgency of each delivery.
  using chat::gateway::Urgency;
  auto bob = connect(1, kBob, 20, 200);
  on_shard(1, [&] { hub_.watch(1, bob, {kCarol}); });
  auto members = [](std::size_t n) {
    std::vector<UserId> ids{kBob};
    for (std::size_t i = 1; i < n; ++i) ids.push_back(static_cast<UserId>(1000 + i));
    return ids;
  };
  hub_.publish(members(2), frame("direct"));
  hub_.publish(members(Hub::kBatchableFanout - 1), frame("small group"));
  hub_.publish(members(Hub::kBatchableFanout), frame("big group"));
  hub_.publish_to_watchers(kCarol, frame("presence"));
  drain();
  EXPECT_EQ(bob->frames(), (std::vector<std::string>{"direct", "small group", "big group", "presence"}));
  EXPECT_EQ(bob->urgencies(),
            (std::vector<Urgency>{Urgency::prompt, Urgency::prompt, Urgency::batchable, Urgency::prompt}));
}
