#pragma once

#include "domain/types.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

namespace chat::presence {

struct Status {
  bool online = false;
  std::optional<domain::TimeMs> last_seen;
};

// Who is online, cluster-wide: the shared state behind PresenceTracker. Each node reports how many
// devices of a user it holds (its own count is the truth, so reporting is idempotent and a node
// that lost Redis re-reports everything when it is back). A user is online while the sum over all
// nodes is > 0; when it drops to 0 a grace period starts (one pending generation), and whoever
// calls expire() with that generation after the grace takes the user offline, exactly once.
// Nodes that stop heartbeating lose their devices (sweep), so a node killed with -9 does not
// leave its users online. Every operation is atomic. Implementations: LocalPresenceDirectory (in
// process, the embedded mode) and RedisPresenceDirectory (Lua scripts); the conformance suite
// (server/tests/conformance/cluster_state_conformance_test.cpp) runs the same cases on both.
// Remote implementations throw bus::redis::RedisUnavailable when the server cannot be reached.
class PresenceDirectory {
 public:
  using NodeId = std::uint32_t;
  static constexpr std::size_t kMaxStatusBatch = 1'000;
  struct Update {
    bool went_online = false;   // this call made the user online: publish it
    std::uint64_t pending = 0;  // nonzero: this call started a grace period; expire(gen) after it
    std::optional<domain::TimeMs> last_seen;  // with went_online: the previous last_seen
  };
  struct WentOffline {
    domain::UserId user = 0;
    domain::TimeMs last_seen = 0;
  };

  virtual ~PresenceDirectory() = default;

  // Sets the number of devices of `user` connected to `node` (0 forgets them).
  virtual Update set_count(
      domain::UserId user, NodeId node, int count, domain::TimeMs now, std::chrono::milliseconds grace) = 0;
  // Ends the grace period `generation`: if nothing reconnected since, the user goes offline and
  // the new last_seen (now) is returned. nullopt: nothing changed (someone reconnected, or
  // another caller ended it already).
  virtual std::optional<domain::TimeMs> expire(domain::UserId user,
                                               std::uint64_t generation,
                                               domain::TimeMs now) = 0;
  // nullopt: the directory knows nothing of this user (the caller falls back to the store).
  virtual std::optional<Status> status(domain::UserId user) = 0;
  // status() of each user, in order, in one round trip (at most kMaxStatusBatch users).
  virtual std::vector<std::optional<Status>> statuses(const std::vector<domain::UserId>& users) = 0;
  // `node` is alive until now + ttl. true: the node was not registered (its first heartbeat, or a
  // sweep declared it dead and forgot its devices: the caller must report them again).
  virtual bool heartbeat(NodeId node, domain::TimeMs now, std::chrono::milliseconds ttl) = 0;
  // Forgets the devices of every node whose liveness lapsed before `now` (their users with no
  // other device go offline at once) and ends grace periods overdue by more than `slack` (their
  // node died or lost Redis before expiring them). Returns who went offline; each once.
  virtual std::vector<WentOffline> sweep(domain::TimeMs now, std::chrono::milliseconds slack) = 0;
  // A node restarting under the same id forgets its previous devices; users left with none start
  // a grace period (ended by sweep if nobody reconnects), so a quick restart does not flap.
  virtual void reset_node(NodeId node, domain::TimeMs now, std::chrono::milliseconds grace) = 0;
};

// The in-process directory (embedded mode, and the reference for the conformance suite).
class LocalPresenceDirectory final : public PresenceDirectory {
 public:
  Update set_count(domain::UserId user,
                   NodeId node,
                   int count,
                   domain::TimeMs now,
                   std::chrono::milliseconds grace) override;
  std::optional<domain::TimeMs> expire(domain::UserId user,
                                       std::uint64_t generation,
                                       domain::TimeMs now) override;
  std::optional<Status> status(domain::UserId user) override;
  std::vector<std::optional<Status>> statuses(const std::vector<domain::UserId>& users) override;
  bool heartbeat(NodeId node, domain::TimeMs now, std::chrono::milliseconds ttl) override;
  std::vector<WentOffline> sweep(domain::TimeMs now, std::chrono::milliseconds slack) override;
  void reset_node(NodeId node, domain::TimeMs now, std::chrono::milliseconds grace) override;

 private:
  struct Entry {
    std::map<NodeId, int> counts;
    bool online = false;
    std::optional<domain::TimeMs> last_seen;
    std::uint64_t generation = 0;
    domain::TimeMs pending_until = 0;  // 0: no grace period running
    int total() const;
  };
  void go_offline(domain::UserId user, Entry& e, domain::TimeMs now, std::vector<WentOffline>& out);

  std::mutex mutex_;
  std::unordered_map<domain::UserId, Entry> users_;
  std::map<NodeId, domain::TimeMs> nodes_;  // alive until
  std::map<NodeId, std::set<domain::UserId>> node_users_;
};

}  // namespace chat::presence
