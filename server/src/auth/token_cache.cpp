#include "auth/token_cache.hpp"

namespace chat::auth {

std::uint64_t TokenCache::epoch() const {
  std::lock_guard lock(mutex_);
  return epoch_;
}

std::optional<domain::AuthContext> TokenCache::find(const std::string& token_hash,
                                                    Clock::time_point now,
                                                    domain::TimeMs wall_now) {
  std::lock_guard lock(mutex_);
  if (!enabled_) return std::nullopt;
  auto it = entries_.find(token_hash);
  if (it == entries_.end()) return std::nullopt;
  const auto token_expires = it->second.auth.access_expires_at;
  if (it->second.expires <= now || (token_expires != 0 && token_expires <= wall_now)) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.auth;
}

void TokenCache::insert(const std::string& token_hash,
                        const domain::AuthContext& auth,
                        std::uint64_t epoch,
                        Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (!enabled_ || epoch != epoch_ || options_.capacity == 0) return;
  if (entries_.size() >= options_.capacity) {
    std::erase_if(entries_, [now](const auto& kv) { return kv.second.expires <= now; });
    if (entries_.size() >= options_.capacity) entries_.clear();
  }
  entries_[token_hash] = Entry{auth, now + options_.ttl};
}

void TokenCache::invalidate_session(domain::SessionId session) {
  std::lock_guard lock(mutex_);
  ++epoch_;
  std::erase_if(entries_, [session](const auto& kv) { return kv.second.auth.session_id == session; });
}

void TokenCache::revoke_session(domain::SessionId session) {
  invalidate_session(session);
  if (broadcast_) broadcast_(session);
}

void TokenCache::set_enabled(bool enabled) {
  std::lock_guard lock(mutex_);
  ++epoch_;
  enabled_ = enabled;
  entries_.clear();
}

bool TokenCache::enabled() const {
  std::lock_guard lock(mutex_);
  return enabled_;
}

std::size_t TokenCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace chat::auth
