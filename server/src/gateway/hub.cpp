#include "gateway/hub.hpp"

#include "net/post_batch.hpp"

#include <algorithm>

namespace chat::gateway {

Hub::Hub(std::vector<net::io_context*> shards) : shards_(std::move(shards)) {
  for (std::size_t i = 0; i < shards_.size(); ++i) registries_.push_back(std::make_unique<Registry>());
  hint_ = shards_.size() <= 64;
  all_shards_ = shards_.size() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << shards_.size()) - 1;
}

void Hub::set_shard_bit(domain::UserId user, std::size_t shard, bool on) {
  if (!hint_) return;
  std::lock_guard lock(hint_mutex_);
  if (on) {
    user_shards_[user] |= std::uint64_t{1} << shard;
    return;
  }
  auto it = user_shards_.find(user);
  if (it == user_shards_.end()) return;
  it->second &= ~(std::uint64_t{1} << shard);
  if (it->second == 0) user_shards_.erase(it);
}

std::uint64_t Hub::shards_of(const std::vector<domain::UserId>& recipients) const {
  if (!hint_ || recipients.size() > kHintRecipientsMax) return all_shards_;
  std::uint64_t mask = 0;
  std::lock_guard lock(hint_mutex_);
  for (auto user : recipients) {
    auto it = user_shards_.find(user);
    if (it != user_shards_.end()) mask |= it->second;
  }
  return mask;
}

void Hub::attach(std::size_t shard, domain::UserId user, const std::shared_ptr<Connection>& connection) {
  auto& list = registries_[shard]->by_user[user];
  if (list.empty()) set_shard_bit(user, shard, true);
  list.push_back(connection);
}

void Hub::detach(std::size_t shard, domain::UserId user, std::uint64_t connection_id) {
  auto& by_user = registries_[shard]->by_user;
  auto it = by_user.find(user);
  if (it == by_user.end()) return;
  std::erase_if(it->second, [&](const std::weak_ptr<Connection>& w) {
    auto c = w.lock();
    return !c || c->connection_id() == connection_id;
  });
  if (it->second.empty()) {
    by_user.erase(it);
    set_shard_bit(user, shard, false);
  }
}

void Hub::publish(std::vector<domain::UserId> recipients,
                  SharedFrame frame,
                  std::uint64_t except_connection) {
  const std::uint64_t mask = shards_of(recipients);
  if (mask == 0) return;  // nobody connected
  // A direct conversation or a small group is latency-bound; a big group's fan-out is what fills
  // an I/O thread with one small write per recipient, so its frames may be coalesced.
  const auto urgency = recipients.size() >= kBatchableFanout ? Urgency::batchable : Urgency::prompt;
  auto shared_recipients = std::make_shared<const std::vector<domain::UserId>>(std::move(recipients));
  for (std::size_t shard = 0; shard < shards_.size(); ++shard) {
    if (shard < 64 && (mask >> shard & 1) == 0) continue;
    transport::PostBatch::post(
        *shards_[shard], [this, shard, shared_recipients, frame, except_connection, urgency] {
          std::size_t delivered = 0;
          auto& by_user = registries_[shard]->by_user;
          for (auto user : *shared_recipients) {
            auto it = by_user.find(user);
            if (it == by_user.end()) continue;
            if (it->second.size() == 1) {
              // The common case, without copying the list: nothing touches it after deliver().
              if (auto c = it->second.front().lock(); c && c->connection_id() != except_connection) {
                c->deliver(frame, urgency);
                ++delivered;
              }
              continue;
            }
            // Copy: delivering may close a slow consumer, which detaches it from this very list.
            const auto targets = it->second;
            for (const auto& weak : targets) {
              if (auto c = weak.lock(); c && c->connection_id() != except_connection) {
                c->deliver(frame, urgency);
                ++delivered;
              }
            }
          }
          if (delivered > 0 && on_delivered) on_delivered(delivered);
        });
  }
}

void Hub::revoke_session(domain::UserId user, domain::SessionId session) {
  for (std::size_t shard = 0; shard < shards_.size(); ++shard) {
    net::post(*shards_[shard], [this, shard, user, session] {
      auto& by_user = registries_[shard]->by_user;
      auto it = by_user.find(user);
      if (it == by_user.end()) return;
      const auto targets = it->second;
      for (const auto& weak : targets) {
        if (auto c = weak.lock(); c && c->session_id() == session) c->close_with(4001, "session revoked");
      }
    });
  }
}

void Hub::watch(std::size_t shard,
                const std::shared_ptr<Connection>& connection,
                const std::vector<domain::UserId>& users) {
  auto& watchers = registries_[shard]->watchers;
  for (auto u : users) watchers[u].push_back(connection);
}

void Hub::unwatch(std::size_t shard, std::uint64_t connection_id, const std::vector<domain::UserId>& users) {
  auto& watchers = registries_[shard]->watchers;
  for (auto u : users) {
    auto it = watchers.find(u);
    if (it == watchers.end()) continue;
    std::erase_if(it->second, [&](const std::weak_ptr<Connection>& w) {
      auto c = w.lock();
      return !c || c->connection_id() == connection_id;
    });
    if (it->second.empty()) watchers.erase(it);
  }
}

void Hub::publish_to_watchers(domain::UserId subject, SharedFrame frame) {
  for (std::size_t shard = 0; shard < shards_.size(); ++shard) {
    net::post(*shards_[shard], [this, shard, subject, frame] {
      auto& watchers = registries_[shard]->watchers;
      auto it = watchers.find(subject);
      if (it == watchers.end()) return;
      const auto targets = it->second;
      std::size_t delivered = 0;
      for (const auto& weak : targets) {
        if (auto c = weak.lock()) {
          c->deliver(frame, Urgency::prompt);
          ++delivered;
        }
      }
      if (delivered > 0 && on_delivered) on_delivered(delivered);
    });
  }
}

void Hub::close_all() {
  for (std::size_t shard = 0; shard < shards_.size(); ++shard) {
    net::post(*shards_[shard], [this, shard] {
      std::vector<std::shared_ptr<Connection>> all;
      for (auto& [user, list] : registries_[shard]->by_user) {
        for (auto& weak : list) {
          if (auto c = weak.lock()) all.push_back(std::move(c));
        }
      }
      for (auto& c : all) c->close_with(1001, "server shutting down");
    });
  }
}

}  // namespace chat::gateway
