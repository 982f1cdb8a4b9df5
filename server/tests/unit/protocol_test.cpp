// The WebSocket protocol without sockets: gateway::parse_client_frame and the frames:: builders.
//
// Most frame cases live in protocol_cases.json, shared with the TypeScript client's tests. Each case:
//   "frame":  the text frame, either a string (sent as is) or a JSON value (serialized first);
//   "repeat": optional {"placeholder", "unit", "count"}: the placeholder in the frame text is replaced
//             by `unit` repeated `count` times (long bodies without a 300 KB data file);
//   "expect": {"kind": "auth"|"ping"|"send"|"read"|"error", ...}: fields present are compared:
//             token, conversation_id (string), client_msg_id, body, body_code_points, seq, code.
//             For an error, a missing client_msg_id means none is echoed; for every frame, a missing
//             request_id means the parsed frame has none.
//   "note":   free text (why the case exists, known server bugs).

#include "gateway/protocol.hpp"

#include "api/wire.hpp"
#include "domain/utf8.hpp"
#include "test_util.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <gtest/gtest.h>
#include <set>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace {

namespace json = boost::json;
using chat::domain::ErrorCode;
using chat::gateway::AuthFrame;
using chat::gateway::ClientFrame;
using chat::gateway::FrameError;
using chat::gateway::parse_client_frame;
using chat::gateway::PingFrame;
using chat::gateway::ReadFrame;
using chat::gateway::SendFrame;
using chat::test::cat;

std::string repeat(std::string_view unit, std::size_t times) {
  std::string out;
  out.reserve(unit.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += unit;
  return out;
}

std::string send_frame(std::string_view body_json_escaped) {
  return cat(R"({"type":"send","conversation_id":"1","client_msg_id":"c1","body":")", body_json_escaped,
             R"("})");
}

// The frame alone (the request_id is checked by the shared cases).
ClientFrame parse(std::string_view text) {
  return parse_client_frame(text).frame;
}

const FrameError& as_error(const ClientFrame& f) {
  static const FrameError none{ErrorCode::internal, "not an error frame", ""};
  const auto* e = std::get_if<FrameError>(&f);
  return e != nullptr ? *e : none;
}

// ---------------------------------------------------------------------------------------------
// Hand-written cases

TEST(ParseClientFrame, AuthPingSendRead) {
  // Goal: each valid frame type parses into its struct with every field. Method: one frame each;
  // ids as strings and as integers.
  auto auth = parse(R"({"type":"auth","token":"tok"})");
  ASSERT_TRUE(std::holds_alternative<AuthFrame>(auth));
  EXPECT_EQ(std::get<AuthFrame>(auth).token, "tok");

  EXPECT_TRUE(std::holds_alternative<PingFrame>(parse(R"({"type":"ping"})")));

  auto send = parse(R"({"type":"send","conversation_id":"12","client_msg_id":"c-1_x","body":"hi"})");
  ASSERT_TRUE(std::holds_alternative<SendFrame>(send));
  EXPECT_EQ(std::get<SendFrame>(send).conversation_id, 12);
  EXPECT_EQ(std::get<SendFrame>(send).client_msg_id, "c-1_x");
  EXPECT_EQ(std::get<SendFrame>(send).body, "hi");

  auto send_int = parse(R"({"type":"send","conversation_id":12,"client_msg_id":"c","body":"x"})");
  ASSERT_TRUE(std::holds_alternative<SendFrame>(send_int));
  EXPECT_EQ(std::get<SendFrame>(send_int).conversation_id, 12);

  auto read = parse(R"({"type":"read","conversation_id":"5","seq":7})");
  ASSERT_TRUE(std::holds_alternative<ReadFrame>(read));
  EXPECT_EQ(std::get<ReadFrame>(read).conversation_id, 5);
  EXPECT_EQ(std::get<ReadFrame>(read).seq, 7);
  auto read_int = parse(R"({"type":"read","conversation_id":5,"seq":0})");
  ASSERT_TRUE(std::holds_alternative<ReadFrame>(read_int));
  EXPECT_EQ(std::get<ReadFrame>(read_int).seq, 0);
}

TEST(ParseClientFrame, MalformedAndUnknown) {
  // Goal: malformed JSON and non-objects are bad_json, a missing type is bad_request, an unknown
  // type is unknown_type. Method: one frame each.
  EXPECT_EQ(as_error(parse("{")).code, ErrorCode::bad_json);
  EXPECT_EQ(as_error(parse("")).code, ErrorCode::bad_json);
  EXPECT_EQ(as_error(parse("[1,2]")).code, ErrorCode::bad_json);
  EXPECT_EQ(as_error(parse("\"ping\"")).code, ErrorCode::bad_json);
  EXPECT_EQ(as_error(parse("{}")).code, ErrorCode::bad_request);
  EXPECT_EQ(as_error(parse(R"({"type":7})")).code, ErrorCode::bad_request);
  EXPECT_EQ(as_error(parse(R"({"type":"teleport"})")).code, ErrorCode::unknown_type);
  EXPECT_FALSE(as_error(parse("{")).message.empty());
}

TEST(ParseClientFrame, SendFieldErrors) {
  // Goal: a send without a valid client_msg_id or conversation_id is bad_request; the client_msg_id
  // is echoed once it is valid. Method: remove or spoil one field at a time.
  const auto no_cid = as_error(parse(R"({"type":"send","conversation_id":"1","body":"hi"})"));
  EXPECT_EQ(no_cid.code, ErrorCode::bad_request);
  EXPECT_EQ(no_cid.client_msg_id, "");
  const auto bad_conv =
      as_error(parse(R"({"type":"send","conversation_id":"x1","client_msg_id":"c9","body":"hi"})"));
  EXPECT_EQ(bad_conv.code, ErrorCode::bad_request);
  EXPECT_EQ(bad_conv.client_msg_id, "c9");
  const auto no_body = as_error(parse(R"({"type":"send","conversation_id":"1","client_msg_id":"c9"})"));
  EXPECT_EQ(no_body.code, ErrorCode::bad_request);
  EXPECT_EQ(no_body.client_msg_id, "c9");
}

TEST(ParseClientFrame, BodyLimitAtNAndNPlusOne) {
  // Goal: a body of 100000 code points is accepted, 100001 is message_too_long with the
  // client_msg_id echoed; whitespace-only is empty_message. Method: generated frames.
  auto ok = parse(send_frame(repeat("a", 100'000)));
  ASSERT_TRUE(std::holds_alternative<SendFrame>(ok));
  EXPECT_EQ(std::get<SendFrame>(ok).body.size(), 100'000U);

  const auto too_long = as_error(parse(send_frame(repeat("a", 100'001))));
  EXPECT_EQ(too_long.code, ErrorCode::message_too_long);
  EXPECT_EQ(too_long.client_msg_id, "c1");

  // Escaped non-ASCII: 100000 "\u00e9" are 100000 code points in 600000 bytes of JSON.
  auto escaped = parse(send_frame(repeat("\\u00e9", 100'000)));
  ASSERT_TRUE(std::holds_alternative<SendFrame>(escaped));
  EXPECT_EQ(chat::domain::utf8_code_points(std::get<SendFrame>(escaped).body), 100'000U);
  EXPECT_EQ(as_error(parse(send_frame(repeat("\\u00e9", 100'001)))).code, ErrorCode::message_too_long);

  const auto blank = as_error(parse(send_frame(" \\t\\n  ")));
  EXPECT_EQ(blank.code, ErrorCode::empty_message);
  EXPECT_EQ(blank.client_msg_id, "c1");
}

TEST(ParseClientFrame, LoneSurrogateEscapeIsInvalidUtf8) {
  // Goal: a JSON "\ud800" lone-surrogate escape yields invalid_utf8 (not bad_json) and the
  // connection stays. Method: parse such a send frame. Boost.JSON stops parsing at the escape, so
  // the frame's client_msg_id cannot be known and is not echoed (documented in protocol.md).
  const auto e = as_error(parse(send_frame("\\ud800")));
  EXPECT_EQ(e.code, ErrorCode::invalid_utf8);
  EXPECT_EQ(e.client_msg_id, "");
}

// ---------------------------------------------------------------------------------------------
// Builders

std::string as_text(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : cat("<not a string: ", json::serialize(v), ">");
}

json::object parse_object(const std::string& text) {
  json::error_code ec;
  auto v = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  EXPECT_TRUE(v.is_object()) << text;
  return v.is_object() ? v.get_object() : json::object{};
}

chat::domain::Message sample_message() {
  chat::domain::Message m;
  m.id = 9'007'199'254'740'993;  // 2^53 + 1: not exact as a JS number, hence string ids
  m.conversation_id = 77;
  m.seq = 12;
  m.sender_id = 3;
  m.body = "h\xC3\xA9llo \"quoted\"\n";
  m.client_msg_id = "c-12";
  m.created_at = 1'750'000'000'123;
  return m;
}

TEST(Frames, ReadyPongReceipt) {
  // Goal: the simple server frames parse back with the right types and ids as strings. Method:
  // build, parse with Boost.JSON, compare each field.
  auto ready = parse_object(chat::gateway::frames::ready(1, 2, 3, 25'000));
  EXPECT_EQ(as_text(ready.at("type")), "ready");
  EXPECT_EQ(as_text(ready.at("user_id")), "1");
  EXPECT_EQ(as_text(ready.at("session_id")), "2");
  EXPECT_EQ(as_text(ready.at("device_id")), "3");
  EXPECT_EQ(ready.at("heartbeat_interval_ms").as_int64(), 25'000);

  auto pong = parse_object(chat::gateway::frames::pong(1'750'000'000'000));
  EXPECT_EQ(as_text(pong.at("type")), "pong");
  EXPECT_EQ(pong.at("ts").as_int64(), 1'750'000'000'000);

  auto receipt = parse_object(chat::gateway::frames::receipt(77, 3, 14, 12));
  EXPECT_EQ(as_text(receipt.at("type")), "receipt");
  EXPECT_EQ(as_text(receipt.at("conversation_id")), "77");
  EXPECT_EQ(as_text(receipt.at("user_id")), "3");
  EXPECT_EQ(receipt.at("delivered_seq").as_int64(), 14);
  EXPECT_EQ(receipt.at("read_seq").as_int64(), 12);
}

TEST(Frames, AckAndMessage) {
  // Goal: ack and message frames carry every message field, ids as exact decimal strings even
  // above 2^53, and the body survives escaping. Method: build from a sample message, parse back.
  const auto m = sample_message();
  auto ack = parse_object(chat::gateway::frames::ack(m));
  EXPECT_EQ(as_text(ack.at("type")), "ack");
  EXPECT_EQ(as_text(ack.at("client_msg_id")), "c-12");
  EXPECT_EQ(as_text(ack.at("conversation_id")), "77");
  EXPECT_EQ(as_text(ack.at("id")), "9007199254740993");
  EXPECT_EQ(ack.at("seq").as_int64(), 12);
  EXPECT_EQ(ack.at("created_at").as_int64(), 1'750'000'000'123);

  auto frame = parse_object(chat::gateway::frames::message(m));
  EXPECT_EQ(as_text(frame.at("type")), "message");
  const auto& msg = frame.at("message").as_object();
  EXPECT_EQ(as_text(msg.at("id")), "9007199254740993");
  EXPECT_EQ(as_text(msg.at("conversation_id")), "77");
  EXPECT_EQ(as_text(msg.at("sender_id")), "3");
  EXPECT_EQ(msg.at("seq").as_int64(), 12);
  EXPECT_EQ(as_text(msg.at("type")), "text");
  EXPECT_EQ(as_text(msg.at("body")), m.body);
  EXPECT_EQ(as_text(msg.at("client_msg_id")), "c-12");
  EXPECT_EQ(msg.at("created_at").as_int64(), 1'750'000'000'123);
}

TEST(Frames, StringEscapesAtEveryOffsetAreBoostJsons) {
  // Goal: append_string (which skips eight plain bytes at a time) escapes exactly what Boost.JSON
  // does wherever the byte falls: before, inside, across and after each eight-byte word. Method:
  // strings of 0..26 bytes with one or two special bytes at every offset, compared byte for byte.
  const std::string specials = std::string("\"\\\n\x01\x1f\x7f /\xff") + '\0';
  for (std::size_t len = 0; len <= 26; ++len) {
    for (const char special : specials) {
      for (std::size_t pos = 0; pos < len; ++pos) {
        std::string text(len, 'a');
        text[pos] = special;
        if (pos + 9 < len) text[pos + 9] = '"';
        std::string direct;
        chat::api::wire::append_string(direct, text);
        EXPECT_EQ(direct, json::serialize(json::string(text))) << len << " " << pos << " " << int(special);
      }
    }
    std::string plain(len, 'z');
    std::string direct;
    chat::api::wire::append_string(direct, plain);
    EXPECT_EQ(direct, json::serialize(json::string(plain)));
  }
}

TEST(Frames, DirectMessageJsonIsByteForByteTheJsonObjectOne) {
  // Goal: the hand-written message JSON (frames, history pages) is exactly what Boost.JSON writes
  // for wire::message, for every field shape: escapes of every control character, quotes and
  // backslashes, UTF-8 passed through, reply vs event ref_id, data, edits, deletes, reactions.
  // Method: serialize both ways and compare the bytes, then check the frame wrappers parse.
  std::vector<chat::domain::Message> cases;
  auto text = sample_message();
  std::string every_control;
  for (int c = 0; c < 0x20; ++c) every_control.push_back(static_cast<char>(c));
  text.body = "q\"uote\\ back/slash \x7f " + every_control + " \xc3\xa9\xf0\x9f\x98\x80 end";
  text.ref_id = 5;
  text.reactions = {{"\xf0\x9f\x91\x8d", {1, 9007199254740993}}, {"\"", {}}};
  cases.push_back(text);
  auto edited = sample_message();
  edited.edited_at = 1'750'000'000'999;
  edited.deleted = true;
  edited.body.clear();
  cases.push_back(edited);
  auto event = sample_message();
  event.type = "member_added";
  event.client_msg_id.clear();
  event.ref_id = 11;
  event.data = R"({"user_ids":["4","5"]})";
  cases.push_back(event);
  auto damaged = event;
  damaged.data = "{not json";
  cases.push_back(damaged);
  for (const auto& m : cases) {
    std::string direct;
    chat::api::wire::append_message(direct, m);
    EXPECT_EQ(direct, json::serialize(chat::api::wire::message(m)));
    auto frame = parse_object(chat::gateway::frames::message(m));
    EXPECT_EQ(frame.at("message"), json::value(chat::api::wire::message(m)));
    auto ok = parse_object(chat::gateway::frames::ok("r\"1", m));
    EXPECT_EQ(as_text(ok.at("request_id")), "r\"1");
    EXPECT_EQ(ok.at("message"), json::value(chat::api::wire::message(m)));
  }
  auto batch = parse_object(chat::gateway::frames::sync_batch(cases, true, {7, 8}));
  ASSERT_EQ(batch.at("events").as_array().size(), cases.size());
  EXPECT_EQ(batch.at("events").as_array()[2], json::value(chat::api::wire::message(cases[2])));
  EXPECT_EQ(batch.at("has_more"), json::value(true));
  EXPECT_EQ(batch.at("removed"), (json::value(json::array{"7", "8"})));
  auto empty = parse_object(chat::gateway::frames::sync_batch({}, false, {}));
  EXPECT_TRUE(empty.at("events").as_array().empty());
  EXPECT_EQ(empty.at("has_more"), json::value(false));
}

TEST(Frames, ErrorWithAndWithoutClientMsgId) {
  // Goal: error frames carry code and message, and client_msg_id only when given. Method: build
  // both forms for a few codes.
  auto plain = parse_object(chat::gateway::frames::error(ErrorCode::bad_json, "frame is not valid JSON"));
  EXPECT_EQ(as_text(plain.at("type")), "error");
  EXPECT_EQ(as_text(plain.at("code")), "bad_json");
  EXPECT_EQ(as_text(plain.at("message")), "frame is not valid JSON");
  EXPECT_FALSE(plain.contains("client_msg_id"));

  auto with_id = parse_object(chat::gateway::frames::error(ErrorCode::message_too_long, "too long", "c7"));
  EXPECT_EQ(as_text(with_id.at("code")), "message_too_long");
  EXPECT_EQ(as_text(with_id.at("client_msg_id")), "c7");

  auto with_request = parse_object(chat::gateway::frames::error(ErrorCode::not_found, "gone", "", "r-1"));
  EXPECT_EQ(as_text(with_request.at("request_id")), "r-1");
  EXPECT_FALSE(with_request.contains("client_msg_id"));

  auto quoted = parse_object(chat::gateway::frames::error(ErrorCode::internal, "a \"b\"\n"));
  EXPECT_EQ(as_text(quoted.at("message")), "a \"b\"\n");
}

// ---------------------------------------------------------------------------------------------
// Shared data file

struct ProtocolCase {
  std::string name;
  std::string frame;  // the text, placeholders expanded
  json::object expect;
  bool placeholder_found = true;
};

std::vector<ProtocolCase> load_cases() {
  std::ifstream in(CHATD_TEST_DATA_DIR "/protocol_cases.json", std::ios::binary);
  if (!in) return {};
  std::stringstream buffer;
  buffer << in.rdbuf();
  json::error_code ec;
  const auto root = json::parse(buffer.str(), ec);
  if (ec || !root.is_array()) return {};
  std::vector<ProtocolCase> out;
  for (const auto& item : root.get_array()) {
    const auto& o = item.as_object();
    ProtocolCase c;
    c.name = std::string(o.at("name").as_string());
    const auto& frame = o.at("frame");
    c.frame = frame.is_string() ? std::string(frame.get_string()) : json::serialize(frame);
    if (const auto* r = o.if_contains("repeat")) {
      const auto& spec = r->as_object();
      const std::string placeholder(spec.at("placeholder").as_string());
      const auto expanded =
          repeat(spec.at("unit").as_string(), static_cast<std::size_t>(spec.at("count").as_int64()));
      const auto at = c.frame.find(placeholder);
      c.placeholder_found = at != std::string::npos;
      if (c.placeholder_found) c.frame.replace(at, placeholder.size(), expanded);
    }
    c.expect = o.at("expect").as_object();
    out.push_back(std::move(c));
  }
  return out;
}

const std::vector<ProtocolCase>& cases() {
  static const std::vector<ProtocolCase> all = load_cases();
  return all;
}

TEST(ProtocolCases, FileLoadsWithUniqueNames) {
  // Goal: the shared case file is present, parses, and names its cases uniquely. Method: load it.
  ASSERT_GE(cases().size(), 40U) << "protocol_cases.json missing or malformed at " CHATD_TEST_DATA_DIR;
  std::set<std::string> names;
  for (const auto& c : cases()) EXPECT_TRUE(names.insert(c.name).second) << c.name;
  for (const auto& c : cases()) EXPECT_TRUE(c.placeholder_found) << c.name;
}

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string kind_of(const ClientFrame& f) {
  if (std::holds_alternative<FrameError>(f)) return "error";
  if (std::holds_alternative<AuthFrame>(f)) return "auth";
  if (std::holds_alternative<PingFrame>(f)) return "ping";
  if (std::holds_alternative<SendFrame>(f)) return "send";
  if (std::holds_alternative<ReadFrame>(f)) return "read";
  if (std::holds_alternative<chat::gateway::DeliveredFrame>(f)) return "delivered";
  if (std::holds_alternative<chat::gateway::TypingFrame>(f)) return "typing";
  if (std::holds_alternative<chat::gateway::EditFrame>(f)) return "edit";
  if (std::holds_alternative<chat::gateway::DeleteFrame>(f)) return "delete";
  if (std::holds_alternative<chat::gateway::ReactFrame>(f)) return "react";
  if (std::holds_alternative<chat::gateway::PresenceSubscribeFrame>(f)) return "presence_subscribe";
  if (std::holds_alternative<chat::gateway::SyncFrame>(f)) return "sync";
  return "unknown";
}

class ProtocolCaseTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ProtocolCaseTest, MatchesExpectation) {
  // Goal: parse_client_frame answers what the shared case file expects. Method: parse the frame
  // text and compare each expected field that is present.
  const auto& c = cases().at(GetParam());
  SCOPED_TRACE(c.name);
  const auto& e = c.expect;
  const auto parsed = parse_client_frame(c.frame);
  const auto& frame = parsed.frame;
  ASSERT_EQ(kind_of(frame), str(e, "kind")) << "error: " << as_error(frame).message;
  EXPECT_EQ(parsed.request_id, str(e, "request_id"));
  if (const auto* err = std::get_if<FrameError>(&frame)) {
    EXPECT_EQ(chat::domain::to_string(err->code), str(e, "code"));
    EXPECT_EQ(err->client_msg_id, str(e, "client_msg_id"));
    EXPECT_FALSE(err->message.empty());
  } else if (const auto* auth = std::get_if<AuthFrame>(&frame)) {
    if (e.contains("token")) {
      EXPECT_EQ(auth->token, str(e, "token"));
    }
  } else if (const auto* send = std::get_if<SendFrame>(&frame)) {
    EXPECT_EQ(std::to_string(send->conversation_id), str(e, "conversation_id"));
    EXPECT_EQ(send->client_msg_id, str(e, "client_msg_id"));
    if (e.contains("body")) {
      EXPECT_EQ(send->body, str(e, "body"));
    }
    if (const auto* n = e.if_contains("body_code_points")) {
      EXPECT_EQ(chat::domain::utf8_code_points(send->body), static_cast<std::size_t>(n->as_int64()));
    }
  } else if (const auto* read = std::get_if<ReadFrame>(&frame)) {
    EXPECT_EQ(std::to_string(read->conversation_id), str(e, "conversation_id"));
    EXPECT_EQ(read->seq, e.at("seq").as_int64());
  } else if (const auto* delivered = std::get_if<chat::gateway::DeliveredFrame>(&frame)) {
    EXPECT_EQ(std::to_string(delivered->conversation_id), str(e, "conversation_id"));
    EXPECT_EQ(delivered->seq, e.at("seq").as_int64());
  }
}

std::string case_test_name(const ::testing::TestParamInfo<std::size_t>& info) {
  std::string name = std::to_string(info.param) + "_";
  for (char ch : cases().at(info.param).name) {
    const bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    name.push_back(alnum ? ch : '_');
  }
  return name;
}

std::vector<std::size_t> case_indexes() {
  std::vector<std::size_t> out(cases().size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = i;
  return out;
}

INSTANTIATE_TEST_SUITE_P(SharedFile, ProtocolCaseTest, ::testing::ValuesIn(case_indexes()), case_test_name);

}  // namespace
