// Domain rules without I/O: UTF-8, field validation, error codes, snowflake ids, rate limiting.

#include "domain/error_code.hpp"
#include "domain/limits.hpp"
#include "domain/rate_limiter.hpp"
#include "domain/snowflake.hpp"
#include "domain/utf8.hpp"
#include "domain/validation.hpp"
#include "test_util.hpp"

#include <chrono>
#include <cstdint>
#include <gtest/gtest.h>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using chat::domain::ErrorCode;
using chat::domain::utf8_code_points;
using chat::test::cat;
namespace limits = chat::domain::limits;

// Builds a byte string from raw byte values (test vectors are written as bytes, not literals).
std::string bytes(std::initializer_list<unsigned> values) {
  std::string out;
  for (unsigned v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::string repeat(std::string_view unit, std::size_t times) {
  std::string out;
  out.reserve(unit.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += unit;
  return out;
}

// ---------------------------------------------------------------------------------------------
// utf8_code_points

TEST(Utf8, CountsWellFormedSequencesOfEveryLength) {
  // Goal: valid 1-, 2-, 3- and 4-byte sequences count one code point each. Method: RFC 3629 examples
  // including the boundary code points of each length.
  EXPECT_EQ(utf8_code_points(""), 0U);
  EXPECT_EQ(utf8_code_points("hello"), 5U);
  EXPECT_EQ(utf8_code_points(bytes({0x00})), 1U);                    // U+0000
  EXPECT_EQ(utf8_code_points(bytes({0x7F})), 1U);                    // U+007F
  EXPECT_EQ(utf8_code_points(bytes({0xC2, 0x80})), 1U);              // U+0080, smallest 2-byte
  EXPECT_EQ(utf8_code_points(bytes({0xC3, 0xA9})), 1U);              // é
  EXPECT_EQ(utf8_code_points(bytes({0xDF, 0xBF})), 1U);              // U+07FF
  EXPECT_EQ(utf8_code_points(bytes({0xE0, 0xA0, 0x80})), 1U);        // U+0800, smallest 3-byte
  EXPECT_EQ(utf8_code_points(bytes({0xE2, 0x82, 0xAC})), 1U);        // €
  EXPECT_EQ(utf8_code_points(bytes({0xED, 0x9F, 0xBF})), 1U);        // U+D7FF, just below surrogates
  EXPECT_EQ(utf8_code_points(bytes({0xEE, 0x80, 0x80})), 1U);        // U+E000, just above surrogates
  EXPECT_EQ(utf8_code_points(bytes({0xEF, 0xBF, 0xBF})), 1U);        // U+FFFF
  EXPECT_EQ(utf8_code_points(bytes({0xF0, 0x90, 0x80, 0x80})), 1U);  // U+10000, smallest 4-byte
  EXPECT_EQ(utf8_code_points(bytes({0xF0, 0x9F, 0x98, 0x80})), 1U);  // 😀
  EXPECT_EQ(utf8_code_points(bytes({0xF4, 0x8F, 0xBF, 0xBF})), 1U);  // U+10FFFF, the largest
  // Mixed: "aé€😀" is 4 code points in 1 + 2 + 3 + 4 bytes.
  EXPECT_EQ(utf8_code_points(bytes({0x61, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80})), 4U);
  EXPECT_TRUE(chat::domain::is_valid_utf8("plain"));
}

TEST(Utf8, RejectsOverlongForms) {
  // Goal: overlong encodings are invalid (RFC 3629 section 3). Method: NUL and U+0080.. encoded with
  // more bytes than needed, for each sequence length.
  EXPECT_FALSE(utf8_code_points(bytes({0xC0, 0x80})));              // NUL in 2 bytes
  EXPECT_FALSE(utf8_code_points(bytes({0xC1, 0xBF})));              // U+007F in 2 bytes
  EXPECT_FALSE(utf8_code_points(bytes({0xE0, 0x80, 0x80})));        // NUL in 3 bytes
  EXPECT_FALSE(utf8_code_points(bytes({0xE0, 0x9F, 0xBF})));        // U+07FF in 3 bytes
  EXPECT_FALSE(utf8_code_points(bytes({0xF0, 0x80, 0x80, 0x80})));  // NUL in 4 bytes
  EXPECT_FALSE(utf8_code_points(bytes({0xF0, 0x8F, 0xBF, 0xBF})));  // U+FFFF in 4 bytes
  EXPECT_FALSE(chat::domain::is_valid_utf8(bytes({0xC0, 0x80})));
}

TEST(Utf8, RejectsSurrogatesAndCodePointsAboveUnicode) {
  // Goal: UTF-16 surrogates and code points above U+10FFFF are invalid. Method: the first and last
  // surrogate, U+110000, and lead bytes F5..FF.
  EXPECT_FALSE(utf8_code_points(bytes({0xED, 0xA0, 0x80})));        // U+D800
  EXPECT_FALSE(utf8_code_points(bytes({0xED, 0xBF, 0xBF})));        // U+DFFF
  EXPECT_FALSE(utf8_code_points(bytes({0xF4, 0x90, 0x80, 0x80})));  // U+110000
  EXPECT_FALSE(utf8_code_points(bytes({0xF5, 0x80, 0x80, 0x80})));
  EXPECT_FALSE(utf8_code_points(bytes({0xFE})));
  EXPECT_FALSE(utf8_code_points(bytes({0xFF})));
}

TEST(Utf8, RejectsTruncatedSequencesAndStrayContinuationBytes) {
  // Goal: a sequence cut short, or a continuation byte without a lead, is invalid. Method: each
  // multi-byte sequence with its last byte missing, at the end and in the middle of text.
  EXPECT_FALSE(utf8_code_points(bytes({0xC3})));
  EXPECT_FALSE(utf8_code_points(bytes({0xE2, 0x82})));
  EXPECT_FALSE(utf8_code_points(bytes({0xF0, 0x9F, 0x98})));
  EXPECT_FALSE(utf8_code_points(bytes({0xC3, 0x41})));  // lead followed by ASCII
  EXPECT_FALSE(utf8_code_points(cat("ab", bytes({0xE2, 0x82}), "cd")));
  EXPECT_FALSE(utf8_code_points(bytes({0x80})));
  EXPECT_FALSE(utf8_code_points(bytes({0xBF})));
  EXPECT_FALSE(utf8_code_points(cat("a", bytes({0x80}), "b")));
  EXPECT_FALSE(utf8_code_points(bytes({0xC3, 0xA9, 0xA9})));  // one continuation too many
}

// ---------------------------------------------------------------------------------------------
// Field validation

TEST(Validation, BodyLimitIsCountedInCodePoints) {
  // Goal: the body limit is 100000 code points, not bytes, at N and N+1. Method: a 3-byte character
  // repeated 100000 times (300000 bytes) passes, 100001 times fails.
  const std::string euro = bytes({0xE2, 0x82, 0xAC});
  EXPECT_EQ(chat::domain::check_body(repeat(euro, limits::body_code_points_max)), std::nullopt);
  EXPECT_EQ(chat::domain::check_body(repeat(euro, limits::body_code_points_max + 1)),
            ErrorCode::message_too_long);
  EXPECT_EQ(chat::domain::check_body(repeat("a", limits::body_code_points_max)), std::nullopt);
  EXPECT_EQ(chat::domain::check_body(repeat("a", limits::body_code_points_max + 1)),
            ErrorCode::message_too_long);
}

TEST(Validation, BodyEmptyWhitespaceAndInvalid) {
  // Goal: empty and whitespace-only bodies are empty_message, invalid UTF-8 is invalid_utf8. Method:
  // direct calls with each whitespace character and a few broken sequences.
  EXPECT_EQ(chat::domain::check_body(""), ErrorCode::empty_message);
  EXPECT_EQ(chat::domain::check_body(" "), ErrorCode::empty_message);
  EXPECT_EQ(chat::domain::check_body(" \t\r\n\f\v  "), ErrorCode::empty_message);
  EXPECT_EQ(chat::domain::check_body("x"), std::nullopt);
  EXPECT_EQ(chat::domain::check_body("  x  "), std::nullopt);
  EXPECT_EQ(chat::domain::check_body(bytes({0xC0, 0x80})), ErrorCode::invalid_utf8);
  EXPECT_EQ(chat::domain::check_body(cat("hi ", bytes({0xED, 0xA0, 0x80}))), ErrorCode::invalid_utf8);
  EXPECT_EQ(chat::domain::check_body(bytes({0xFF})), ErrorCode::invalid_utf8);
}

TEST(Validation, UsernameLengthAndCharacters) {
  // Goal: usernames are 3..32 of [A-Za-z0-9_.-]. Method: lengths 2, 3, 32, 33 and one bad character
  // at a time.
  EXPECT_EQ(chat::domain::check_username("ab"), ErrorCode::invalid_username);
  EXPECT_EQ(chat::domain::check_username("abc"), std::nullopt);
  EXPECT_EQ(chat::domain::check_username(std::string(32, 'a')), std::nullopt);
  EXPECT_EQ(chat::domain::check_username(std::string(33, 'a')), ErrorCode::invalid_username);
  EXPECT_EQ(chat::domain::check_username(""), ErrorCode::invalid_username);
  EXPECT_EQ(chat::domain::check_username("Az09_.-"), std::nullopt);
  for (const std::string bad : {"ab c", "ab@c", "ab/c", "ab+c", "abc!", "a\tbc", "ab\nc"}) {
    EXPECT_EQ(chat::domain::check_username(bad), ErrorCode::invalid_username) << bad;
  }
  EXPECT_EQ(chat::domain::check_username(cat("ab", bytes({0xC3, 0xA9}))), ErrorCode::invalid_username);
  EXPECT_EQ(chat::domain::check_username(std::string("ab\0c", 4)), ErrorCode::invalid_username);
}

TEST(Validation, EmailShapeAndLength) {
  // Goal: an email is local@domain with one @, no whitespace, <= 254 bytes. Method: good and bad
  // shapes, and lengths 254 and 255.
  EXPECT_EQ(chat::domain::check_email("a@b"), std::nullopt);
  EXPECT_EQ(chat::domain::check_email("Alice.Smith+tag@example.com"), std::nullopt);
  for (const std::string bad : {"", "@", "a@", "@b", "ab", "a@@b", "a@b@c", "a b@c", "a@b c", "a@b\n"}) {
    EXPECT_EQ(chat::domain::check_email(bad), ErrorCode::invalid_email) << bad;
  }
  EXPECT_EQ(chat::domain::check_email(cat("a@b", bytes({0xFF}))), ErrorCode::invalid_email);
  const std::string domain_254 = cat("a@", std::string(252, 'b'));
  ASSERT_EQ(domain_254.size(), limits::email_bytes_max);
  EXPECT_EQ(chat::domain::check_email(domain_254), std::nullopt);
  EXPECT_EQ(chat::domain::check_email(cat(domain_254, "b")), ErrorCode::invalid_email);
}

TEST(Validation, PasswordLengthInBytes) {
  // Goal: passwords are 8..1024 bytes. Method: lengths 7, 8, 1024, 1025, and a multi-byte password
  // counted in bytes.
  EXPECT_EQ(chat::domain::check_password(std::string(7, 'p')), ErrorCode::weak_password);
  EXPECT_EQ(chat::domain::check_password(std::string(8, 'p')), std::nullopt);
  EXPECT_EQ(chat::domain::check_password(std::string(1024, 'p')), std::nullopt);
  EXPECT_EQ(chat::domain::check_password(std::string(1025, 'p')), ErrorCode::weak_password);
  EXPECT_EQ(chat::domain::check_password(""), ErrorCode::weak_password);
  // Four 2-byte characters are 8 bytes: long enough.
  EXPECT_EQ(chat::domain::check_password(repeat(bytes({0xC3, 0xA9}), 4)), std::nullopt);
}

TEST(Validation, ClientMsgIdLengthAndCharacters) {
  // Goal: client_msg_id is 1..64 bytes of [A-Za-z0-9_-]. Method: lengths 0, 1, 64, 65 and one bad
  // character at a time.
  EXPECT_EQ(chat::domain::check_client_msg_id(""), ErrorCode::bad_request);
  EXPECT_EQ(chat::domain::check_client_msg_id("a"), std::nullopt);
  EXPECT_EQ(chat::domain::check_client_msg_id(std::string(64, 'x')), std::nullopt);
  EXPECT_EQ(chat::domain::check_client_msg_id(std::string(65, 'x')), ErrorCode::bad_request);
  EXPECT_EQ(chat::domain::check_client_msg_id("Az09_-"), std::nullopt);
  for (const std::string bad : {"a.b", "a b", "a/b", "a:b", "a+b", "é"}) {
    EXPECT_EQ(chat::domain::check_client_msg_id(bad), ErrorCode::bad_request) << bad;
  }
}

TEST(Validation, TextLimitInCodePoints) {
  // Goal: free text (display name, bio) allows empty and up to N code points. Method: N and N+1 of a
  // 2-byte character, and invalid UTF-8.
  const std::string e_acute = bytes({0xC3, 0xA9});
  EXPECT_EQ(chat::domain::check_text("", 64), std::nullopt);
  EXPECT_EQ(chat::domain::check_text(repeat(e_acute, 64), 64), std::nullopt);
  EXPECT_EQ(chat::domain::check_text(repeat(e_acute, 65), 64), ErrorCode::bad_request);
  EXPECT_EQ(chat::domain::check_text(bytes({0xC3}), 64), ErrorCode::invalid_utf8);
}

TEST(Validation, FoldCaseLowersAsciiOnly) {
  // Goal: fold_case lowers A-Z and leaves every other byte alone. Method: mixed text with digits,
  // punctuation and non-ASCII bytes.
  EXPECT_EQ(chat::domain::fold_case("Alice.SMITH_09@Example.COM"), "alice.smith_09@example.com");
  EXPECT_EQ(chat::domain::fold_case(""), "");
  const std::string upper_e_acute = bytes({0xC3, 0x89});  // É stays as it is
  EXPECT_EQ(chat::domain::fold_case(cat("X", upper_e_acute)), cat("x", upper_e_acute));
  EXPECT_EQ(chat::domain::fold_case("@[`{"), "@[`{");  // neighbours of A-Z and a-z
}

// ---------------------------------------------------------------------------------------------
// Error codes

TEST(ErrorCodes, EveryCodeHasDistinctNameAndErrorStatus) {
  // Goal: every ErrorCode has a unique non-empty wire name and an HTTP status in 400..599. Method:
  // iterate all enum values from 0 to ErrorCode::internal.
  std::set<std::string_view> names;
  const auto last = static_cast<unsigned>(ErrorCode::internal);
  for (unsigned i = 0; i <= last; ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const auto name = chat::domain::to_string(code);
    EXPECT_FALSE(name.empty()) << i;
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    const unsigned status = chat::domain::http_status(code);
    EXPECT_GE(status, 400U) << name;
    EXPECT_LE(status, 599U) << name;
  }
  EXPECT_EQ(names.size(), last + 1);
}

TEST(ErrorCodes, StatusesMatchTheSpec) {
  // Goal: the statuses are the ones the contract lists. Method: one check per code.
  struct Case {
    ErrorCode code;
    std::string_view name;
    unsigned status;
  };
  const std::vector<Case> cases = {
      {ErrorCode::bad_request, "bad_request", 400},
      {ErrorCode::bad_json, "bad_json", 400},
      {ErrorCode::unknown_type, "unknown_type", 400},
      {ErrorCode::invalid_utf8, "invalid_utf8", 400},
      {ErrorCode::message_too_long, "message_too_long", 400},
      {ErrorCode::empty_message, "empty_message", 400},
      {ErrorCode::invalid_username, "invalid_username", 400},
      {ErrorCode::invalid_email, "invalid_email", 400},
      {ErrorCode::weak_password, "weak_password", 400},
      {ErrorCode::invalid_cursor, "invalid_cursor", 400},
      {ErrorCode::unauthorized, "unauthorized", 401},
      {ErrorCode::invalid_credentials, "invalid_credentials", 401},
      {ErrorCode::forbidden, "forbidden", 403},
      {ErrorCode::origin_not_allowed, "origin_not_allowed", 403},
      {ErrorCode::not_found, "not_found", 404},
      {ErrorCode::method_not_allowed, "method_not_allowed", 405},
      {ErrorCode::username_taken, "username_taken", 409},
      {ErrorCode::email_taken, "email_taken", 409},
      {ErrorCode::idempotency_conflict, "idempotency_conflict", 409},
      {ErrorCode::group_full, "group_full", 409},
      {ErrorCode::payload_too_large, "payload_too_large", 413},
      {ErrorCode::rate_limited, "rate_limited", 429},
      {ErrorCode::not_implemented, "not_implemented", 501},
      {ErrorCode::unavailable, "unavailable", 503},
      {ErrorCode::internal, "internal", 500},
  };
  EXPECT_EQ(cases.size(), static_cast<std::size_t>(ErrorCode::internal) + 1);
  for (const auto& c : cases) {
    EXPECT_EQ(chat::domain::to_string(c.code), c.name);
    EXPECT_EQ(chat::domain::http_status(c.code), c.status) << c.name;
  }
}

// ---------------------------------------------------------------------------------------------
// SnowflakeGenerator

using chat::domain::SnowflakeGenerator;
constexpr std::int64_t kNow = 1'750'000'000'000;  // a fixed wall clock in ms, 2025

TEST(Snowflake, IncreasesWithinOneMillisecondPastTheCounter) {
  // Goal: ids stay unique and strictly increasing when far more than 4096 are drawn in the same
  // millisecond (the counter overflows into borrowed milliseconds). Method: 100000 calls with a
  // frozen clock.
  SnowflakeGenerator gen(1);
  std::int64_t previous = gen.next(kNow);
  for (int i = 1; i < 100'000; ++i) {
    const auto id = gen.next(kNow);
    ASSERT_GT(id, previous) << "call " << i;
    previous = id;
  }
}

TEST(Snowflake, CounterOverflowAtN) {
  // Goal: the 4096th and 4097th id of one millisecond are still increasing and the first 4096 share
  // that millisecond. Method: frozen clock, check time_of around the boundary.
  SnowflakeGenerator gen(0);
  std::set<std::int64_t> seen;
  std::int64_t previous = 0;
  for (int i = 0; i < 4096; ++i) {
    const auto id = gen.next(kNow);
    EXPECT_EQ(SnowflakeGenerator::time_of(id), kNow) << i;
    EXPECT_GT(id, previous);
    previous = id;
    seen.insert(id);
  }
  const auto borrowed = gen.next(kNow);
  EXPECT_GT(borrowed, previous);
  EXPECT_EQ(SnowflakeGenerator::time_of(borrowed), kNow + 1);
  seen.insert(borrowed);
  EXPECT_EQ(seen.size(), 4097U);
}

TEST(Snowflake, ClockGoingBackwardsStillIncreases) {
  // Goal: a clock that steps back does not produce smaller or repeated ids. Method: a clock that goes
  // 10 s back, then creeps forward, then jumps ahead.
  SnowflakeGenerator gen(3);
  std::int64_t previous = gen.next(kNow);
  for (std::int64_t t : {kNow - 10'000, kNow - 9'999, kNow - 1, kNow, kNow + 1, kNow - 5, kNow + 1000}) {
    const auto id = gen.next(t);
    EXPECT_GT(id, previous) << "clock " << t;
    previous = id;
  }
  EXPECT_EQ(SnowflakeGenerator::time_of(previous), kNow + 1000);
}

TEST(Snowflake, ResumeAfterContinuesAboveAnEarlierId) {
  // Goal: after a restart, a generator resumed from the largest stored id issues larger ids even if
  // the clock is behind. Method: ids from one generator, resume a new one from the last, clock 1 h
  // behind; also an id whose counter is at its maximum.
  SnowflakeGenerator first(2);
  std::int64_t last = 0;
  for (int i = 0; i < 10; ++i) last = first.next(kNow);
  SnowflakeGenerator second(2);
  second.resume_after(last);
  EXPECT_GT(second.next(kNow - 3'600'000), last);
  EXPECT_GT(second.next(kNow), last);

  const std::int64_t full_counter = ((kNow - SnowflakeGenerator::epoch_ms) << 22) | 4095;
  SnowflakeGenerator third(0);
  third.resume_after(full_counter);
  EXPECT_GT(third.next(kNow), full_counter);

  // Resuming from an older id does not move a generator back.
  SnowflakeGenerator fourth(0);
  const auto recent = fourth.next(kNow);
  fourth.resume_after(recent - (1LL << 22) * 100);
  EXPECT_GT(fourth.next(kNow), recent);
}

TEST(Snowflake, TimeOfRoundTripsAndNodeIdIsEmbedded) {
  // Goal: time_of recovers the ms a fresh id was made at, and the node id is in bits 12..21. Method:
  // a few clock values on two nodes.
  for (const std::int64_t t :
       {SnowflakeGenerator::epoch_ms + 1, kNow, kNow + std::int64_t{86'400'000} * 365 * 10}) {
    SnowflakeGenerator gen(1023);
    const auto id = gen.next(t);
    EXPECT_EQ(SnowflakeGenerator::time_of(id), t);
    EXPECT_EQ((id >> SnowflakeGenerator::counter_bits) & 1023, 1023);
    EXPECT_GT(id, 0);
  }
  SnowflakeGenerator a(1);
  SnowflakeGenerator b(2);
  EXPECT_NE(a.next(kNow), b.next(kNow));
}

// ---------------------------------------------------------------------------------------------
// TokenBucket and KeyedRateLimiter, with an injected clock

using Clock = chat::domain::TokenBucket::Clock;
using std::chrono::milliseconds;
const Clock::time_point kT0 = Clock::time_point(std::chrono::hours(1000));

TEST(TokenBucket, BurstThenRefusalWithRetryAfter) {
  // Goal: a full bucket allows `burst` takes at once, refuses the next and says when to retry.
  // Method: rate 10/s, burst 3, frozen clock.
  chat::domain::TokenBucket bucket(10, 3, kT0);
  EXPECT_TRUE(bucket.try_take(kT0));
  EXPECT_TRUE(bucket.try_take(kT0));
  EXPECT_TRUE(bucket.try_take(kT0));
  milliseconds retry{0};
  EXPECT_FALSE(bucket.try_take(kT0, &retry));
  EXPECT_EQ(retry, milliseconds(100));  // one token every 100 ms
  EXPECT_FALSE(bucket.try_take(kT0));   // nullptr retry_after is fine
}

TEST(TokenBucket, RefillsOverTimeUpToBurst) {
  // Goal: tokens come back at the rate and never beyond burst. Method: drain, advance the clock by
  // parts of a period, then by a long time.
  chat::domain::TokenBucket bucket(1, 2, kT0);
  ASSERT_TRUE(bucket.try_take(kT0));
  ASSERT_TRUE(bucket.try_take(kT0));
  milliseconds retry{0};
  EXPECT_FALSE(bucket.try_take(kT0 + milliseconds(400), &retry));
  EXPECT_EQ(retry, milliseconds(600));
  EXPECT_TRUE(bucket.try_take(kT0 + milliseconds(1000)));
  EXPECT_FALSE(bucket.try_take(kT0 + milliseconds(1000)));
  // An hour later the bucket holds `burst` (2) tokens, not 3600.
  const auto later = kT0 + std::chrono::hours(1);
  EXPECT_TRUE(bucket.try_take(later));
  EXPECT_TRUE(bucket.try_take(later));
  EXPECT_FALSE(bucket.try_take(later));
  // A clock that steps back does not add tokens.
  EXPECT_FALSE(bucket.try_take(later - milliseconds(500)));
}

TEST(KeyedRateLimiter, KeysAreIndependent) {
  // Goal: each key has its own bucket. Method: exhaust key "a", key "b" still passes.
  chat::domain::KeyedRateLimiter limiter(60, 2);  // 1 per second, burst 2
  milliseconds retry{0};
  EXPECT_TRUE(limiter.try_take("a", kT0, &retry));
  EXPECT_TRUE(limiter.try_take("a", kT0, &retry));
  EXPECT_FALSE(limiter.try_take("a", kT0, &retry));
  EXPECT_EQ(retry, milliseconds(1000));
  EXPECT_TRUE(limiter.try_take("b", kT0, &retry));
  EXPECT_EQ(limiter.size(), 2U);
  // One second later "a" has one token again.
  EXPECT_TRUE(limiter.try_take("a", kT0 + milliseconds(1000), &retry));
  EXPECT_FALSE(limiter.try_take("a", kT0 + milliseconds(1000), &retry));
}

TEST(KeyedRateLimiter, SweepForgetsIdleKeys) {
  // Goal: keys idle for a full refill period are forgotten, so memory is bounded. Method: 100 keys,
  // then one take after the refill period (burst / rate = 2 s); size() drops to 1.
  chat::domain::KeyedRateLimiter limiter(60, 2);
  milliseconds retry{0};
  for (int i = 0; i < 100; ++i) limiter.try_take(cat("ip", std::to_string(i)), kT0, &retry);
  EXPECT_EQ(limiter.size(), 100U);
  // Before the period: nothing is forgotten.
  limiter.try_take("late", kT0 + milliseconds(1999), &retry);
  EXPECT_EQ(limiter.size(), 101U);
  // After it, only keys used within the last period stay ("late", 1001 ms ago, and "new").
  limiter.try_take("new", kT0 + milliseconds(3000), &retry);
  EXPECT_EQ(limiter.size(), 2U);
  // A forgotten key starts again with a full bucket.
  const auto t = kT0 + std::chrono::seconds(10);
  EXPECT_TRUE(limiter.try_take("ip0", t, &retry));
  EXPECT_TRUE(limiter.try_take("ip0", t, &retry));
  EXPECT_FALSE(limiter.try_take("ip0", t, &retry));
}

}  // namespace
