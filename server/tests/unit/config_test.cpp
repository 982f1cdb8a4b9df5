// app::parse_config: defaults, environment, flags, and refusals. The environment is injected: a
// map stands in for getenv.

#include "app/config.hpp"

#include "bus/redis/redis_bus.hpp"

#include <gtest/gtest.h>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace {

using chat::app::Config;
using chat::app::ParseResult;

// The injected environment (parse_config takes a plain function pointer, hence a global).
std::map<std::string, std::string>& fake_env() {
  static std::map<std::string, std::string> env;
  return env;
}

const char* lookup(const char* name) {
  const auto it = fake_env().find(name);
  return it == fake_env().end() ? nullptr : it->second.c_str();
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { fake_env().clear(); }
  void TearDown() override { fake_env().clear(); }

  // Parses `chatd args...`.
  static ParseResult parse(std::initializer_list<std::string> args) {
    std::vector<std::string> storage = {"chatd"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<const char*> argv;
    for (const auto& a : storage) argv.push_back(a.c_str());
    return chat::app::parse_config(static_cast<int>(argv.size()), argv.data(), &lookup);
  }

  // Parses and expects success.
  static Config ok(std::initializer_list<std::string> args) {
    auto r = parse(args);
    EXPECT_TRUE(r.config) << r.output;
    EXPECT_EQ(r.exit_code, 0);
    return r.config.value_or(Config{});
  }

  // Parses and expects the usage error exit (2) with a message.
  static std::string refused(std::initializer_list<std::string> args) {
    auto r = parse(args);
    EXPECT_FALSE(r.config);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_FALSE(r.output.empty());
    return r.output;
  }
};

TEST_F(ConfigTest, DefaultsMatchTheSpec) {
  // Goal: with no flags and no environment, every setting has the documented default. Method:
  // parse `chatd` alone.
  const auto c = ok({});
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.threads, 0);  // one per core
  EXPECT_EQ(c.ws_idle_timeout.count(), 60'000);
  EXPECT_EQ(c.auth_timeout.count(), 10'000);
  EXPECT_EQ(c.rate_auth_ip_per_min, 30);
  EXPECT_EQ(c.rate_auth_account_per_min, 10);
  EXPECT_EQ(c.rate_send_per_sec, 50);
  EXPECT_EQ(c.access_ttl.count(), 3600);
  EXPECT_EQ(c.refresh_ttl.count(), 30LL * 24 * 3600);
  EXPECT_TRUE(c.allowed_origins.empty());
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.web_root, "");  // no web client
  EXPECT_EQ(c.presence_grace.count(), 5'000);
}

TEST_F(ConfigTest, CommitWindowFlagsAndEnvironment) {
  // Goal: the store commit window is on by default (1000 us above 2000 writes/s), can be turned off
  // with 0, set from the environment, and refuses out-of-range values. Method: parse each form.
  auto c = ok({});
  EXPECT_EQ(c.commit_window.count(), 1000);
  EXPECT_EQ(c.commit_window_min_rate, 2000);
  c = ok({"--commit-window-us", "0", "--commit-window-min-rate=500.5"});
  EXPECT_EQ(c.commit_window.count(), 0);
  EXPECT_EQ(c.commit_window_min_rate, 500.5);
  fake_env() = {{"CHATD_COMMIT_WINDOW_US", "250"}, {"CHATD_COMMIT_WINDOW_MIN_RATE", "4000"}};
  c = ok({});
  EXPECT_EQ(c.commit_window.count(), 250);
  EXPECT_EQ(c.commit_window_min_rate, 4000);
  fake_env().clear();
  refused({"--commit-window-us", "-1"});
  refused({"--commit-window-us", "100001"});
  refused({"--commit-window-min-rate", "0"});
}

TEST_F(ConfigTest, CoalescingFlagsAndEnvironment) {
  // Goal: write coalescing has the documented defaults (20 ms window, from 20000 sends/s and 70 %
  // busy per I/O thread: running or waiting for a CPU), takes flags and environment, and refuses a busy share
  // above 100 %.
  auto c = ok({});
  EXPECT_EQ(c.ws_coalesce.count(), 20);
  EXPECT_EQ(c.ws_coalesce_min_sends, 20'000U);
  EXPECT_EQ(c.ws_coalesce_min_busy, 70U);
  c = ok({"--ws-coalesce-ms", "5", "--ws-coalesce-min-sends=0", "--ws-coalesce-min-busy", "0"});
  EXPECT_EQ(c.ws_coalesce.count(), 5);
  EXPECT_EQ(c.ws_coalesce_min_sends, 0U);
  EXPECT_EQ(c.ws_coalesce_min_busy, 0U);
  fake_env() = {{"CHATD_WS_COALESCE_MIN_BUSY", "80"}};
  EXPECT_EQ(ok({}).ws_coalesce_min_busy, 80U);
  fake_env().clear();
  refused({"--ws-coalesce-min-busy", "101"});
  refused({"--ws-coalesce-min-busy", "-1"});
}

TEST_F(ConfigTest, EnvironmentOverridesDefaults) {
  // Goal: each CHATD_* variable sets its option. Method: set them all, parse without flags.
  fake_env() = {{"CHATD_LISTEN", "0.0.0.0:9001"},
                {"CHATD_DATA_DIR", "/var/lib/chatd"},
                {"CHATD_THREADS", "3"},
                {"CHATD_WS_IDLE_TIMEOUT_MS", "1234"},
                {"CHATD_AUTH_TIMEOUT_MS", "567"},
                {"CHATD_RATE_AUTH_IP_PER_MIN", "7"},
                {"CHATD_RATE_AUTH_ACCOUNT_PER_MIN", "2.5"},
                {"CHATD_RATE_SEND_PER_SEC", "9"},
                {"CHATD_ACCESS_TTL_S", "60"},
                {"CHATD_REFRESH_TTL_S", "120"},
                {"CHATD_ALLOWED_ORIGINS", "https://a.example,https://b.example"},
                {"CHATD_LOG_LEVEL", "debug"},
                {"CHATD_WEB_ROOT", "/srv/www"},
                {"CHATD_PRESENCE_GRACE_MS", "250"}};
  const auto c = ok({});
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9001);
  EXPECT_EQ(c.data_dir, "/var/lib/chatd");
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.ws_idle_timeout.count(), 1234);
  EXPECT_EQ(c.auth_timeout.count(), 567);
  EXPECT_EQ(c.rate_auth_ip_per_min, 7);
  EXPECT_EQ(c.rate_auth_account_per_min, 2.5);
  EXPECT_EQ(c.rate_send_per_sec, 9);
  EXPECT_EQ(c.access_ttl.count(), 60);
  EXPECT_EQ(c.refresh_ttl.count(), 120);
  EXPECT_EQ(c.allowed_origins, (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.web_root, "/srv/www");
  EXPECT_EQ(c.presence_grace.count(), 250);
}

TEST_F(ConfigTest, EmptyEnvironmentValueIsIgnored) {
  // Goal: a variable set to "" does not override the default. Method: CHATD_LISTEN="".
  fake_env() = {{"CHATD_LISTEN", ""}, {"CHATD_THREADS", ""}};
  const auto c = ok({});
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.threads, 0);
}

TEST_F(ConfigTest, FlagsOverrideEnvironment) {
  // Goal: a flag wins over its variable. Method: set both to different values.
  fake_env() = {{"CHATD_LISTEN", "0.0.0.0:9001"}, {"CHATD_THREADS", "3"}, {"CHATD_LOG_LEVEL", "debug"}};
  const auto c = ok({"--listen", "127.0.0.1:7000", "--threads", "5"});
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 7000);
  EXPECT_EQ(c.threads, 5);
  EXPECT_EQ(c.log_level, "debug");  // not given as a flag: the variable stays
}

TEST_F(ConfigTest, EqualsFormAndSpaceFormAreTheSame) {
  // Goal: `--flag=value` and `--flag value` both work, also mixed. Method: every option in the
  // `=` form.
  const auto c = ok({"--listen=10.0.0.1:81", "--data-dir=/tmp/x", "--threads=2", "--ws-idle-timeout-ms=5",
                     "--auth-timeout-ms=6", "--rate-auth-ip-per-min=1", "--rate-auth-account-per-min=2",
                     "--rate-send-per-sec=3", "--access-ttl-s=4", "--refresh-ttl-s=8",
                     "--allowed-origins=x,,y", "--log-level=error"});
  EXPECT_EQ(c.listen_host, "10.0.0.1");
  EXPECT_EQ(c.listen_port, 81);
  EXPECT_EQ(c.data_dir, "/tmp/x");
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.ws_idle_timeout.count(), 5);
  EXPECT_EQ(c.auth_timeout.count(), 6);
  EXPECT_EQ(c.rate_auth_ip_per_min, 1);
  EXPECT_EQ(c.rate_auth_account_per_min, 2);
  EXPECT_EQ(c.rate_send_per_sec, 3);
  EXPECT_EQ(c.access_ttl.count(), 4);
  EXPECT_EQ(c.refresh_ttl.count(), 8);
  EXPECT_EQ(c.allowed_origins, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(c.log_level, "error");
  EXPECT_EQ(ok({"--data-dir", "/a", "--threads=4"}).threads, 4);
  // The last occurrence wins.
  EXPECT_EQ(ok({"--threads", "2", "--threads=7"}).threads, 7);
}

TEST_F(ConfigTest, ListenForms) {
  // Goal: --listen takes HOST:PORT with port 0..65535 (0 = pick a free one) and bracketed IPv6.
  // Method: valid forms, then each broken one.
  auto c = ok({"--listen", "127.0.0.1:0"});
  EXPECT_EQ(c.listen_port, 0);
  c = ok({"--listen", "[::1]:9000"});
  EXPECT_EQ(c.listen_host, "::1");
  EXPECT_EQ(c.listen_port, 9000);
  c = ok({"--listen", "localhost:65535"});
  EXPECT_EQ(c.listen_host, "localhost");
  EXPECT_EQ(c.listen_port, 65535);
  for (const std::string bad : {"localhost:65536", "8080", ":8080", "localhost:", "localhost:http",
                                "localhost:-1", "localhost:80x", "localhost:99999999999"}) {
    SCOPED_TRACE(bad);
    refused({"--listen", bad});
  }
}

TEST_F(ConfigTest, NumericLimitsAtNAndNPlusOne) {
  // Goal: numeric options accept their range and refuse one past it. Method: threads 1..256,
  // timeouts and TTLs >= 1, rates > 0.
  EXPECT_EQ(ok({"--threads", "1"}).threads, 1);
  EXPECT_EQ(ok({"--threads", "256"}).threads, 256);
  refused({"--threads", "0"});
  refused({"--threads", "257"});
  refused({"--threads", "two"});
  EXPECT_EQ(ok({"--ws-idle-timeout-ms", "1"}).ws_idle_timeout.count(), 1);
  EXPECT_EQ(ok({"--ws-idle-timeout-ms", "86400000"}).ws_idle_timeout.count(), 86'400'000);
  refused({"--ws-idle-timeout-ms", "0"});
  refused({"--ws-idle-timeout-ms", "86400001"});
  refused({"--auth-timeout-ms", "-5"});
  EXPECT_EQ(ok({"--access-ttl-s", "1"}).access_ttl.count(), 1);
  refused({"--access-ttl-s", "0"});
  refused({"--refresh-ttl-s", "1.5"});
  EXPECT_EQ(ok({"--rate-send-per-sec", "0.5"}).rate_send_per_sec, 0.5);
  refused({"--rate-send-per-sec", "0"});
  refused({"--rate-send-per-sec", "-1"});
  refused({"--rate-send-per-sec", "5x"});
  refused({"--rate-send-per-sec", ""});
}

TEST_F(ConfigTest, NanRateIsRefused) {
  // Goal: a rate must be a positive number; "nan" is not one. Method: --rate-send-per-sec nan.
  // (NaN compares false with everything, so a plain `v <= 0` check would let it through.)
  refused({"--rate-send-per-sec", "nan"});
  refused({"--rate-auth-ip-per-min", "NaN"});
}

TEST_F(ConfigTest, OtherInvalidValues) {
  // Goal: enumerations and strings are checked. Method: bad log level, empty data dir, a bad
  // environment value (the message names the variable), a flag without its value.
  refused({"--log-level", "verbose"});
  refused({"--log-level", "INFO"});
  refused({"--data-dir", ""});
  fake_env() = {{"CHATD_THREADS", "many"}};
  EXPECT_NE(refused({}).find("CHATD_THREADS"), std::string::npos);
  fake_env().clear();
  EXPECT_NE(refused({"--listen"}).find("--listen"), std::string::npos);
  EXPECT_NE(refused({"--threads", "0"}).find("--threads"), std::string::npos);
}

TEST_F(ConfigTest, UnknownFlagIsRefusedWithUsage) {
  // Goal: an unknown option exits 2 naming it, followed by the usage. Method: a typo and a
  // positional argument.
  const auto out = refused({"--listne", "x"});
  EXPECT_NE(out.find("--listne"), std::string::npos);
  EXPECT_NE(out.find("usage:"), std::string::npos);
  refused({"serve"});
  refused({"-x"});
}

TEST_F(ConfigTest, HelpListsEveryFlagAndVariable) {
  // Goal: --help exits 0 and the usage names every flag of the spec with its variable. Method:
  // --help and -h; search the output.
  for (const std::string flag : {"--help", "-h"}) {
    const auto r = parse({flag});
    EXPECT_FALSE(r.config);
    EXPECT_EQ(r.exit_code, 0);
    for (const std::string word : {"--listen",
                                   "CHATD_LISTEN",
                                   "--data-dir",
                                   "CHATD_DATA_DIR",
                                   "--threads",
                                   "CHATD_THREADS",
                                   "--ws-idle-timeout-ms",
                                   "CHATD_WS_IDLE_TIMEOUT_MS",
                                   "--auth-timeout-ms",
                                   "CHATD_AUTH_TIMEOUT_MS",
                                   "--rate-auth-ip-per-min",
                                   "CHATD_RATE_AUTH_IP_PER_MIN",
                                   "--rate-auth-account-per-min",
                                   "CHATD_RATE_AUTH_ACCOUNT_PER_MIN",
                                   "--rate-send-per-sec",
                                   "CHATD_RATE_SEND_PER_SEC",
                                   "--access-ttl-s",
                                   "CHATD_ACCESS_TTL_S",
                                   "--refresh-ttl-s",
                                   "--allowed-origins",
                                   "CHATD_ALLOWED_ORIGINS",
                                   "--log-level",
                                   "CHATD_LOG_LEVEL",
                                   "--web-root",
                                   "CHATD_WEB_ROOT",
                                   "--presence-grace-ms",
                                   "CHATD_PRESENCE_GRACE_MS",
                                   "--presence-heartbeat-ms",
                                   "--presence-node-ttl-ms",
                                   "--presence-sweep-slack-ms",
                                   "--presence-offline-ttl-ms",
                                   "--help",
                                   "--version"}) {
      EXPECT_NE(r.output.find(word), std::string::npos) << word;
    }
  }
  EXPECT_EQ(parse({"--help"}).output, chat::app::usage());
  // --help wins over options before it.
  EXPECT_EQ(parse({"--threads", "2", "--help"}).exit_code, 0);
}

TEST_F(ConfigTest, WebRootAndPresenceGrace) {
  // Goal: `--web-root DIR` (static files, optional) and `--presence-grace-ms N` (v2) are accepted.
  // Method: both flags; the grace period at its bounds 1 and 0.
  auto c = ok({"--web-root", "/srv/www", "--presence-grace-ms", "1"});
  EXPECT_EQ(c.web_root, "/srv/www");
  EXPECT_EQ(c.presence_grace.count(), 1);
  refused({"--presence-grace-ms", "0"});
  refused({"--presence-grace-ms", "soon"});
}

TEST_F(ConfigTest, ClusterPresenceTimings) {
  // Goal: the cluster presence heartbeat, node TTL, sweep slack and offline TTL are options
  // (flags and environment) and a node TTL not above the heartbeat is refused (live nodes would
  // look dead). Method: defaults, flags, environment, the ordering rule, bad values.
  auto d = ok({});
  EXPECT_EQ(d.presence_heartbeat.count(), 1'000);
  EXPECT_EQ(d.presence_node_ttl.count(), 5'000);
  EXPECT_EQ(d.presence_sweep_slack.count(), 2'000);
  EXPECT_EQ(d.presence_offline_ttl.count(), 600'000);
  auto c = ok({"--presence-heartbeat-ms", "200", "--presence-node-ttl-ms", "900", "--presence-sweep-slack-ms",
               "300", "--presence-offline-ttl-ms", "60000"});
  EXPECT_EQ(c.presence_heartbeat.count(), 200);
  EXPECT_EQ(c.presence_node_ttl.count(), 900);
  EXPECT_EQ(c.presence_sweep_slack.count(), 300);
  EXPECT_EQ(c.presence_offline_ttl.count(), 60'000);
  fake_env() = {{"CHATD_PRESENCE_HEARTBEAT_MS", "300"},
                {"CHATD_PRESENCE_NODE_TTL_MS", "301"},
                {"CHATD_PRESENCE_SWEEP_SLACK_MS", "5"},
                {"CHATD_PRESENCE_OFFLINE_TTL_MS", "7"}};
  auto e = ok({});
  EXPECT_EQ(e.presence_heartbeat.count(), 300);
  EXPECT_EQ(e.presence_node_ttl.count(), 301);
  EXPECT_EQ(e.presence_sweep_slack.count(), 5);
  EXPECT_EQ(e.presence_offline_ttl.count(), 7);
  fake_env() = {};
  refused({"--presence-heartbeat-ms", "5000"});  // = the default node TTL
  refused({"--presence-heartbeat-ms", "1000", "--presence-node-ttl-ms", "999"});
  refused({"--presence-heartbeat-ms", "0"});
  refused({"--presence-sweep-slack-ms", "soon"});
  refused({"--presence-offline-ttl-ms", "-1"});
}

TEST_F(ConfigTest, BusAndNodeId) {
  // Goal: cluster flags. `--bus` is local (default) or redis://host:port; `--node-id` is 0..1023
  // (the snowflake's 10 bits). Method: defaults, good values, the environment, each bound at N and N+1.
  auto d = ok({});
  EXPECT_EQ(d.bus, "local");
  EXPECT_EQ(d.node_id, 0);
  auto c = ok({"--bus", "redis://127.0.0.1:56379", "--node-id", "1023"});
  EXPECT_EQ(c.bus, "redis://127.0.0.1:56379");
  EXPECT_EQ(c.node_id, 1023);
  EXPECT_EQ(ok({"--bus", "local", "--node-id", "0"}).node_id, 0);
  refused({"--node-id", "1024"});
  refused({"--node-id", "-1"});
  refused({"--bus", "redis://"});
  refused({"--bus", "nats://x:1"});
  fake_env()["CHATD_BUS"] = "redis://r:1";
  fake_env()["CHATD_NODE_ID"] = "7";
  auto e = ok({});
  EXPECT_EQ(e.bus, "redis://r:1");
  EXPECT_EQ(e.node_id, 7);
  const auto help = chat::app::usage();
  for (const std::string word : {"--bus", "CHATD_BUS", "--node-id", "CHATD_NODE_ID"})
    EXPECT_NE(help.find(word), std::string::npos) << word;
}

TEST_F(ConfigTest, RedisUrl) {
  // Goal: the RedisBus endpoint parser. Method: host:port, host alone (6379), trailing slash, and
  // malformed URLs.
  std::string host;
  int port = 0;
  ASSERT_TRUE(chat::bus::redis::parse_redis_url("redis://127.0.0.1:56379", host, port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 56379);
  ASSERT_TRUE(chat::bus::redis::parse_redis_url("redis://cache/", host, port));
  EXPECT_EQ(host, "cache");
  EXPECT_EQ(port, 6379);
  for (const char* bad :
       {"redis://", "redis://:1", "redis://h:0", "redis://h:65536", "redis://h:x", "http://h:1"})
    EXPECT_FALSE(chat::bus::redis::parse_redis_url(bad, host, port)) << bad;
}

TEST_F(ConfigTest, VersionExitsZero) {
  // Goal: --version prints the version and exits 0. Method: parse --version.
  const auto r = parse({"--version"});
  EXPECT_FALSE(r.config);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.rfind("chatd ", 0), 0U);
  EXPECT_NE(r.output.find(CHATD_VERSION), std::string::npos);
}

}  // namespace
