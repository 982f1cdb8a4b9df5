#pragma once

#include "domain/error_code.hpp"

#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace chat::test {

// Concatenates string pieces with append (GCC 12 at -O3 warns falsely, -Wrestrict, on
// `"literal" + std::string`).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

// A fresh directory under /tmp (mkdtemp), removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/chatd-unit-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

}  // namespace chat::test

namespace chat::domain {

// Prints error codes by name in GoogleTest messages.
inline void PrintTo(ErrorCode code, std::ostream* os) {
  *os << to_string(code);
}

}  // namespace chat::domain
