#pragma once

#include "bus/bus.hpp"
#include "gateway/hub.hpp"

namespace chat::bus::local {

// The embedded mode's Bus: one process, so publishing is delivering through the Hub.
class LocalBus final : public Bus {
 public:
  explicit LocalBus(gateway::Hub& hub) : hub_(hub) {}

  void publish(std::vector<domain::UserId> recipients,
               gateway::SharedFrame frame,
               std::uint64_t except_connection = 0) override {
    hub_.publish(std::move(recipients), std::move(frame), except_connection);
  }
  void revoke_session(domain::UserId user, domain::SessionId session) override {
    hub_.revoke_session(user, session);
  }
  void publish_to_watchers(domain::UserId subject, gateway::SharedFrame frame) override {
    hub_.publish_to_watchers(subject, std::move(frame));
  }

 private:
  gateway::Hub& hub_;
};

}  // namespace chat::bus::local
