#pragma once

#include <string_view>

// Minimal leveled logging to stderr, one line per event, safe from any thread.
namespace chat::obs {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(LogLevel level) noexcept;
// Names the calling thread for `top -H`, `ps -L`, perf and debuggers (at most 15 characters are kept).
void name_this_thread(const char* name) noexcept;
bool parse_log_level(std::string_view text, LogLevel& out) noexcept;
void log(LogLevel level, std::string_view message);

inline void log_debug(std::string_view m) {
  log(LogLevel::debug, m);
}
inline void log_info(std::string_view m) {
  log(LogLevel::info, m);
}
inline void log_warn(std::string_view m) {
  log(LogLevel::warn, m);
}
inline void log_error(std::string_view m) {
  log(LogLevel::error, m);
}

}  // namespace chat::obs
