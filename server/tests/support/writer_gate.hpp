#pragma once

#include "net/asio.hpp"
#include "store/store_service.hpp"

#include <future>

// Holds the StoreService writer thread inside one job until released, so that the jobs queued
// meanwhile form one known batch (unit tests and tools/store_writer_bench).
namespace chat::test {

struct Gate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
};

inline net::awaitable<int> hold_writer(store::StoreService* svc, Gate* gate) {
  auto job = [gate](store::WriteContext&) {
    gate->entered.set_value();
    gate->released.wait();
    return 0;
  };
  const int r = co_await svc->write(std::move(job));
  co_return r;
}

}  // namespace chat::test
