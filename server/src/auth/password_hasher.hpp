#pragma once

#include "net/asio.hpp"

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace chat::auth {

// Thrown when more hashes are waiting than the queue allows: the caller answers 503 at once.
class HasherOverloaded final : public std::runtime_error {
 public:
  HasherOverloaded() : std::runtime_error("password hashing queue is full") {}
};

// argon2id password hashing (libsodium) on its own small pool, so a login burst neither blocks
// the I/O threads nor takes more than threads x memlimit of memory; past `queue_max` waiting
// requests it refuses instead of queueing without bound.
class PasswordHasher {
 public:
  // OWASP's minimum for argon2id: m = 19 MiB, t = 2, p = 1.
  static constexpr unsigned long long ops_limit = 2;
  static constexpr std::size_t mem_limit_bytes = 19ULL << 20;

  PasswordHasher(std::size_t threads, std::size_t queue_max);
  ~PasswordHasher();

  net::awaitable<std::string> hash(std::string password);
  // Verifies against `stored`; with an empty `stored` (unknown user) it verifies against a dummy
  // hash anyway and returns false, so timing does not reveal which accounts exist.
  net::awaitable<bool> verify(std::string stored, std::string password);

  void stop();

  // Synchronous forms, for the pool and for tests.
  static std::string hash_now(const std::string& password);
  static bool verify_now(const std::string& stored, const std::string& password);

 private:
  template <class R, class Fn>
  auto run(Fn&& fn);

  net::thread_pool pool_;
  std::size_t queue_max_;
  std::atomic<std::size_t> pending_{0};
  std::string dummy_hash_;
};

}  // namespace chat::auth
