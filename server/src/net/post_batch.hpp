#pragma once

#include "net/asio.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <utility>
#include <vector>

namespace chat::transport {

// Coalesces the cross-thread posts one thread makes during a scope: every task for one
// io_context leaves in a single post when the scope ends, and runs there in the order it was
// added. The store writer opens one around the end of a committed batch, so the fan-out of all
// its messages and the completions of all its jobs (the acks) reach each I/O thread with one
// wake-up instead of one per event and one per completion.
//
// Outside a scope PostBatch::post is a plain net::post. Scopes nest (the inner one flushes on
// its own). A task must not throw: the tasks after it in the same post would not run.
class PostBatch {
 public:
  PostBatch() : previous_(current_) { current_ = this; }
  ~PostBatch() {
    flush();
    current_ = previous_;
  }
  PostBatch(const PostBatch&) = delete;
  PostBatch& operator=(const PostBatch&) = delete;

  template <class F>
  static void post(net::io_context& io, F&& fn) {
    if (current_ != nullptr) {
      current_->add(io, std::forward<F>(fn));
    } else {
      net::post(io, std::forward<F>(fn));
    }
  }

  // The io_context behind an executor, or nullptr when it is not a plain io_context executor.
  static net::io_context* context_of(const net::any_io_executor& ex) {
    if (const auto* e = ex.target<net::io_context::executor_type>()) return &e->context();
    return nullptr;
  }

  // Posts what was added so far (one post per io_context).
  void flush() {
    for (auto& group : groups_) {
      net::post(*group.io, [tasks = std::move(group.tasks)]() mutable {
        for (auto& task : tasks) task->run();
      });
    }
    groups_.clear();
  }

 private:
  struct Task {
    virtual ~Task() = default;
    virtual void run() = 0;
  };
  template <class F>
  struct TaskOf final : Task {
    explicit TaskOf(F f) : fn(std::move(f)) {}
    void run() override { fn(); }
    F fn;
  };
  struct Group {
    net::io_context* io;
    std::vector<std::unique_ptr<Task>> tasks;
  };

  template <class F>
  void add(net::io_context& io, F&& fn) {
    Group* group = nullptr;
    for (auto& g : groups_) {
      if (g.io == &io) {
        group = &g;
        break;
      }
    }
    if (group == nullptr) group = &groups_.emplace_back(Group{&io, {}});
    group->tasks.push_back(std::make_unique<TaskOf<std::decay_t<F>>>(std::forward<F>(fn)));
  }

  std::vector<Group> groups_;
  PostBatch* previous_;
  static inline thread_local PostBatch* current_ = nullptr;
};

}  // namespace chat::transport
