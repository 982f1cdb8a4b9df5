// chatd: wiring and lifecycle. The only file that names concrete backends.

#include "api/router.hpp"
#include "app/config.hpp"
#include "auth/password_hasher.hpp"
#include "auth/token_cache.hpp"
#include "bus/local/local_bus.hpp"
#include "bus/redis/redis_bus.hpp"
#include "bus/redis/redis_client.hpp"
#include "bus/redis/redis_rate_limiter.hpp"
#include "gateway/hub.hpp"
#include "net/run_thread.hpp"
#include "net/server.hpp"
#include "net/static_files.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "presence/presence_tracker.hpp"
#include "presence/redis_presence_directory.hpp"
#include "service/chat_service.hpp"
#include "store/errors.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store_service.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>

#include <sodium.h>
#ifdef CHATD_WITH_MIMALLOC
#include <mimalloc.h>
#endif

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <sys/resource.h>
#include <thread>

namespace {

using namespace chat;

constexpr auto kShutdownGrace = std::chrono::seconds(5);

domain::TimeMs wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Each connection is a file; the default soft limit (1024) would cap us far below the hard one.
void raise_open_files_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) obs::log_warn("could not raise the open-files limit");
  }
  obs::log_info("open-files limit: " + std::to_string(lim.rlim_cur));
}

// Which allocator malloc() reaches (server/CMakeLists.txt, CHATD_MIMALLOC).
void log_allocator() {
#ifdef CHATD_WITH_MIMALLOC
  void* probe = std::malloc(64);
  const bool ours = mi_is_in_heap_region(probe);
  std::free(probe);
  obs::log_info(std::string("allocator: ") +
                (ours ? "mimalloc " : "glibc (mimalloc linked but not in use) ") +
                std::to_string(mi_version()));
#else
  obs::log_info("allocator: glibc");
#endif
}

// The one place that names a concrete Store: picked by the scheme of --store.
std::unique_ptr<store::Store> make_store(const app::Config& config, const std::string& sqlite_path) {
  if (config.store == "sqlite") {
    obs::log_info("store: SQLite " + sqlite_path);
    auto store =
        std::make_unique<store::sqlite::SqliteStore>(store::sqlite::SqliteStore::Options{sqlite_path, 4});
    if (const auto n = store->replayed_at_open(); n > 0)
      obs::log_info("store: " + std::to_string(n) + " acknowledged sends replayed from the append log");
    return store;
  }
  obs::log_info("store: PostgreSQL");
  return std::make_unique<store::postgres::PostgresStore>(
      store::postgres::PostgresStore::Options{config.store, 4});
}

int run(const app::Config& config) {
  obs::LogLevel level{};
  obs::parse_log_level(config.log_level, level);
  obs::set_log_level(level);
  raise_open_files_limit();
  log_allocator();

  std::filesystem::create_directories(config.data_dir);
  const auto db_path = (std::filesystem::path(config.data_dir) / "chatd.db").string();

  obs::Metrics metrics;
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  const auto thread_count =
      static_cast<std::size_t>(config.threads > 0 ? config.threads : static_cast<int>(cores));

  store::StoreService::Options store_options;
  store_options.node_id = static_cast<std::uint32_t>(config.node_id);
  store_options.commit_window = config.commit_window;
  store_options.commit_window_min_rate = config.commit_window_min_rate;
  store_options.publish_interval = config.publish_interval;
  store::StoreService store(
      make_store(config, db_path), store_options, wall_ms,
      [&metrics](std::size_t jobs, double seconds, double window_seconds) {
        metrics.store_write_seconds.observe(seconds);
        metrics.store_batch_size.observe(static_cast<double>(jobs));
        if (window_seconds > 0) metrics.store_commit_window_seconds.observe(window_seconds);
      },
      [&metrics](double seconds) { metrics.store_publish_seconds.observe(seconds); });

  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::io_context*> shards;
  for (std::size_t i = 0; i < thread_count; ++i) {
    contexts.push_back(std::make_unique<net::io_context>(1));
    shards.push_back(contexts.back().get());
  }
  gateway::Hub hub(shards);
  hub.on_delivered = [&metrics](std::size_t n) {
    metrics.messages_out.fetch_add(n, std::memory_order_relaxed);
  };

  // Access tokens verified recently (revocations invalidate them on every node; see TokenCache).
  std::unique_ptr<auth::TokenCache> token_cache;
  if (config.auth_cache_ttl.count() > 0)
    token_cache =
        std::make_unique<auth::TokenCache>(auth::TokenCache::Options{100'000, config.auth_cache_ttl});

  // The one place that names a concrete Bus: picked by the scheme of --bus. In cluster mode the
  // same Redis also holds presence and the auth rate limits.
  std::unique_ptr<bus::Bus> fanout;
  bus::redis::RedisBus* redis_bus = nullptr;
  std::unique_ptr<bus::redis::RedisClient> presence_redis;
  std::unique_ptr<bus::redis::RedisClient> limits_redis;
  std::unique_ptr<presence::PresenceDirectory> presence_directory;
  service::ChatService::Options service_options;
  if (config.bus == "local") {
    fanout = std::make_unique<bus::local::LocalBus>(hub);
  } else {
    bus::redis::RedisBus::Options bus_options;
    if (!bus::redis::parse_redis_url(config.bus, bus_options.host, bus_options.port))
      throw std::runtime_error("invalid --bus URL: " + config.bus);
    bus_options.node_id = static_cast<std::uint32_t>(config.node_id);
    auto redis = std::make_unique<bus::redis::RedisBus>(hub, bus_options);
    redis_bus = redis.get();
    if (token_cache) {
      // Until the subscription is confirmed this node could miss an invalidation: no cache.
      token_cache->set_enabled(false);
      auto* cache = token_cache.get();
      redis->on_invalidate = [cache](domain::SessionId s) { cache->invalidate_session(s); };
      redis->on_subscription = [cache](bool up) {
        if (cache->enabled() != up)
          obs::log_info(std::string("auth: token cache ") +
                        (up ? "enabled (subscribed)" : "disabled (no subscription)"));
        cache->set_enabled(up);
      };
      cache->set_broadcast([redis_bus](domain::SessionId s) { redis_bus->invalidate_tokens(s); });
    }
    redis->start();
    fanout = std::move(redis);
    obs::log_info("bus: redis " + bus_options.host + ":" + std::to_string(bus_options.port) + ", node id " +
                  std::to_string(config.node_id));
    bus::redis::RedisClient::Options client_options;
    client_options.host = bus_options.host;
    client_options.port = bus_options.port;
    presence_redis = std::make_unique<bus::redis::RedisClient>(client_options);
    limits_redis = std::make_unique<bus::redis::RedisClient>(client_options);
    presence_directory = std::make_unique<presence::RedisPresenceDirectory>(
        *presence_redis, "chatd:p:", config.presence_offline_ttl);
    service_options.auth_ip_limiter = std::make_shared<bus::redis::RedisRateLimiter>(
        *limits_redis, "chatd:rl:ip:", config.rate_auth_ip_per_min,
        std::max(1.0, config.rate_auth_ip_per_min));
    service_options.auth_account_limiter = std::make_shared<bus::redis::RedisRateLimiter>(
        *limits_redis, "chatd:rl:account:", config.rate_auth_account_per_min,
        std::max(1.0, config.rate_auth_account_per_min));
  }

  auth::PasswordHasher hasher(static_cast<std::size_t>(config.hash_threads),
                              static_cast<std::size_t>(config.hash_queue_max));
  service_options.token_cache = token_cache.get();
  service_options.access_ttl = config.access_ttl;
  service_options.refresh_ttl = config.refresh_ttl;
  service_options.auth_per_ip_per_min = config.rate_auth_ip_per_min;
  service_options.auth_per_account_per_min = config.rate_auth_account_per_min;
  service::ChatService service(store, *fanout, hasher, metrics, service_options, wall_ms);
  auto trusted = api::TrustedProxies::parse(config.trusted_proxies);
  if (!trusted) throw std::runtime_error("invalid --trusted-proxy: " + config.trusted_proxies);
  if (!trusted->empty()) obs::log_info("trusting X-Forwarded-For from " + config.trusted_proxies);
  api::Router router(service, metrics, *trusted);

  transport::ServerContext::Options net_options;
  net_options.ws_idle_timeout = config.ws_idle_timeout;
  net_options.ws_coalesce = config.ws_coalesce;
  net_options.ws_coalesce_min_sends = config.ws_coalesce_min_sends;
  net_options.ws_coalesce_min_busy = config.ws_coalesce_min_busy;
  net_options.auth_timeout = config.auth_timeout;
  net_options.send_rate_per_s = config.rate_send_per_sec;
  net_options.allowed_origins = config.allowed_origins;
  // Fire and forget: last_seen is best effort (a crash loses at most the last grace period).
  auto last_seen_sink = [&store, ex = shards.front()->get_executor()](domain::UserId user,
                                                                      domain::TimeMs when) {
    net::co_spawn(
        ex,
        [&store, user, when]() -> net::awaitable<void> {
          auto job = [user, when](store::WriteContext& w) {
            w.store.set_last_seen(user, when);
            return true;
          };
          co_await store.write(std::move(job));
        },
        [](std::exception_ptr) {});
  };
  std::unique_ptr<presence::PresenceTracker> presence_owner;
  if (presence_directory) {
    presence::PresenceTracker::Options presence_options;
    presence_options.grace = config.presence_grace;
    presence_options.node_id = static_cast<std::uint32_t>(config.node_id);
    presence_options.remote = true;
    presence_options.heartbeat = config.presence_heartbeat;
    presence_options.node_ttl = config.presence_node_ttl;
    presence_options.sweep_slack = config.presence_sweep_slack;
    presence_owner = std::make_unique<presence::PresenceTracker>(
        *shards.front(), *fanout, *presence_directory, presence_options, wall_ms, last_seen_sink);
    presence_owner->start();
  } else {
    presence_owner = std::make_unique<presence::PresenceTracker>(
        *shards.front(), *fanout, config.presence_grace, wall_ms, last_seen_sink);
  }
  auto& presence = *presence_owner;
  std::unique_ptr<transport::StaticFiles> web;
  if (!config.web_root.empty()) {
    web = std::make_unique<transport::StaticFiles>(config.web_root);
    obs::log_info("serving the web client from " + config.web_root + " (" + std::to_string(web->size()) +
                  " files)");
  }
  transport::ServerContext server_ctx{net_options, router, service, hub, metrics, presence, web.get()};
  transport::Server server(shards, server_ctx);

  const auto endpoint =
      server.listen(tcp::endpoint(net::ip::make_address(config.listen_host), config.listen_port));
  server.start_accepting();

  std::promise<int> stop_signal;
  net::signal_set signals(*shards.front(), SIGINT, SIGTERM);
  signals.async_wait([&stop_signal](const boost::system::error_code& ec, int signo) {
    if (!ec) stop_signal.set_value(signo);
  });

  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  for (auto* ctx : shards) {
    guards.push_back(net::make_work_guard(*ctx));
    threads.emplace_back([ctx, index = threads.size()] {
      const std::string name = "chatd-io-" + std::to_string(index);
      transport::run_io_thread(*ctx, name.c_str());
    });
  }

  std::printf("chatd listening on %s:%u\n", endpoint.address().to_string().c_str(), endpoint.port());
  std::fflush(stdout);

  const int signo = stop_signal.get_future().get();
  obs::log_info("signal " + std::to_string(signo) + ": shutting down");

  // 1. No new connections or requests; 2. every WebSocket closes with 1001; 3. requests in
  // progress finish (their writes complete); 4. the writer drains its queue; 5. threads stop.
  server_ctx.stopping = true;
  server.stop_accepting();
  hub.close_all();
  const auto deadline = std::chrono::steady_clock::now() + kShutdownGrace;
  while (std::chrono::steady_clock::now() < deadline &&
         (server_ctx.websockets.load() > 0 || server_ctx.in_flight.load() > 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  presence.stop();  // after the sockets closed: their disconnects are reported first
  store.stop();
  if (redis_bus != nullptr) redis_bus->stop();
  guards.clear();
  for (auto& ctx : contexts) ctx->stop();
  for (auto& t : threads) t.join();
  hasher.stop();
  obs::log_info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed =
      app::parse_config(argc, argv, [](const char* name) -> const char* { return std::getenv(name); });
  if (!parsed.config) {
    std::fputs(parsed.output.c_str(), parsed.exit_code == 0 ? stdout : stderr);
    return parsed.exit_code;
  }
  if (sodium_init() < 0) {
    std::fputs("chatd: libsodium failed to initialize\n", stderr);
    return 1;
  }
  try {
    return run(*parsed.config);
  } catch (const store::StoreError& e) {
    std::fprintf(stderr, "chatd: store: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chatd: %s\n", e.what());
    return 1;
  }
}
