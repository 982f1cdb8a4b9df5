#pragma once

#include "domain/types.hpp"
#include "gateway/connection.hpp"
#include "net/asio.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace chat::gateway {

// Routes frames to the live connections of users, across I/O threads.
//
// Each I/O thread (shard) has its own registry, touched only by that thread, so there is no lock
// on the delivery path. Any thread may call publish()/revoke_session()/close_all(): they post one
// small job per shard, and that shard's thread delivers to its local connections. Jobs posted from
// one thread to one io_context run in order, so frames published in seq order by the store writer
// reach every connection in seq order.
//
// publish() posts only to the shards where a recipient has a connection: a shared map (one mutex,
// touched by attach/detach when a user's first connection on a shard comes or its last one goes,
// and once per publish) keeps a bit per shard for every connected user. A user attaching while a
// publish passes may miss that one event, as before (the event was committed before the publish,
// and the client syncs after `ready`, which follows the attach). Inside a transport::PostBatch
// (the store writer after a commit) the posts of many publishes coalesce into one per shard.
//
// The registry never owns a connection: it holds weak_ptrs, and a connection detaches itself when
// it closes.
class Hub {
 public:
  explicit Hub(std::vector<net::io_context*> shards);

  std::size_t shard_count() const noexcept { return shards_.size(); }

  // Shard thread only.
  void attach(std::size_t shard, domain::UserId user, const std::shared_ptr<Connection>& connection);
  void detach(std::size_t shard, domain::UserId user, std::uint64_t connection_id);

  // Fan-outs to at least this many members are Urgency::batchable (see connection.hpp).
  static constexpr std::size_t kBatchableFanout = 16;

  // Any thread. `except_connection` (0 for none) is skipped: the sending connection gets an ack.
  void publish(std::vector<domain::UserId> recipients,
               SharedFrame frame,
               std::uint64_t except_connection = 0);
  // Any thread. Closes every connection of that login session (logout, refresh-token theft).
  void revoke_session(domain::UserId user, domain::SessionId session);
  // Any thread. Closes every connection with 1001 (server shutdown).
  void close_all();

  // Presence watchers. watch/unwatch: shard thread only. publish_to_watchers: any thread.
  void watch(std::size_t shard,
             const std::shared_ptr<Connection>& connection,
             const std::vector<domain::UserId>& users);
  void unwatch(std::size_t shard, std::uint64_t connection_id, const std::vector<domain::UserId>& users);
  void publish_to_watchers(domain::UserId subject, SharedFrame frame);

  // Called once per frame handed to a connection; wired to the messages_out metric.
  std::function<void(std::size_t)> on_delivered;

 private:
  struct Registry {
    std::unordered_map<domain::UserId, std::vector<std::weak_ptr<Connection>>> by_user;
    std::unordered_map<domain::UserId, std::vector<std::weak_ptr<Connection>>> watchers;
  };
  // Shards (bit i = shard i) holding a connection of one of `recipients`; every shard when
  // the hint is off (more than 64 shards) or the list is long (a big group spans them anyway).
  std::uint64_t shards_of(const std::vector<domain::UserId>& recipients) const;
  void set_shard_bit(domain::UserId user, std::size_t shard, bool on);

  static constexpr std::size_t kHintRecipientsMax = 256;

  std::vector<net::io_context*> shards_;
  std::vector<std::unique_ptr<Registry>> registries_;
  std::uint64_t all_shards_;
  bool hint_ = false;  // shard count <= 64
  mutable std::mutex hint_mutex_;
  std::unordered_map<domain::UserId, std::uint64_t> user_shards_;
};

}  // namespace chat::gateway
