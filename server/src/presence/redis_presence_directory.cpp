#include "presence/redis_presence_directory.hpp"

#include "bus/redis/redis_client.hpp"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <unordered_map>

namespace chat::presence {

namespace {

using bus::redis::Reply;

// Sum of the per-node device counts of one user hash.
constexpr const char* kTotal = R"lua(
local function total(h)
  local all = redis.call('HGETALL', h)
  local n = 0
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'n:' then n = n + tonumber(all[i + 1]) end
  end
  return n
end
)lua";

// KEYS: user hash, node set, pending zset. ARGV: node, count, now, grace, user, offline ttl (ms).
// Returns {went_online, pending generation or 0, previous last_seen or -1}. A device keeps the
// hash (PERSIST); an offline user's hash (left from before, or legacy without a TTL) expires.
constexpr const char* kSetCount = R"lua(
local h = KEYS[1]
local f = 'n:' .. ARGV[1]
local c = tonumber(ARGV[2])
if c > 0 then
  redis.call('HSET', h, f, c)
  redis.call('PERSIST', h)
  redis.call('SADD', KEYS[2], ARGV[5])
else
  redis.call('HDEL', h, f)
  redis.call('SREM', KEYS[2], ARGV[5])
end
local on = redis.call('HGET', h, 'on') == '1'
local pu = tonumber(redis.call('HGET', h, 'pu') or '0')
local ls = tonumber(redis.call('HGET', h, 'ls') or '-1')
if total(h) > 0 then
  if pu > 0 then
    redis.call('HINCRBY', h, 'gen', 1)
    redis.call('HSET', h, 'pu', 0)
    redis.call('ZREM', KEYS[3], ARGV[5])
  end
  if not on then
    redis.call('HSET', h, 'on', '1')
    return {1, 0, ls}
  end
  return {0, 0, ls}
end
if on and pu == 0 then
  local g = redis.call('HINCRBY', h, 'gen', 1)
  local deadline = tonumber(ARGV[3]) + tonumber(ARGV[4])
  redis.call('HSET', h, 'pu', deadline)
  redis.call('ZADD', KEYS[3], deadline, ARGV[5])
  return {0, g, ls}
end
if not on and pu == 0 then redis.call('PEXPIRE', h, ARGV[6]) end
return {0, 0, ls}
)lua";

// KEYS: user hash, pending zset. ARGV: generation, now, user, offline ttl. Returns the new
// last_seen or -1.
constexpr const char* kExpire = R"lua(
local h = KEYS[1]
if tonumber(redis.call('HGET', h, 'gen') or '0') ~= tonumber(ARGV[1]) then return -1 end
if tonumber(redis.call('HGET', h, 'pu') or '0') == 0 then return -1 end
if redis.call('HGET', h, 'on') ~= '1' then return -1 end
if total(h) > 0 then return -1 end
redis.call('HSET', h, 'on', '0', 'ls', ARGV[2], 'pu', '0')
redis.call('PEXPIRE', h, ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[3])
return tonumber(ARGV[2])
)lua";

// KEYS: nodes zset, pending zset. ARGV: now, slack, prefix, offline ttl. Returns the users that
// went offline.
constexpr const char* kSweep = R"lua(
local now = tonumber(ARGV[1])
local p = ARGV[3]
local out = {}
local function off(u, h)
  redis.call('HSET', h, 'on', '0', 'ls', ARGV[1], 'pu', '0')
  redis.call('PEXPIRE', h, ARGV[4])
  redis.call('ZREM', KEYS[2], u)
  out[#out + 1] = u
end
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])) do
  local s = p .. 'node:' .. n
  for _, u in ipairs(redis.call('SMEMBERS', s)) do
    local h = p .. 'u:' .. u
    redis.call('HDEL', h, 'n:' .. n)
    if total(h) == 0 and redis.call('HGET', h, 'on') == '1' then off(u, h) end
  end
  redis.call('DEL', s)
  redis.call('ZREM', KEYS[1], n)
end
for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[2])))) do
  local h = p .. 'u:' .. u
  if total(h) == 0 and redis.call('HGET', h, 'on') == '1' then
    off(u, h)
  else
    if redis.call('EXISTS', h) == 1 then redis.call('HSET', h, 'pu', '0') end
    redis.call('ZREM', KEYS[2], u)
  end
end
return out
)lua";

// KEYS: node set, pending zset. ARGV: node, now, grace, prefix.
constexpr const char* kResetNode = R"lua(
local deadline = tonumber(ARGV[2]) + tonumber(ARGV[3])
for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h = ARGV[4] .. 'u:' .. u
  redis.call('HDEL', h, 'n:' .. ARGV[1])
  if total(h) == 0 and redis.call('HGET', h, 'on') == '1' and tonumber(redis.call('HGET', h, 'pu') or '0') == 0 then
    redis.call('HINCRBY', h, 'gen', 1)
    redis.call('HSET', h, 'pu', deadline)
    redis.call('ZADD', KEYS[2], deadline, u)
  end
end
redis.call('DEL', KEYS[1])
return 0
)lua";

// KEYS: user hashes. Returns {on, ls} per key, flattened; '' where the field (or hash) is missing.
constexpr const char* kStatuses = R"lua(
local out = {}
for i, h in ipairs(KEYS) do
  local v = redis.call('HMGET', h, 'on', 'ls')
  out[2 * i - 1] = v[1] or ''
  out[2 * i] = v[2] or ''
end
return out
)lua";

const std::string& script(const char* body) {
  // One string per script body, built once: the shared total() helper, then the body.
  static std::mutex m;
  static std::unordered_map<const char*, std::string> cache;
  std::lock_guard lock(m);
  auto& s = cache[body];
  if (s.empty()) s = std::string(kTotal) + body;
  return s;
}

Reply checked(Reply r) {
  if (r.type == Reply::Type::error) throw std::runtime_error("redis presence script: " + r.str);
  return r;
}

std::int64_t to_int(const Reply& r) {
  if (r.type == Reply::Type::integer) return r.integer;
  std::int64_t v = 0;
  std::from_chars(r.str.data(), r.str.data() + r.str.size(), v);
  return v;
}

}  // namespace

RedisPresenceDirectory::RedisPresenceDirectory(bus::redis::RedisClient& client,
                                               std::string prefix,
                                               std::chrono::milliseconds offline_ttl)
    : client_(client),
      prefix_(std::move(prefix)),
      offline_ttl_(std::max(offline_ttl, std::chrono::milliseconds(1))) {}

PresenceDirectory::Update RedisPresenceDirectory::set_count(
    domain::UserId user, NodeId node, int count, domain::TimeMs now, std::chrono::milliseconds grace) {
  const auto r = checked(client_.eval(
      script(kSetCount), {user_key(user), node_key(node), prefix_ + "pending"},
      {std::to_string(node), std::to_string(std::max(0, count)), std::to_string(now),
       std::to_string(grace.count()), std::to_string(user), std::to_string(offline_ttl_.count())}));
  Update u;
  if (r.type != Reply::Type::array || r.elements.size() != 3)
    throw std::runtime_error("redis presence: bad reply");
  u.went_online = to_int(r.elements[0]) == 1;
  u.pending = static_cast<std::uint64_t>(to_int(r.elements[1]));
  const auto ls = to_int(r.elements[2]);
  if (ls >= 0) u.last_seen = ls;
  return u;
}

std::optional<domain::TimeMs> RedisPresenceDirectory::expire(domain::UserId user,
                                                             std::uint64_t generation,
                                                             domain::TimeMs now) {
  const auto r = checked(client_.eval(script(kExpire), {user_key(user), prefix_ + "pending"},
                                      {std::to_string(generation), std::to_string(now), std::to_string(user),
                                       std::to_string(offline_ttl_.count())}));
  const auto v = to_int(r);
  if (v < 0) return std::nullopt;
  return v;
}

std::optional<Status> RedisPresenceDirectory::status(domain::UserId user) {
  const auto r = checked(client_.command({"HMGET", user_key(user), "on", "ls"}));
  if (r.type != Reply::Type::array || r.elements.size() != 2)
    throw std::runtime_error("redis presence: bad reply");
  if (r.elements[0].type == Reply::Type::nil && r.elements[1].type == Reply::Type::nil) return std::nullopt;
  Status s;
  s.online = r.elements[0].type == Reply::Type::string && r.elements[0].str == "1";
  if (r.elements[1].type == Reply::Type::string) s.last_seen = to_int(r.elements[1]);
  return s;
}

std::vector<std::optional<Status>> RedisPresenceDirectory::statuses(
    const std::vector<domain::UserId>& users) {
  if (users.size() > kMaxStatusBatch) throw std::invalid_argument("presence: too many users in one lookup");
  std::vector<std::optional<Status>> out(users.size());
  if (users.empty()) return out;
  std::vector<std::string> keys;
  keys.reserve(users.size());
  for (auto u : users) keys.push_back(user_key(u));
  const auto r = checked(client_.eval(script(kStatuses), keys, {}));
  if (r.type != Reply::Type::array || r.elements.size() != 2 * users.size())
    throw std::runtime_error("redis presence: bad reply");
  for (std::size_t i = 0; i < users.size(); ++i) {
    const auto& on = r.elements[2 * i];
    const auto& ls = r.elements[2 * i + 1];
    // A missing hash (never seen, or expired after going offline) is unknown, never online.
    if (on.str.empty() && ls.str.empty()) continue;
    Status st;
    st.online = on.str == "1";
    if (!ls.str.empty()) st.last_seen = to_int(ls);
    out[i] = st;
  }
  return out;
}

bool RedisPresenceDirectory::heartbeat(NodeId node, domain::TimeMs now, std::chrono::milliseconds ttl) {
  const auto r = checked(
      client_.command({"ZADD", prefix_ + "nodes", std::to_string(now + ttl.count()), std::to_string(node)}));
  return to_int(r) == 1;  // ZADD counts the members it added
}

std::vector<PresenceDirectory::WentOffline> RedisPresenceDirectory::sweep(domain::TimeMs now,
                                                                          std::chrono::milliseconds slack) {
  const auto r = checked(client_.eval(
      script(kSweep), {prefix_ + "nodes", prefix_ + "pending"},
      {std::to_string(now), std::to_string(slack.count()), prefix_, std::to_string(offline_ttl_.count())}));
  std::vector<WentOffline> out;
  for (const auto& e : r.elements) out.push_back({to_int(e), now});
  return out;
}

void RedisPresenceDirectory::reset_node(NodeId node, domain::TimeMs now, std::chrono::milliseconds grace) {
  checked(client_.eval(script(kResetNode), {node_key(node), prefix_ + "pending"},
                       {std::to_string(node), std::to_string(now), std::to_string(grace.count()), prefix_}));
}

}  // namespace chat::presence
