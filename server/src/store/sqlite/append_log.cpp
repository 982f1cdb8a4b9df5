#include "store/sqlite/append_log.hpp"

#include "store/errors.hpp"

#include <sodium.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <random>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace chat::store::sqlite::detail {
namespace {

constexpr std::uint32_t kMagic = 0x4C414443;  // "CDAL" little-endian
constexpr std::uint16_t kVersion = 1;
constexpr std::uint8_t kKindMessage = 1;

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void store_u32(char* at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void store_u64(char* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_text(std::string& out, std::string_view text) {
  put_u32(out, static_cast<std::uint32_t>(text.size()));
  out.append(text);
}

// Reads little-endian fields from a checked frame; any overrun makes ok() false.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool ok() const noexcept { return ok_; }
  std::uint64_t uint(int width) {
    if (!ok_ || bytes_.size() - at_ < static_cast<std::size_t>(width)) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i)
      v |= std::uint64_t{static_cast<unsigned char>(bytes_[at_ + static_cast<std::size_t>(i)])} << (8 * i);
    at_ += static_cast<std::size_t>(width);
    return v;
  }
  std::int64_t int64() { return static_cast<std::int64_t>(uint(8)); }
  std::string text() {
    const auto n = static_cast<std::size_t>(uint(4));
    if (!ok_ || bytes_.size() - at_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(bytes_.substr(at_, n));
    at_ += n;
    return s;
  }
  bool done() const noexcept { return at_ == bytes_.size(); }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

std::array<unsigned char, AppendLog::kMacBytes> mac_of(std::string_view bytes) {
  std::array<unsigned char, AppendLog::kMacBytes> mac{};
  crypto_generichash(mac.data(), mac.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  return mac;
}

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw StoreUnavailable("append log " + path + ": " + what + ": " + std::strerror(errno));
}

void write_all(int fd, const char* data, std::size_t size, std::size_t offset, const std::string& path) {
  while (size > 0) {
    const auto n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", path);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::size_t>(n);
  }
}

// The first `size` bytes of the file (fewer if it is shorter).
std::string read_prefix(int fd, std::size_t size, const std::string& path) {
  std::string file(size, '\0');
  std::size_t got = 0;
  while (got < file.size()) {
    const auto n = ::pread(fd, file.data() + got, file.size() - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("read", path);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  file.resize(got);
  return file;
}

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  randombytes_buf(&v, sizeof v);
  return v;
}

// Decodes the run at the start of `file`: frames of `db_id`, all with the first frame's run id and
// consecutive indexes, each whole and with a good MAC. Returns the records; *end is where the run
// stops, *run_id / *frames what it was, *foreign whether the first frame was another database's.
std::vector<LoggedMessage> decode_run(std::string_view file,
                                      std::uint64_t db_id,
                                      std::size_t* end,
                                      std::uint64_t* run_id,
                                      std::uint64_t* frames,
                                      bool* foreign) {
  std::vector<LoggedMessage> out;
  std::size_t at = 0;
  *frames = 0;
  *foreign = false;
  for (;;) {
    if (file.size() - at < AppendLog::kHeaderBytes + AppendLog::kMacBytes) break;
    Reader header(file.substr(at, AppendLog::kHeaderBytes));
    const auto magic = header.uint(4);
    const auto version = header.uint(2);
    header.uint(2);
    const auto length = static_cast<std::size_t>(header.uint(4));
    const auto count = header.uint(4);
    const auto frame_db = header.uint(8);
    const auto frame_run = header.uint(8);
    const auto index = header.uint(8);
    if (magic != kMagic || version != kVersion) break;
    if (length > file.size() - at - AppendLog::kHeaderBytes - AppendLog::kMacBytes) break;
    const auto framed = file.substr(at, AppendLog::kHeaderBytes + length);
    const auto mac = mac_of(framed);
    if (std::memcmp(mac.data(), file.data() + at + AppendLog::kHeaderBytes + length, mac.size()) != 0) break;
    if (frame_db != db_id) {
      if (*frames == 0) *foreign = true;
      break;
    }
    if (*frames == 0) *run_id = frame_run;
    if (frame_run != *run_id || index != *frames) break;
    Reader records(file.substr(at + AppendLog::kHeaderBytes, length));
    std::vector<LoggedMessage> decoded;
    for (std::uint64_t i = 0; i < count && records.ok(); ++i) {
      if (records.uint(1) != kKindMessage) {
        decoded.clear();
        break;
      }
      LoggedMessage m;
      m.id = records.int64();
      m.conversation_id = records.int64();
      m.seq = records.int64();
      m.sender_id = records.int64();
      m.created_at = records.int64();
      const auto reply = records.int64();
      if (reply != 0) m.reply_to = reply;
      m.client_msg_id = records.text();
      m.body = records.text();
      decoded.push_back(std::move(m));
    }
    // A frame that checks but does not parse was written by something else: stop there.
    if (!records.ok() || !records.done() || decoded.size() != count) break;
    for (auto& m : decoded) out.push_back(std::move(m));
    at += AppendLog::kHeaderBytes + length + AppendLog::kMacBytes;
    ++*frames;
  }
  *end = at;
  return out;
}

}  // namespace

AppendLog::AppendLog(std::string path, std::uint64_t db_id, std::size_t max_bytes)
    : path_(std::move(path)), db_id_(db_id), max_bytes_(max_bytes) {
  if (sodium_init() < 0) throw StoreUnavailable("append log: libsodium failed to initialise");
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) fail("open", path_);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    ::close(fd_);
    fail("stat", path_);
  }
  try {
    if (static_cast<std::size_t>(st.st_size) < kInitialBytes) {
      // Blocks allocated once, so a frame's fdatasync overwrites instead of extending the file.
      const std::string zeros(kInitialBytes - static_cast<std::size_t>(st.st_size), '\0');
      write_all(fd_, zeros.data(), zeros.size(), static_cast<std::size_t>(st.st_size), path_);
      if (::fsync(fd_) != 0) fail("fsync", path_);
      // The new file's directory entry, so the log is there after a power cut.
      const auto slash = path_.find_last_of('/');
      const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
      if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
    }
  } catch (...) {
    ::close(fd_);
    throw;
  }
  run_id_ = random_u64();
  begin_frame();
}

AppendLog::~AppendLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<LoggedMessage> AppendLog::recover() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail("stat", path_);
  const auto file = read_prefix(fd_, static_cast<std::size_t>(st.st_size), path_);
  std::size_t end = 0;
  std::uint64_t run = 0;
  std::uint64_t frames = 0;
  bool foreign = false;
  auto records = decode_run(file, db_id_, &end, &run, &frames, &foreign);
  if (foreign) ++ignored_frames_;
  return records;
}

void AppendLog::begin_frame() {
  pending_.assign(kHeaderBytes, '\0');
  records_ = 0;
}

void AppendLog::add(domain::MessageId id,
                    domain::ConversationId conversation,
                    domain::Seq seq,
                    domain::UserId sender,
                    domain::TimeMs created_at,
                    std::optional<domain::MessageId> reply_to,
                    std::string_view client_msg_id,
                    std::string_view body) {
  pending_.push_back(static_cast<char>(kKindMessage));
  put_u64(pending_, static_cast<std::uint64_t>(id));
  put_u64(pending_, static_cast<std::uint64_t>(conversation));
  put_u64(pending_, static_cast<std::uint64_t>(seq));
  put_u64(pending_, static_cast<std::uint64_t>(sender));
  put_u64(pending_, static_cast<std::uint64_t>(created_at));
  put_u64(pending_, static_cast<std::uint64_t>(reply_to.value_or(0)));
  put_text(pending_, client_msg_id);
  put_text(pending_, body);
  ++records_;
}

void AppendLog::truncate_to(Mark mark) noexcept {
  if (mark.bytes < kHeaderBytes || mark.bytes > pending_.size()) return;
  pending_.resize(mark.bytes);
  records_ = mark.records;
}

bool AppendLog::fits() const noexcept {
  return offset_ + pending_.size() + kMacBytes <= max_bytes_;
}

void AppendLog::commit() {
  if (records_ == 0) return;
  const auto length = pending_.size() - kHeaderBytes;
  if (length > std::numeric_limits<std::uint32_t>::max()) {
    discard_pending();
    throw StoreUnavailable("append log: batch too large");
  }
  char* h = pending_.data();
  store_u32(h, kMagic);
  h[4] = static_cast<char>(kVersion & 0xff);
  h[5] = static_cast<char>(kVersion >> 8);
  h[6] = h[7] = 0;
  store_u32(h + 8, static_cast<std::uint32_t>(length));
  store_u32(h + 12, records_);
  store_u64(h + 16, db_id_);
  store_u64(h + 24, run_id_);
  store_u64(h + 32, frame_index_);
  const auto mac = mac_of(pending_);
  pending_.append(reinterpret_cast<const char*>(mac.data()), mac.size());
  try {
    write_all(fd_, pending_.data(), pending_.size(), offset_, path_);
    if (::fdatasync(fd_) != 0) fail("fdatasync", path_);
  } catch (...) {
    // The frame may be on disk whole: a later frame at this offset replaces it, and recovery of
    // this run stops at it only if it checks, which it then rightly does (it was not acknowledged,
    // but its sends were not lost either: a retry finds them by client_msg_id).
    begin_frame();
    throw;
  }
  offset_ += pending_.size();
  ++frame_index_;
  ++frames_written_;
  begin_frame();
}

void AppendLog::discard_pending() noexcept {
  begin_frame();
}

void AppendLog::reset() noexcept {
  // The old run's first magic is cleared, so a clean restart finds nothing to replay. Not synced:
  // after a power cut the old run may be back, and replaying it is harmless (idempotent).
  if (offset_ > 0) {
    const char zeros[4] = {};
    [[maybe_unused]] const auto n = ::pwrite(fd_, zeros, sizeof zeros, 0);
  }
  offset_ = 0;
  frame_index_ = 0;
  run_id_ = random_u64();
  begin_frame();
}

std::vector<LoggedMessage> AppendLog::committed() const {
  if (offset_ == 0) return {};
  const auto file = read_prefix(fd_, offset_, path_);
  std::size_t end = 0;
  std::uint64_t run = 0;
  std::uint64_t frames = 0;
  bool foreign = false;
  auto records = decode_run(file, db_id_, &end, &run, &frames, &foreign);
  if (end != offset_ || run != run_id_)
    throw StoreCorrupt("append log " + path_ + ": the current run does not read back");
  return records;
}

}  // namespace chat::store::sqlite::detail
