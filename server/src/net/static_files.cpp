#include "net/static_files.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace chat::transport {

namespace {

std::string content_type_for(const std::filesystem::path& p) {
  const auto ext = p.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".webmanifest") return "application/manifest+json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

StaticFiles::StaticFiles(const std::string& root, std::size_t bytes_max) {
  namespace fs = std::filesystem;
  const fs::path base = fs::canonical(root);
  std::size_t total = 0;
  for (const auto& entry : fs::recursive_directory_iterator(base)) {
    if (!entry.is_regular_file()) continue;
    total += entry.file_size();
    if (total > bytes_max) throw std::runtime_error("web root is larger than the static file budget");
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream data;
    data << in.rdbuf();
    const auto rel = fs::relative(entry.path(), base).generic_string();
    File f{data.str(), content_type_for(entry.path()), rel.rfind("assets/", 0) == 0};
    files_.emplace("/" + rel, std::move(f));
  }
}

const StaticFiles::File* StaticFiles::find(std::string_view path) const {
  if (path.empty() || path == "/") path = "/index.html";
  if (auto it = files_.find(std::string(path)); it != files_.end()) return &it->second;
  const auto last = path.substr(path.rfind('/') + 1);
  if (last.find('.') == std::string_view::npos) {
    if (auto it = files_.find("/index.html"); it != files_.end()) return &it->second;
  }
  return nullptr;
}

}  // namespace chat::transport
