#pragma once

#include "presence/presence_directory.hpp"

#include <string>

namespace chat::bus::redis {
class RedisClient;
}

namespace chat::presence {

// PresenceDirectory in one Redis server (not Redis Cluster: the scripts touch keys they compute).
// Keys, under `prefix` (default "chatd:p:"):
//   u:<user>   hash: n:<node> -> devices on that node, on (0/1), ls (last_seen ms), gen, pu (grace
//              period ends at, 0: none). Once the user goes offline (last_seen handed to the
//              store) the hash expires after `offline_ttl`; a returning user recreates it, and a
//              missing hash reads as "unknown" (the caller asks the store), never as online.
//   node:<n>   set of the users node n holds devices of
//   nodes      zset node -> alive until (ms)
//   pending    zset user -> grace period end (ms)
// Every operation is one Lua script, so transitions are atomic across nodes.
class RedisPresenceDirectory final : public PresenceDirectory {
 public:
  RedisPresenceDirectory(bus::redis::RedisClient& client,
                         std::string prefix = "chatd:p:",
                         std::chrono::milliseconds offline_ttl = std::chrono::minutes(10));

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
  std::string user_key(domain::UserId user) const { return prefix_ + "u:" + std::to_string(user); }
  std::string node_key(NodeId node) const { return prefix_ + "node:" + std::to_string(node); }

  bus::redis::RedisClient& client_;
  std::string prefix_;
  std::chrono::milliseconds offline_ttl_;
};

}  // namespace chat::presence
