#include "proc_stats.hpp"

#include <fstream>
#include <sstream>
#include <time.h>
#include <unistd.h>

namespace bench {

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

namespace {
double ticks_per_s() {
  static const double t = [] {
    const long v = sysconf(_SC_CLK_TCK);
    return v > 0 ? static_cast<double>(v) : 100.0;
  }();
  return t;
}

// utime + stime in seconds from /proc/<pid>/stat, or -1 when the process is gone.
double stat_cpu_s(int pid, long* threads) {
  const auto s = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  const auto r = s.rfind(')');
  if (r == std::string::npos) return -1;
  std::istringstream in(s.substr(r + 2));
  std::string f;
  double utime = 0;
  double stime = 0;
  // Fields after the comm: state(3) ppid(4) ... utime(14) stime(15) ... num_threads(20).
  for (int field = 3; field <= 20 && in >> f; ++field) {
    if (field == 14) utime = std::stod(f);
    if (field == 15) stime = std::stod(f);
    if (field == 20 && threads != nullptr) *threads = std::stol(f);
  }
  return (utime + stime) / ticks_per_s();
}
}  // namespace

ProcSample sample_process(int pid) {
  ProcSample out;
  if (pid <= 0) return out;
  const double cpu = stat_cpu_s(pid, &out.threads);
  if (cpu < 0) return out;
  out.alive = true;
  out.cpu_s = cpu;
  const auto status = read_small_file("/proc/" + std::to_string(pid) + "/status");
  const auto p = status.find("VmRSS:");
  if (p != std::string::npos) out.rss_kb = std::stol(status.substr(p + 6));
  return out;
}

ProcSample sample_processes(const std::vector<int>& pids) {
  ProcSample sum;
  sum.alive = !pids.empty();
  for (int pid : pids) {
    const auto one = sample_process(pid);
    sum.alive = sum.alive && one.alive;
    sum.rss_kb += one.rss_kb;
    sum.cpu_s += one.cpu_s;
    sum.threads += one.threads;
  }
  return sum;
}

double cpu_of(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) {
    const double c = stat_cpu_s(pid, nullptr);
    if (c > 0) total += c;
  }
  return total;
}

std::int64_t tcp_socket_mem_bytes() {
  const auto s = read_small_file("/proc/net/sockstat");
  const auto line = s.find("TCP:");
  if (line == std::string::npos) return 0;
  const auto mem = s.find(" mem ", line);
  const auto eol = s.find('\n', line);
  if (mem == std::string::npos || (eol != std::string::npos && mem > eol)) return 0;
  return std::stoll(s.substr(mem + 5)) * sysconf(_SC_PAGESIZE);
}

double machine_busy_s() {
  std::istringstream in(read_small_file("/proc/stat"));
  std::string cpu;
  in >> cpu;
  double v = 0;
  double total = 0;
  double idle = 0;
  // user nice system idle iowait irq softirq steal; guest time is already inside user.
  for (int i = 0; i < 8 && in >> v; ++i) {
    total += v;
    if (i == 3 || i == 4) idle += v;  // idle, iowait
  }
  return (total - idle) / ticks_per_s();
}

std::int64_t mono_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace bench
