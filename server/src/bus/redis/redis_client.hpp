#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

struct redisContext;

namespace chat::bus::redis {

// Redis could not be reached (connect, timeout, connection lost). Callers fall back or retry.
struct RedisUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A reply, copied out of hiredis: nil, integer, string (status and bulk), error or array.
struct Reply {
  enum class Type { nil, integer, string, error, array } type = Type::nil;
  std::int64_t integer = 0;
  std::string str;
  std::vector<Reply> elements;
};

// A blocking Redis connection for the small cluster-state commands (presence scripts, rate-limit
// buckets). Thread-safe: one mutex around one connection, so callers serialise; every command has
// a timeout (connect and I/O), so a stalled Redis costs a caller at most `timeout`. After a failure
// the connection is dropped and the next command reconnects, but no sooner than `retry_after`
// (until then commands fail fast with RedisUnavailable, without touching the network).
class RedisClient {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::chrono::milliseconds timeout{250};
    std::chrono::milliseconds retry_after{500};
  };

  explicit RedisClient(Options options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command (argv form, binary safe). Throws RedisUnavailable; a Redis error reply
  // (e.g. a script error) is returned as Type::error.
  Reply command(const std::vector<std::string>& argv);
  // Runs a Lua script: EVALSHA with the script's SHA1 (learned once with SCRIPT LOAD), so the
  // body crosses the network once per script and connection lifetime of the Redis server; on
  // NOSCRIPT (Redis restarted or SCRIPT FLUSH) it loads the script again and retries once.
  Reply eval(const std::string& script,
             const std::vector<std::string>& keys,
             const std::vector<std::string>& args);

  const Options& options() const noexcept { return options_; }
  // How many times a script body was sent (SCRIPT LOAD), for tests and metrics.
  std::uint64_t script_loads() const noexcept { return script_loads_.load(); }

 private:
  void connect_locked();
  void drop_locked();

  Options options_;
  std::mutex mutex_;
  redisContext* ctx_ = nullptr;
  std::chrono::steady_clock::time_point next_attempt_{};
  Reply load_script(const std::string& script);
  std::mutex shas_mutex_;
  std::unordered_map<std::string, std::string> shas_;  // script body -> SHA1 (hex)
  std::atomic<std::uint64_t> script_loads_{0};
};

}  // namespace chat::bus::redis
