#include "bus/redis/redis_client.hpp"

#include <hiredis/hiredis.h>

#include <sys/time.h>

namespace chat::bus::redis {

namespace {

Reply convert(const redisReply* r) {
  Reply out;
  if (r == nullptr) return out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

RedisClient::RedisClient(Options options) : options_(std::move(options)) {}

RedisClient::~RedisClient() {
  std::lock_guard lock(mutex_);
  drop_locked();
}

void RedisClient::drop_locked() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

void RedisClient::connect_locked() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) throw RedisUnavailable("redis unavailable (retrying shortly)");
  const auto tv = to_timeval(options_.timeout);
  redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port, tv);
  if (c == nullptr || c->err != 0) {
    const std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    next_attempt_ = now + options_.retry_after;
    throw RedisUnavailable("redis connect to " + options_.host + ":" + std::to_string(options_.port) +
                           " failed: " + why);
  }
  redisSetTimeout(c, tv);
  ctx_ = c;
}

Reply RedisClient::command(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<std::size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  std::lock_guard lock(mutex_);
  if (ctx_ == nullptr) connect_locked();
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) {
    const std::string why = ctx_->errstr;
    drop_locked();
    next_attempt_ = std::chrono::steady_clock::now() + options_.retry_after;
    throw RedisUnavailable("redis command failed: " + why);
  }
  Reply out = convert(r);
  freeReplyObject(r);
  return out;
}

Reply RedisClient::load_script(const std::string& script) {
  auto r = command({"SCRIPT", "LOAD", script});
  if (r.type == Reply::Type::string && !r.str.empty()) {
    script_loads_.fetch_add(1);
    std::lock_guard lock(shas_mutex_);
    shas_[script] = r.str;
  }
  return r;  // the SHA1, or the error (e.g. the script does not compile)
}

Reply RedisClient::eval(const std::string& script,
                        const std::vector<std::string>& keys,
                        const std::vector<std::string>& args) {
  std::string sha;
  {
    std::lock_guard lock(shas_mutex_);
    if (auto it = shas_.find(script); it != shas_.end()) sha = it->second;
  }
  if (sha.empty()) {
    auto loaded = load_script(script);
    if (loaded.type != Reply::Type::string) return loaded;
    sha = std::move(loaded.str);
  }
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(std::move(sha));
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = command(argv);
  if (r.type == Reply::Type::error && r.str.rfind("NOSCRIPT", 0) == 0) {
    // The server lost its script cache (restart, SCRIPT FLUSH, failover): load it again, once.
    auto loaded = load_script(script);
    if (loaded.type != Reply::Type::string) return loaded;
    argv[1] = std::move(loaded.str);
    r = command(argv);
  }
  return r;
}

}  // namespace chat::bus::redis
