#include "obs/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <pthread.h>
#include <string>

namespace chat::obs {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::mutex g_mutex;
constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void name_this_thread(const char* name) noexcept {
  char buffer[16] = {};
  for (std::size_t i = 0; i < sizeof buffer - 1 && name[i] != '\0'; ++i) buffer[i] = name[i];
  pthread_setname_np(pthread_self(), buffer);  // best effort: a failure changes nothing else
}

void set_log_level(LogLevel level) noexcept {
  g_level.store(static_cast<int>(level));
}

bool parse_log_level(std::string_view text, LogLevel& out) noexcept {
  for (int i = 0; i < 4; ++i) {
    if (text == kNames[i]) {
      out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  const auto now = std::chrono::system_clock::now();
  const auto t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "%s.%03dZ %s %.*s\n", stamp, static_cast<int>(ms), kNames[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}

}  // namespace chat::obs
