#include "auth/password_hasher.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include <sodium.h>

#include <memory>

namespace chat::auth {

PasswordHasher::PasswordHasher(std::size_t threads, std::size_t queue_max)
    : pool_(threads), queue_max_(queue_max), dummy_hash_(hash_now("dummy password for timing")) {}

PasswordHasher::~PasswordHasher() {
  stop();
}

void PasswordHasher::stop() {
  pool_.join();
}

std::string PasswordHasher::hash_now(const std::string& password) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), ops_limit, mem_limit_bytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw std::bad_alloc();  // libsodium fails only when it cannot allocate the memory
  }
  return out;
}

bool PasswordHasher::verify_now(const std::string& stored, const std::string& password) {
  return crypto_pwhash_str_verify(stored.c_str(), password.data(), password.size()) == 0;
}

// Only a pointer crosses async_initiate (see StoreService::write for the GCC 12 reason).
template <class R, class Fn>
auto PasswordHasher::run(Fn&& fn) {
  using F = std::decay_t<Fn>;
  F* owned = new F(std::forward<Fn>(fn));
  return net::async_initiate<const net::use_awaitable_t<>&, void(std::exception_ptr, R)>(
      [this, owned](auto handler) {
        std::unique_ptr<F> f(owned);
        auto work = net::make_work_guard(net::get_associated_executor(handler));
        if (pending_.fetch_add(1) >= queue_max_) {
          pending_.fetch_sub(1);
          auto ex = work.get_executor();
          net::post(ex, [handler = std::move(handler)]() mutable {
            std::move(handler)(std::make_exception_ptr(HasherOverloaded()), R{});
          });
          return;
        }
        net::post(
            pool_, [this, f = std::move(f), handler = std::move(handler), work = std::move(work)]() mutable {
              std::exception_ptr error;
              R result{};
              try {
                result = (*f)();
              } catch (...) {
                error = std::current_exception();
              }
              pending_.fetch_sub(1);
              auto ex = work.get_executor();
              net::post(ex, [handler = std::move(handler), error, result = std::move(result)]() mutable {
                std::move(handler)(error, std::move(result));
              });
            });
      },
      net::use_awaitable);
}

net::awaitable<std::string> PasswordHasher::hash(std::string password) {
  auto job = [password = std::move(password)] { return hash_now(password); };
  co_return co_await run<std::string>(std::move(job));
}

net::awaitable<bool> PasswordHasher::verify(std::string stored, std::string password) {
  const bool known = !stored.empty();
  if (!known) stored = dummy_hash_;
  auto job = [stored = std::move(stored), password = std::move(password)] {
    return verify_now(stored, password);
  };
  const bool ok = co_await run<bool>(std::move(job));
  co_return known&& ok;
}

}  // namespace chat::auth
