// A fixed W5-like workload for the writer thread, to count its instructions with callgrind (wall
// time on a shared VM is noise): 32 senders in 16 direct conversations, `rounds` batches of
// `batch` sends each, the job doing what ChatService::send's does (append, serialize the frame,
// an after_commit hook). A gate job holds the writer while a batch queues, so every batch has
// exactly `batch` jobs. Not built by default:
//
//   cmake --build build/release --target chatd_store_writer_bench
//   valgrind --tool=callgrind --toggle-collect='chat::store::StoreService::run_batch*'
//     build/release/chatd_store_writer_bench /tmp/dir 20 410 [32]     (one command line)
//   callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep run_batch
//
// (Ir of run_batch - the same with ROUNDS=0) / (rounds * batch) is the writer's instructions per
// appended message: ROUNDS=0 is the setup (users, conversations). The gate batches stay in (an
// empty BEGIN/COMMIT each). SENDERS=820 with BATCH=410 is one send per conversation per batch.

#include "gateway/protocol.hpp"
#include "net/asio.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store_service.hpp"
#include "writer_gate.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = chat::net;
using chat::domain::ConversationId;
using chat::domain::UserId;
using chat::store::AppendOutcome;
using chat::store::StoreService;
using chat::store::WriteContext;

using chat::test::Gate;
using chat::test::hold_writer;

net::awaitable<int> send(StoreService* svc, chat::store::NewMessage* message) {
  auto job = [message](WriteContext& w) {
    auto r = w.store.append_message(*message, w.next_id(), w.now);
    if (r.outcome == AppendOutcome::appended) {
      auto frame = std::make_shared<const std::string>(chat::gateway::frames::message(r.message));
      w.after_commit([members = std::move(r.members), frame]() mutable {
        members.clear();
        frame.reset();
      });
    }
    return r;
  };
  auto r = co_await svc->write(std::move(job));
  co_return r.outcome == AppendOutcome::appended ? 1 : 0;
}

template <class Fn>
net::awaitable<std::invoke_result_t<Fn&, WriteContext&>> write_on(StoreService* svc, Fn* fn) {
  auto job = std::move(*fn);
  auto r = co_await svc->write(std::move(job));
  co_return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [ROUNDS=20] [BATCH=410] [SENDERS=32]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 410;
  // SENDERS = 2 * BATCH: one send per conversation per batch (W2-like) instead of ~26 (W5).
  const int senders = argc > 4 ? std::atoi(argv[4]) : 32;
  std::remove((dir + "/bench.db").c_str());
  std::remove((dir + "/bench.db-wal").c_str());
  std::remove((dir + "/bench.db-shm").c_str());

  net::io_context io;
  auto work = net::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  chat::domain::TimeMs clock = 1'750'000'000'000;
  {
    auto store = std::make_unique<chat::store::sqlite::SqliteStore>(
        chat::store::sqlite::SqliteStore::Options{dir + "/bench.db", 2});
    StoreService svc(std::move(store), StoreService::Options{}, [&clock] { return ++clock; });

    std::vector<UserId> users;
    for (int i = 0; i < senders; ++i) {
      auto create = [i](WriteContext& w) {
        std::string name = "user";
        name += std::to_string(i);
        std::string email = name;
        email += "@example.com";
        return w.store.create_user(chat::store::NewUser{name, email, "h", ""}, w.now).user.id;
      };
      users.push_back(net::co_spawn(io, write_on(&svc, &create), net::use_future).get());
    }
    std::vector<ConversationId> conversations;
    for (int i = 0; i < senders; i += 2) {
      auto open = [a = users[static_cast<std::size_t>(i)], b = users[static_cast<std::size_t>(i) + 1]](
                      WriteContext& w) { return w.store.open_direct(a, b, w.now).conversation_id; };
      conversations.push_back(net::co_spawn(io, write_on(&svc, &open), net::use_future).get());
    }

    std::vector<chat::store::NewMessage> messages(static_cast<std::size_t>(batch));
    long appended = 0;
    const auto started = std::chrono::steady_clock::now();
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < batch; ++i) {
        auto& m = messages[static_cast<std::size_t>(i)];
        const auto s = static_cast<std::size_t>(i % senders);
        m.sender_id = users[s];
        m.conversation_id = conversations[s / 2];
        m.client_msg_id = "bench-r";
        m.client_msg_id += std::to_string(r);
        m.client_msg_id += "-i";
        m.client_msg_id += std::to_string(i);
        m.body = "M|bench|";
        m.body += m.client_msg_id;
        m.body.append(100 - m.body.size(), 'x');
      }
      Gate gate;
      auto held = net::co_spawn(io, hold_writer(&svc, &gate), net::use_future);
      gate.entered.get_future().wait();
      std::vector<std::future<int>> results;
      results.reserve(messages.size());
      for (auto& m : messages) results.push_back(net::co_spawn(io, send(&svc, &m), net::use_future));
      while (svc.queued_writes() < messages.size()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      gate.release.set_value();
      held.get();
      for (auto& f : results) appended += f.get();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("appended %ld of %d in %.3f s (%.0f msg/s)\n", appended, rounds * batch, seconds,
                static_cast<double>(appended) / seconds);
    svc.stop();
  }
  work.reset();
  io_thread.join();
  return 0;
}
