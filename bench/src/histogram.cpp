#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>

namespace bench {

int Histogram::index_of(std::int64_t v) noexcept {
  if (v < sub_buckets) return v < 0 ? 0 : static_cast<int>(v);
  const auto u = static_cast<std::uint64_t>(v);
  const int e = 63 - std::countl_zero(u);  // floor(log2 v) >= 6
  if (e >= max_exponent) return bucket_count - 1;
  const auto m = static_cast<int>(u >> (e - 6));  // 64..127
  return sub_buckets + (e - 6) * sub_buckets + (m - sub_buckets);
}

std::int64_t Histogram::lower_bound(int index) noexcept {
  if (index < sub_buckets) return index;
  const int e = (index - sub_buckets) / sub_buckets + 6;
  const std::int64_t m = (index - sub_buckets) % sub_buckets + sub_buckets;
  return m << (e - 6);
}

std::int64_t Histogram::width(int index) noexcept {
  if (index < sub_buckets) return 1;
  const int e = (index - sub_buckets) / sub_buckets + 6;
  return std::int64_t{1} << (e - 6);
}

void Histogram::add(std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  ++buckets_[static_cast<std::size_t>(index_of(ns))];
  ++count_;
  sum_ += static_cast<double>(ns);
  max_ = std::max(max_, ns);
}

void Histogram::merge(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

std::int64_t Histogram::percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  const auto target = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(static_cast<double>(count_) * p / 100.0)));
  std::uint64_t acc = 0;
  for (int i = 0; i < bucket_count; ++i) {
    acc += buckets_[static_cast<std::size_t>(i)];
    if (acc >= target) return std::min(max_, lower_bound(i) + width(i) / 2);
  }
  return max_;
}

std::string Histogram::encode() const {
  std::string out = std::to_string(count_) + "," + std::to_string(static_cast<long long>(sum_)) + "," +
                    std::to_string(max_) + ";";
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    if (buckets_[i] == 0) continue;
    out += std::to_string(i);
    out += ':';
    out += std::to_string(buckets_[i]);
    out += ',';
  }
  return out;
}

namespace {
// Parses the unsigned number at the front of `s` and drops it and one separator.
std::uint64_t take_number(std::string_view& s) {
  std::uint64_t v = 0;
  const auto* begin = s.data();
  const auto* end = s.data() + s.size();
  auto r = std::from_chars(begin, end, v);
  const auto used = static_cast<std::size_t>(r.ptr - begin);
  s.remove_prefix(std::min(s.size(), used + 1));
  return v;
}
}  // namespace

Histogram Histogram::decode(std::string_view text) {
  Histogram h;
  const auto semi = text.find(';');
  if (semi == std::string_view::npos) return h;
  auto head = text.substr(0, semi);
  h.count_ = take_number(head);
  h.sum_ = static_cast<double>(take_number(head));
  h.max_ = static_cast<std::int64_t>(take_number(head));
  auto rest = text.substr(semi + 1);
  while (!rest.empty()) {
    const auto idx = take_number(rest);
    const auto n = take_number(rest);
    if (idx < h.buckets_.size()) h.buckets_[idx] += n;
  }
  return h;
}

boost::json::object Histogram::summary_ms() const {
  boost::json::object o;
  o["count"] = count_;
  auto ms = [](double ns) { return std::round(ns / 1e3) / 1e3; };  // ms with microsecond resolution
  if (count_ == 0) {
    for (const char* k : {"mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"}) o[k] = nullptr;
    return o;
  }
  o["mean_ms"] = ms(mean_ns());
  o["p50_ms"] = ms(static_cast<double>(percentile(50)));
  o["p90_ms"] = ms(static_cast<double>(percentile(90)));
  o["p99_ms"] = ms(static_cast<double>(percentile(99)));
  o["p999_ms"] = ms(static_cast<double>(percentile(99.9)));
  o["max_ms"] = ms(static_cast<double>(max_));
  return o;
}

}  // namespace bench
