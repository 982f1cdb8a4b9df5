#include "presence/presence_directory.hpp"

#include <stdexcept>

namespace chat::presence {

int LocalPresenceDirectory::Entry::total() const {
  int n = 0;
  for (const auto& [node, c] : counts) n += c;
  return n;
}

PresenceDirectory::Update LocalPresenceDirectory::set_count(
    domain::UserId user, NodeId node, int count, domain::TimeMs now, std::chrono::milliseconds grace) {
  std::lock_guard lock(mutex_);
  auto& e = users_[user];
  if (count > 0) {
    e.counts[node] = count;
    node_users_[node].insert(user);
  } else {
    e.counts.erase(node);
    if (auto it = node_users_.find(node); it != node_users_.end()) it->second.erase(user);
  }
  Update u;
  if (e.total() > 0) {
    if (e.pending_until != 0) {
      e.pending_until = 0;
      ++e.generation;
    }
    if (!e.online) {
      e.online = true;
      u.went_online = true;
      u.last_seen = e.last_seen;
    }
    return u;
  }
  if (e.online && e.pending_until == 0) {
    u.pending = ++e.generation;
    e.pending_until = now + grace.count();
  }
  return u;
}

void LocalPresenceDirectory::go_offline(domain::UserId user,
                                        Entry& e,
                                        domain::TimeMs now,
                                        std::vector<WentOffline>& out) {
  e.online = false;
  e.last_seen = now;
  e.pending_until = 0;
  out.push_back({user, now});
}

std::optional<domain::TimeMs> LocalPresenceDirectory::expire(domain::UserId user,
                                                             std::uint64_t generation,
                                                             domain::TimeMs now) {
  std::lock_guard lock(mutex_);
  auto it = users_.find(user);
  if (it == users_.end()) return std::nullopt;
  auto& e = it->second;
  if (e.generation != generation || e.pending_until == 0 || !e.online || e.total() > 0) return std::nullopt;
  std::vector<WentOffline> out;
  go_offline(user, e, now, out);
  return now;
}

std::optional<Status> LocalPresenceDirectory::status(domain::UserId user) {
  std::lock_guard lock(mutex_);
  auto it = users_.find(user);
  if (it == users_.end()) return std::nullopt;
  return Status{it->second.online, it->second.last_seen};
}

std::vector<std::optional<Status>> LocalPresenceDirectory::statuses(
    const std::vector<domain::UserId>& users) {
  if (users.size() > kMaxStatusBatch) throw std::invalid_argument("presence: too many users in one lookup");
  std::lock_guard lock(mutex_);
  std::vector<std::optional<Status>> out;
  out.reserve(users.size());
  for (auto user : users) {
    auto it = users_.find(user);
    if (it == users_.end())
      out.emplace_back();
    else
      out.emplace_back(Status{it->second.online, it->second.last_seen});
  }
  return out;
}

bool LocalPresenceDirectory::heartbeat(NodeId node, domain::TimeMs now, std::chrono::milliseconds ttl) {
  std::lock_guard lock(mutex_);
  return nodes_.insert_or_assign(node, now + ttl.count()).second;
}

std::vector<PresenceDirectory::WentOffline> LocalPresenceDirectory::sweep(domain::TimeMs now,
                                                                          std::chrono::milliseconds slack) {
  std::lock_guard lock(mutex_);
  std::vector<WentOffline> out;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->second >= now) {
      ++it;
      continue;
    }
    const NodeId node = it->first;
    for (auto user : node_users_[node]) {
      auto& e = users_[user];
      e.counts.erase(node);
      if (e.total() == 0 && e.online) go_offline(user, e, now, out);
    }
    node_users_.erase(node);
    it = nodes_.erase(it);
  }
  for (auto& [user, e] : users_) {
    if (e.pending_until != 0 && e.pending_until < now - slack.count()) {
      if (e.total() == 0 && e.online)
        go_offline(user, e, now, out);
      else
        e.pending_until = 0;
    }
  }
  return out;
}

void LocalPresenceDirectory::reset_node(NodeId node, domain::TimeMs now, std::chrono::milliseconds grace) {
  std::lock_guard lock(mutex_);
  auto it = node_users_.find(node);
  if (it == node_users_.end()) return;
  for (auto user : it->second) {
    auto& e = users_[user];
    e.counts.erase(node);
    if (e.total() == 0 && e.online && e.pending_until == 0) {
      ++e.generation;
      e.pending_until = now + grace.count();
    }
  }
  node_users_.erase(it);
}

}  // namespace chat::presence
