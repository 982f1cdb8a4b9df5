#pragma once

#include "domain/types.hpp"
#include "gateway/connection.hpp"

#include <cstdint>
#include <vector>

namespace chat::bus {

// Fan-out of live events to the connections of users, wherever they are connected.
//
// The service and the presence tracker publish through a Bus; the Bus delivers on this node
// through the Hub (the "deliver locally" path) and, in cluster mode, forwards the event to the
// other nodes, which deliver to their own local connections. Delivery between nodes is best
// effort: events can be lost, duplicated or reordered (a node restart, a Redis restart). Every
// event carries (conversation, seq), clients dedupe and fill gaps from the store with sync.
//
// Any thread may call these. Calls from one thread are delivered locally in call order.
class Bus {
 public:
  virtual ~Bus() = default;

  // `except_connection` (0 for none) is a connection id of this node; it is skipped locally
  // (the sender gets an ack instead) and means nothing on other nodes.
  virtual void publish(std::vector<domain::UserId> recipients,
                       gateway::SharedFrame frame,
                       std::uint64_t except_connection = 0) = 0;
  // Closes every connection of that login session, on every node (logout, refresh-token theft).
  virtual void revoke_session(domain::UserId user, domain::SessionId session) = 0;
  // Presence frames to the connections watching `subject`, on every node.
  virtual void publish_to_watchers(domain::UserId subject, gateway::SharedFrame frame) = 0;
};

}  // namespace chat::bus
