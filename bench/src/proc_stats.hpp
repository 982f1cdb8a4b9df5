#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

// Readings from /proc. Every function returns zeros (alive = false) instead of throwing when the
// file is gone, so a dead server shows up in the report rather than aborting it.
struct ProcSample {
  bool alive = false;
  long rss_kb = 0;   // VmRSS of the process (chatd is one process with threads)
  double cpu_s = 0;  // utime + stime of all its threads, seconds
  long threads = 0;
};

ProcSample sample_process(int pid);
// The sum over several processes (a cluster's nodes); alive only if every one is alive.
ProcSample sample_processes(const std::vector<int>& pids);
// CPU seconds (utime + stime) of a set of processes, e.g. chat-bench and its workers.
double cpu_of(const std::vector<int>& pids);
// Kernel TCP socket memory: the `mem` field of the `TCP:` line of /proc/net/sockstat, in bytes
// (the kernel counts pages; this multiplies by the page size).
std::int64_t tcp_socket_mem_bytes();
// Busy CPU seconds of the whole machine (all cores) from /proc/stat.
double machine_busy_s();
// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine.
std::int64_t mono_ns() noexcept;
// Contents of a small text file, or "" when it cannot be read.
std::string read_small_file(const std::string& path);

}  // namespace bench
