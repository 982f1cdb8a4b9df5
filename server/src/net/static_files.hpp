#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace chat::transport {

// The web client's build output (web/dist), loaded into memory at startup so that serving it never
// touches the disk from an I/O thread. Immutable after construction: safe from any thread.
class StaticFiles {
 public:
  struct File {
    std::string body;
    std::string content_type;
    bool immutable = false;  // content-hashed asset: cache for a year
  };

  // Loads every regular file under `root` (at most `bytes_max` in all); throws if root is missing.
  StaticFiles(const std::string& root, std::size_t bytes_max = 64 << 20);

  // The file for a URL path; paths without an extension that match nothing get index.html (the
  // client routes them). nullptr if nothing fits.
  const File* find(std::string_view path) const;
  std::size_t size() const noexcept { return files_.size(); }

 private:
  std::unordered_map<std::string, File> files_;  // by URL path, e.g. "/assets/app-1a2b.js"
};

}  // namespace chat::transport
