#pragma once

#include "bus/redis/redis_bus.hpp"
#include "bus/redis/redis_client.hpp"

#include <chrono>
#include <cstdlib>
#include <functional>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <random>
#include <signal.h>
#include <spawn.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

// Redis for the cluster-state conformance suites: the shared test server from
// CHATD_TEST_REDIS_URL (scripts/redis-test-server.sh; `make unit` sets it), and private
// redis-server processes for the outage cases (stopped and started again by the test).
namespace chat::test {

// The URL, or "" (the caller skips; in CI, where CI is set, it fails instead).
inline std::string redis_url() {
  const char* url = std::getenv("CHATD_TEST_REDIS_URL");
  return url != nullptr ? std::string(url) : std::string();
}

#define CHATD_REQUIRE_REDIS(url_var)                                                                      \
  const std::string url_var = ::chat::test::redis_url();                                                  \
  if (url_var.empty()) {                                                                                  \
    if (std::getenv("CI") != nullptr)                                                                     \
      FAIL() << "CHATD_TEST_REDIS_URL is not set (scripts/redis-test-server.sh)";                         \
    GTEST_SKIP() << "CHATD_TEST_REDIS_URL is not set; start one with scripts/redis-test-server.sh start"; \
  }

inline bus::redis::RedisClient::Options client_options(const std::string& url) {
  bus::redis::RedisClient::Options o;
  if (!bus::redis::parse_redis_url(url, o.host, o.port)) throw std::runtime_error("bad redis url " + url);
  o.retry_after = std::chrono::milliseconds(50);
  return o;
}

// A key prefix no other test uses (tests run in parallel against one server).
inline std::string unique_prefix() {
  std::random_device seed;
  std::mt19937_64 rng((static_cast<std::uint64_t>(seed()) << 32) ^ seed());
  return "chatd_t:" + std::to_string(rng()) + ":";
}

// Polls `done` until it holds or `limit` passes (never asserts how long it took).
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::milliseconds(10'000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// A private redis-server on a free loopback port, which a test can stop and start again.
class RedisProcess {
 public:
  RedisProcess() : port_(free_port()) { start(); }
  ~RedisProcess() { stop(); }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  void start() {
    if (pid_ > 0) return;
    const std::string port = std::to_string(port_);
    const char* argv[] = {"redis-server", "--bind", "127.0.0.1", "--port",    port.c_str(), "--save", "",
                          "--appendonly", "no",     "--logfile", "/dev/null", nullptr};
    if (posix_spawnp(&pid_, "redis-server", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0)
      throw std::runtime_error("cannot start redis-server");
    bus::redis::RedisClient::Options o;
    o.port = port_;
    o.retry_after = std::chrono::milliseconds(0);
    bus::redis::RedisClient probe(o);
    const bool up = eventually([&] {
      try {
        return probe.command({"PING"}).str == "PONG";
      } catch (const bus::redis::RedisUnavailable&) {
        return false;
      }
    });
    if (!up) throw std::runtime_error("redis-server did not start on port " + port);
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }

  int port_;
  pid_t pid_ = -1;
};

}  // namespace chat::test
