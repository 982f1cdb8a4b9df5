// Small pieces: wire ids and shapes, tokens, password hashing, metrics.

#include "api/wire.hpp"
#include "auth/password_hasher.hpp"
#include "auth/tokens.hpp"
#include "obs/metrics.hpp"
#include "test_util.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <sodium.h>

#include <cstdint>
#include <gtest/gtest.h>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace {

namespace json = boost::json;
using chat::api::wire::parse_id;
using chat::test::cat;

// ---------------------------------------------------------------------------------------------
// api::wire

TEST(WireIds, ParseIdFromText) {
  // Goal: ids are decimal digit strings within int64. Method: boundaries (0, INT64_MAX, one
  // above), signs, spaces, letters, empty and over-long text.
  EXPECT_EQ(parse_id(std::string_view("0")), 0);
  EXPECT_EQ(parse_id(std::string_view("123")), 123);
  EXPECT_EQ(parse_id(std::string_view("9223372036854775807")), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(parse_id(std::string_view("9223372036854775808")), std::nullopt);
  EXPECT_EQ(parse_id(std::string_view("99999999999999999999")), std::nullopt);  // 20 digits
  EXPECT_EQ(parse_id(std::string_view("00000000000000000001")), std::nullopt);  // 20 chars
  EXPECT_EQ(parse_id(std::string_view("0000000000000000001")), 1);              // 19 chars
  for (const std::string bad : {"", "-1", "+1", "1a", "a1", " 1", "1 ", "1.0", "1e3", "0x10", "١"}) {
    EXPECT_EQ(parse_id(std::string_view(bad)), std::nullopt) << '"' << bad << '"';
  }
}

TEST(WireIds, NegativeZeroIsNotAnId) {
  // Goal: the spec says ids are strings of decimal digits; "-0" is not one. Method: parse "-0".
  EXPECT_EQ(parse_id(std::string_view("-0")), std::nullopt);
}

TEST(WireIds, ParseIdFromJsonValue) {
  // Goal: a JSON id may be a digit string or a non-negative integer; nothing else. Method: every
  // JSON kind, int64/uint64 boundaries.
  EXPECT_EQ(parse_id(json::value("42")), 42);
  EXPECT_EQ(parse_id(json::value(std::int64_t{42})), 42);
  EXPECT_EQ(parse_id(json::value(std::int64_t{0})), 0);
  EXPECT_EQ(parse_id(json::value(std::int64_t{-1})), std::nullopt);
  EXPECT_EQ(parse_id(json::value(std::uint64_t{7})), 7);
  EXPECT_EQ(parse_id(json::value(std::uint64_t{9'223'372'036'854'775'807ULL})),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(parse_id(json::value(std::uint64_t{9'223'372'036'854'775'808ULL})), std::nullopt);
  EXPECT_EQ(parse_id(json::parse("18446744073709551615")), std::nullopt);
  EXPECT_EQ(parse_id(json::value(1.0)), std::nullopt);
  EXPECT_EQ(parse_id(json::value(nullptr)), std::nullopt);
  EXPECT_EQ(parse_id(json::value(true)), std::nullopt);
  EXPECT_EQ(parse_id(json::parse("[1]")), std::nullopt);
  EXPECT_EQ(parse_id(json::parse("{}")), std::nullopt);
  EXPECT_EQ(parse_id(json::value("-3")), std::nullopt);
  EXPECT_EQ(chat::api::wire::id(9'007'199'254'740'993), "9007199254740993");
  EXPECT_EQ(chat::api::wire::id(0), "0");
}

TEST(WireShapes, UserAndConversation) {
  // Goal: the user object hides the email unless asked, and the conversation object has every
  // field of the spec with ids as strings. Method: build and inspect.
  chat::domain::User u;
  u.id = 5;
  u.username = "alice";
  u.email = "a@example.com";
  u.display_name = "Alice";
  u.created_at = 10;
  const auto pub = chat::api::wire::user(u, false);
  EXPECT_FALSE(pub.contains("email"));
  EXPECT_EQ(pub.at("id").as_string(), "5");
  EXPECT_TRUE(pub.at("last_seen").is_null());
  for (const char* key :
       {"id", "username", "display_name", "profile_picture", "bio", "created_at", "last_seen"}) {
    EXPECT_TRUE(pub.contains(key)) << key;
  }
  const auto self = chat::api::wire::user(u, true);
  EXPECT_EQ(self.at("email").as_string(), "a@example.com");

  chat::domain::Conversation c;
  c.id = 9;
  c.last_seq = 3;
  chat::domain::Member m;
  m.user_id = 5;
  m.username = "alice";
  c.members.push_back(m);
  const auto o = chat::api::wire::conversation(c);
  for (const char* key : {"id", "type", "name", "created_at", "last_seq", "members", "last_message",
                          "unread_count", "read_seq", "delivered_seq"}) {
    EXPECT_TRUE(o.contains(key)) << key;
  }
  EXPECT_EQ(o.at("id").as_string(), "9");
  EXPECT_EQ(o.at("type").as_string(), "direct");
  EXPECT_TRUE(o.at("last_message").is_null());
  EXPECT_EQ(o.at("members").as_array().at(0).as_object().at("user_id").as_string(), "5");
  EXPECT_EQ(o.at("members").as_array().at(0).as_object().at("role").as_string(), "member");
  for (const char* key :
       {"user_id", "username", "display_name", "role", "joined_at", "delivered_seq", "read_seq"}) {
    EXPECT_TRUE(o.at("members").as_array().at(0).as_object().contains(key)) << key;
  }

  // A message has every field of the v2 message object; optional ones are null, not absent.
  chat::domain::Message msg;
  msg.id = 1;
  msg.conversation_id = 9;
  msg.sender_id = 5;
  const auto mo = chat::api::wire::message(msg);
  for (const char* key : {"id", "conversation_id", "seq", "sender_id", "type", "body", "client_msg_id",
                          "created_at", "ref_id", "data", "edited_at", "deleted", "reactions"}) {
    EXPECT_TRUE(mo.contains(key)) << key;
  }
  EXPECT_TRUE(mo.at("ref_id").is_null());
  EXPECT_TRUE(mo.at("data").is_null());
  EXPECT_FALSE(mo.at("deleted").as_bool());
  // A text message's ref_id is the message it replies to (reply_to); an event's is its target.
  msg.ref_id = 9'007'199'254'740'993;
  const auto reply = chat::api::wire::message(msg);
  EXPECT_TRUE(reply.at("ref_id").is_null());
  EXPECT_EQ(reply.at("reply_to").as_string(), "9007199254740993");
  msg.type = "edit";
  msg.data = R"({"name":"team"})";
  msg.reactions.push_back(chat::domain::Reaction{"x", {5, 6}});
  const auto mo2 = chat::api::wire::message(msg);
  EXPECT_EQ(mo2.at("ref_id").as_string(), "9007199254740993");
  EXPECT_TRUE(mo2.at("reply_to").is_null());
  EXPECT_EQ(mo2.at("data").as_object().at("name").as_string(), "team");
  EXPECT_EQ(mo2.at("reactions").as_array().at(0).as_object().at("user_ids").as_array().at(1).as_string(),
            "6");
}

// ---------------------------------------------------------------------------------------------
// auth

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_GE(sodium_init(), 0); }
};

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

TEST_F(AuthTest, NewTokensAreBase64UrlAndDistinct) {
  // Goal: a token is 256 random bits as 43 base64url characters without padding, never repeated.
  // Method: 1000 tokens, check alphabet, length and distinctness.
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto t = chat::auth::new_token();
    ASSERT_EQ(t.size(), 43U) << t;
    for (char ch : t) {
      const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '-' || ch == '_';
      ASSERT_TRUE(ok) << t;
    }
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 1000U);
}

TEST_F(AuthTest, TokenHashIsSha256) {
  // Goal: token_hash is the raw 32-byte SHA-256, deterministic and different per token. Method:
  // FIPS 180-2 test vectors ("abc", ""), then two tokens.
  EXPECT_EQ(hex(chat::auth::token_hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(chat::auth::token_hash("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const auto a = chat::auth::new_token();
  const auto b = chat::auth::new_token();
  EXPECT_EQ(chat::auth::token_hash(a).size(), 32U);
  EXPECT_EQ(chat::auth::token_hash(a), chat::auth::token_hash(a));
  EXPECT_NE(chat::auth::token_hash(a), chat::auth::token_hash(b));
}

TEST_F(AuthTest, PasswordHashAndVerify) {
  // Goal: hash_now produces an argon2id string that verify_now accepts for the right password only.
  // Method: hash, verify right / wrong / empty / prefix; two hashes of one password differ (salt);
  // a garbage stored string fails.
  const std::string password = "correct horse battery staple";
  const auto stored = chat::auth::PasswordHasher::hash_now(password);
  EXPECT_EQ(stored.rfind("$argon2id$", 0), 0U) << stored;
  EXPECT_TRUE(chat::auth::PasswordHasher::verify_now(stored, password));
  EXPECT_FALSE(chat::auth::PasswordHasher::verify_now(stored, "correct horse battery stapl"));
  EXPECT_FALSE(chat::auth::PasswordHasher::verify_now(stored, ""));
  EXPECT_FALSE(chat::auth::PasswordHasher::verify_now(stored, cat(password, "!")));
  EXPECT_NE(chat::auth::PasswordHasher::hash_now(password), stored);
  EXPECT_FALSE(chat::auth::PasswordHasher::verify_now("not a hash", password));
  EXPECT_FALSE(chat::auth::PasswordHasher::verify_now("", password));
}

chat::net::awaitable<int> hash_and_verify(chat::auth::PasswordHasher* hasher) {
  // Bit 0: right password verifies; bit 1: wrong one does not; bit 2: unknown user (empty stored)
  // is false.
  std::string password = "p4ssw0rd-long";
  const std::string stored = co_await hasher->hash(std::move(password));
  std::string right = "p4ssw0rd-long";
  std::string stored_copy = stored;
  const bool ok = co_await hasher->verify(std::move(stored_copy), std::move(right));
  std::string wrong = "p4ssw0rd-lonG";
  stored_copy = stored;
  const bool bad = co_await hasher->verify(std::move(stored_copy), std::move(wrong));
  std::string any = "p4ssw0rd-long";
  std::string none;
  const bool unknown = co_await hasher->verify(std::move(none), std::move(any));
  co_return (ok ? 1 : 0) | (bad ? 0 : 2) | (unknown ? 0 : 4);
}

TEST_F(AuthTest, AsyncHasherOffTheIoThread) {
  // Goal: the awaitable hash/verify give the same answers as the synchronous forms. Method: run a
  // coroutine on an io_context thread with a one-thread hasher.
  chat::net::io_context io;
  auto work = chat::net::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  {
    chat::auth::PasswordHasher hasher(1, 8);
    auto result = chat::net::co_spawn(io, hash_and_verify(&hasher), chat::net::use_future);
    EXPECT_EQ(result.get(), 7);
    hasher.stop();
  }
  work.reset();
  runner.join();
}

// ---------------------------------------------------------------------------------------------
// obs::Metrics

TEST(Metrics, RenderNamesEveryMetricAndCountsErrorsByCode) {
  // Goal: /metrics has every metric of the spec with HELP/TYPE lines, and errors are counted per
  // code. Method: bump counters, render, search lines.
  chat::obs::Metrics m;
  m.connections = 3;
  m.http_requests = 10;
  m.messages_in = 4;
  m.messages_out = 8;
  m.count_error(chat::domain::ErrorCode::not_found);
  m.count_error(chat::domain::ErrorCode::not_found);
  m.count_error(chat::domain::ErrorCode::rate_limited);
  m.count_error(chat::domain::ErrorCode::internal);
  m.store_write_seconds.observe(0.003);
  m.store_batch_size.observe(5);
  m.store_publish_seconds.observe(0.004);
  const auto text = m.render();
  for (const std::string line : {"# TYPE chatd_connections gauge",
                                 "chatd_connections 3\n",
                                 "# TYPE chatd_http_requests_total counter",
                                 "chatd_http_requests_total 10\n",
                                 "chatd_messages_in_total 4\n",
                                 "chatd_messages_out_total 8\n",
                                 "# TYPE chatd_errors_total counter",
                                 "chatd_errors_total{code=\"not_found\"} 2\n",
                                 "chatd_errors_total{code=\"rate_limited\"} 1\n",
                                 "chatd_errors_total{code=\"internal\"} 1\n",
                                 "chatd_errors_total{code=\"bad_json\"} 0\n",
                                 "# TYPE chatd_store_write_seconds histogram",
                                 "chatd_store_write_seconds_count 1\n",
                                 "# TYPE chatd_store_batch_size histogram",
                                 "chatd_store_batch_size_bucket{le=\"8\"} 1\n",
                                 "chatd_store_batch_size_bucket{le=\"4\"} 0\n",
                                 "chatd_store_batch_size_sum 5\n",
                                 "# TYPE chatd_store_publish_seconds histogram",
                                 "chatd_store_publish_seconds_bucket{le=\"0.005\"} 1\n",
                                 "chatd_store_publish_seconds_bucket{le=\"0.0025\"} 0\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // One error line per code.
  for (unsigned i = 0; i <= static_cast<unsigned>(chat::domain::ErrorCode::internal); ++i) {
    const auto code = chat::domain::to_string(static_cast<chat::domain::ErrorCode>(i));
    EXPECT_NE(text.find(cat("chatd_errors_total{code=\"", code, "\"}")), std::string::npos) << code;
  }
  // Every line is a comment or `name[{labels}] value`.
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# ", 0) == 0) continue;
    EXPECT_EQ(line.rfind("chatd_", 0), 0U) << line;
    EXPECT_NE(line.find(' '), std::string::npos) << line;
  }
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  // Goal: bucket counts are cumulative, a value equal to a bound falls in that bucket (le), and
  // +Inf, _count and _sum cover everything. Method: bounds {1, 2, 4} and values 0.5, 1, 1.5, 3, 100.
  chat::obs::Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 3.0, 100.0}) h.observe(v);
  std::string out;
  h.render(out, "x", "help");
  for (const std::string line :
       {"# HELP x help\n", "# TYPE x histogram\n", "x_bucket{le=\"1\"} 2\n", "x_bucket{le=\"2\"} 3\n",
        "x_bucket{le=\"4\"} 4\n", "x_bucket{le=\"+Inf\"} 5\n", "x_sum 106\n", "x_count 5\n"}) {
    EXPECT_NE(out.find(line), std::string::npos) << line << "\nin:\n" << out;
  }
  // An empty histogram renders zeros.
  chat::obs::Histogram empty({1});
  std::string zero;
  empty.render(zero, "y", "h");
  EXPECT_NE(zero.find("y_bucket{le=\"+Inf\"} 0\n"), std::string::npos);
  EXPECT_NE(zero.find("y_count 0\n"), std::string::npos);
}

}  // namespace
