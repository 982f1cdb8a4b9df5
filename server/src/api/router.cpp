#include "api/router.hpp"

#include "api/wire.hpp"
#include "auth/password_hasher.hpp"
#include "domain/limits.hpp"
#include "domain/utf8.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "service/chat_service.hpp"
#include "store/errors.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <charconv>
#include <optional>
#include <string_view>
#include <vector>

namespace chat::api {

namespace json = boost::json;
using domain::ErrorCode;
using service::Failure;

namespace {

Response json_response(unsigned status, const json::value& body) {
  Response r;
  r.status = status;
  r.body = json::serialize(body);
  return r;
}

Response error_response(obs::Metrics& metrics, const Failure& f) {
  metrics.count_error(f.code);
  Response r = json_response(
      domain::http_status(f.code),
      json::object{{"error", json::object{{"code", domain::to_string(f.code)}, {"message", f.message}}}});
  if (f.retry_after.count() > 0) r.headers.emplace_back("Retry-After", std::to_string(f.retry_after.count()));
  return r;
}

Failure failure(ErrorCode code, std::string message) {
  return Failure{code, std::move(message), {}};
}

json::object session_json(const service::SessionGrant& g) {
  return json::object{{"user", wire::user(g.user, true)},
                      {"session", json::object{{"session_id", wire::id(g.session_id)},
                                               {"device_id", wire::id(g.device_id)},
                                               {"access_token", g.access_token},
                                               {"access_expires_at", g.access_expires_at},
                                               {"refresh_token", g.refresh_token},
                                               {"refresh_expires_at", g.refresh_expires_at}}}};
}

// The parsed request: path segments after the prefix, query, and the JSON body when needed.
struct Call {
  const Request& request;
  std::vector<std::string> segments;
  boost::urls::url_view url;
};

std::optional<std::string> query_param(const Call& c, std::string_view key) {
  auto params = c.url.params();
  auto it = params.find(key);
  if (it == params.end()) return std::nullopt;
  return std::string((*it).value);
}

// Parses an optional non-negative integer query parameter; a present but malformed value fails.
bool int_param(const Call& c, std::string_view key, std::optional<std::int64_t>& out) {
  auto text = query_param(c, key);
  if (!text) return true;
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size() || v < 0) return false;
  out = v;
  return true;
}

// Parses the body as a JSON object; the failure names what was wrong.
std::variant<json::object, Failure> body_object(const Request& r) {
  if (!domain::is_valid_utf8(r.body))
    return failure(ErrorCode::invalid_utf8, "request body is not valid UTF-8");
  json::error_code ec;
  json::parse_options options;
  options.max_depth = 16;
  auto v = json::parse(r.body, ec, {}, options);
  if (ec || !v.is_object()) return failure(ErrorCode::bad_request, "request body must be a JSON object");
  return std::move(v.as_object());
}

// Reads an optional string field; a present field of another type is an error.
bool string_field(const json::object& o, std::string_view key, std::string& out, bool required) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return !required;
  if (!v->is_string()) return false;
  out = std::string(v->get_string());
  return true;
}

bool device_field(const json::object& o, service::DeviceInfo& out) {
  const auto* v = o.if_contains("device");
  if (v == nullptr || v->is_null()) return true;
  const auto* d = v->if_object();
  if (d == nullptr) return false;
  std::string type = "web";
  if (!string_field(*d, "type", type, false) || !string_field(*d, "name", out.name, false)) return false;
  const auto parsed = domain::parse_device_type(type);
  if (!parsed) return false;
  out.type = *parsed;
  return true;
}

std::optional<std::string> bearer(const Request& r) {
  constexpr std::string_view prefix = "Bearer ";
  if (r.authorization.size() <= prefix.size() || r.authorization.compare(0, prefix.size(), prefix) != 0)
    return std::nullopt;
  return r.authorization.substr(prefix.size());
}

// True for every path the API serves (whatever the method), so an unknown path is a 404 even
// without a token, and a known one is a 401 before anything else is revealed.
bool known_route(const std::vector<std::string>& r) {
  if (r.size() == 2 && r[0] == "auth") return true;
  if (r.size() == 2 && r[0] == "users" && (r[1] == "me" || r[1] == "search")) return true;
  if (r.size() == 3 && r[0] == "users" && r[1] == "me" && r[2] == "devices") return true;
  if (r.size() == 4 && r[0] == "users" && r[1] == "me" && r[2] == "devices") return true;
  if (r.size() == 3 && r[0] == "users" && r[2] == "profile") return true;
  if (r.size() == 1 && r[0] == "conversations") return true;
  if (r.size() == 2 && r[0] == "conversations") return true;
  if (r.size() == 3 && r[0] == "conversations" &&
      (r[2] == "messages" || r[2] == "join" || r[2] == "members" || r[2] == "leave" || r[2] == "invites" ||
       r[2] == "receipts"))
    return true;
  if (r.size() == 4 && r[0] == "conversations" && (r[2] == "members" || r[2] == "invites")) return true;
  if (r.size() == 5 && r[0] == "conversations" && r[2] == "members" && r[4] == "role") return true;
  if (r.size() == 2 && r[0] == "messages") return true;
  if (r.size() == 3 && r[0] == "messages" && r[2] == "read") return true;
  if (r.size() == 4 && r[0] == "messages" && r[2] == "reactions") return true;
  return false;
}

// Reads "user_ids" as a list of ids; false if absent or malformed.
bool id_list(const json::object& o, std::string_view key, std::vector<domain::UserId>& out) {
  const auto* v = o.if_contains(key);
  const auto* arr = v != nullptr ? v->if_array() : nullptr;
  if (arr == nullptr || arr->size() > 1000) return false;
  for (const auto& item : *arr) {
    auto id = wire::parse_id(item);
    if (!id) return false;
    out.push_back(*id);
  }
  return true;
}

}  // namespace

Router::Router(service::ChatService& service, obs::Metrics& metrics, TrustedProxies trusted)
    : service_(service), metrics_(metrics), trusted_(std::move(trusted)) {}

net::awaitable<Response> Router::handle(Request request) {
  metrics_.http_requests.fetch_add(1, std::memory_order_relaxed);
  auto& svc = service_;
  auto& metrics = metrics_;
  const auto fail = [&](ErrorCode code, std::string message) {
    return error_response(metrics, failure(code, std::move(message)));
  };

  auto parsed = boost::urls::parse_origin_form(request.target);
  if (!parsed) co_return fail(ErrorCode::bad_request, "malformed request target");
  Call call{request, {}, *parsed};
  for (auto seg : call.url.segments()) call.segments.emplace_back(seg);
  const auto& seg = call.segments;
  const std::string& method = request.method;

  try {
    // ---- unauthenticated ----
    if (seg.size() == 1 && seg[0] == "healthz") {
      if (method != "GET") co_return fail(ErrorCode::method_not_allowed, "use GET");
      const bool ok = co_await svc.healthy();
      co_return json_response(ok ? 200 : 503, json::object{{"status", ok ? "ok" : "unavailable"}});
    }
    if (seg.size() == 1 && seg[0] == "metrics") {
      if (method != "GET") co_return fail(ErrorCode::method_not_allowed, "use GET");
      Response r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = metrics.render();
      co_return r;
    }
    if (seg.size() < 2 || seg[0] != "api" || seg[1] != "v1")
      co_return fail(ErrorCode::not_found, "no such route");
    const std::vector<std::string> rest(seg.begin() + 2, seg.end());
    if (!known_route(rest)) co_return fail(ErrorCode::not_found, "no such route");

    if (rest.size() == 2 && rest[0] == "auth" && rest[1] != "logout") {
      if (method != "POST") co_return fail(ErrorCode::method_not_allowed, "use POST");
      auto body = body_object(request);
      if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
      const auto& o = std::get<json::object>(body);
      service::Result<service::SessionGrant> result = failure(ErrorCode::not_found, "no such route");
      unsigned success = 200;
      if (rest[1] == "register") {
        service::RegisterRequest r;
        r.ip = client_ip(request.remote_ip, request.forwarded_for, trusted_);
        if (!string_field(o, "username", r.username, true) || !string_field(o, "email", r.email, true) ||
            !string_field(o, "password", r.password, true) ||
            !string_field(o, "display_name", r.display_name, false) || !device_field(o, r.device))
          co_return fail(ErrorCode::bad_request, "register needs string username, email and password");
        result = co_await svc.register_user(std::move(r));
        success = 201;
      } else if (rest[1] == "login") {
        service::LoginRequest r;
        r.ip = client_ip(request.remote_ip, request.forwarded_for, trusted_);
        if (!string_field(o, "login", r.login, true) || !string_field(o, "password", r.password, true) ||
            !device_field(o, r.device))
          co_return fail(ErrorCode::bad_request, "login needs string login and password");
        result = co_await svc.login(std::move(r));
      } else if (rest[1] == "refresh") {
        std::string token;
        if (!string_field(o, "refresh_token", token, true))
          co_return fail(ErrorCode::bad_request, "refresh needs a string refresh_token");
        result = co_await svc.refresh(std::move(token));
      } else {
        co_return fail(ErrorCode::not_found, "no such route");
      }
      if (auto* f = service::failed(result)) co_return error_response(metrics, *f);
      co_return json_response(success, session_json(std::get<service::SessionGrant>(result)));
    }

    // ---- authenticated ----
    const auto token = bearer(request);
    std::optional<domain::AuthContext> auth;
    if (token) auth = co_await svc.authenticate(*token);
    if (!auth) {
      Response r = fail(ErrorCode::unauthorized, "missing, invalid or expired access token");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      co_return r;
    }

    if (rest.size() == 2 && rest[0] == "auth" && rest[1] == "logout") {
      if (method != "POST") co_return fail(ErrorCode::method_not_allowed, "use POST");
      co_await svc.logout(*auth);
      Response r;
      r.status = 204;
      r.content_type.clear();
      co_return r;
    }

    if (rest.size() >= 2 && rest[0] == "users") {
      if (rest.size() == 2 && rest[1] == "me") {
        if (method != "GET") co_return fail(ErrorCode::method_not_allowed, "use GET");
        auto r = co_await svc.get_profile(*auth, auth->user_id);
        if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
        co_return json_response(200, wire::user(std::get<domain::User>(r), true));
      }
      if (rest.size() >= 3 && rest[1] == "me" && rest[2] == "devices") {
        if (rest.size() == 3) {
          if (method != "GET") co_return fail(ErrorCode::method_not_allowed, "use GET");
          auto list = co_await svc.devices(*auth);
          json::array out;
          for (const auto& d : list) {
            out.push_back(json::object{{"device_id", wire::id(d.device_id)},
                                       {"session_id", wire::id(d.session_id)},
                                       {"type", domain::to_string(d.type)},
                                       {"name", d.name},
                                       {"created_at", d.created_at},
                                       {"last_active", d.last_active},
                                       {"current", d.session_id == auth->session_id}});
          }
          co_return json_response(200, json::object{{"devices", std::move(out)}});
        }
        if (method != "DELETE") co_return fail(ErrorCode::method_not_allowed, "use DELETE");
        const auto device = wire::parse_id(rest[3]);
        if (!device) co_return fail(ErrorCode::not_found, "not found");
        auto r = co_await svc.revoke_device(*auth, *device);
        if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
        Response res;
        res.status = 204;
        res.content_type.clear();
        co_return res;
      }
      if (rest.size() == 2 && rest[1] == "search") {
        if (method != "GET") co_return fail(ErrorCode::method_not_allowed, "use GET");
        std::optional<std::int64_t> limit;
        if (!int_param(call, "limit", limit)) co_return fail(ErrorCode::bad_request, "limit must be 1..50");
        auto q = query_param(call, "q").value_or("");
        auto r = co_await svc.search_users(
            *auth, std::move(q), static_cast<int>(limit.value_or(domain::limits::search_results_default)));
        if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
        json::array users;
        for (const auto& u : std::get<std::vector<domain::User>>(r)) users.push_back(wire::user(u, false));
        co_return json_response(200, json::object{{"users", std::move(users)}});
      }
      if (rest.size() == 3 && rest[2] == "profile") {
        const auto id = wire::parse_id(rest[1]);
        if (!id) co_return fail(ErrorCode::not_found, "not found");
        if (method == "GET") {
          auto r = co_await svc.get_profile(*auth, *id);
          if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
          co_return json_response(200, wire::user(std::get<domain::User>(r), *id == auth->user_id));
        }
        if (method == "PUT") {
          auto body = body_object(request);
          if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
          const auto& o = std::get<json::object>(body);
          store::ProfileUpdate update;
          std::string value;
          for (const auto* key : {"display_name", "profile_picture", "bio"}) {
            const auto* v = o.if_contains(key);
            if (v == nullptr) continue;
            if (!v->is_string())
              co_return fail(ErrorCode::bad_request, std::string(key) + " must be a string");
            std::string s(v->get_string());
            if (std::string_view(key) == "display_name") update.display_name = std::move(s);
            if (std::string_view(key) == "profile_picture") update.profile_picture = std::move(s);
            if (std::string_view(key) == "bio") update.bio = std::move(s);
          }
          auto r = co_await svc.update_profile(*auth, *id, std::move(update));
          if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
          co_return json_response(200, wire::user(std::get<domain::User>(r), true));
        }
        co_return fail(ErrorCode::method_not_allowed, "use GET or PUT");
      }
      co_return fail(ErrorCode::not_found, "no such route");
    }

    if (!rest.empty() && rest[0] == "conversations") {
      if (rest.size() == 1) {
        if (method == "GET") {
          auto list = co_await svc.list_conversations(*auth);
          json::array out;
          for (const auto& c : list) out.push_back(wire::conversation(c));
          co_return json_response(200, json::object{{"conversations", std::move(out)}});
        }
        if (method == "POST") {
          auto body = body_object(request);
          if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
          const auto& o = std::get<json::object>(body);
          std::string type;
          if (!string_field(o, "type", type, true))
            co_return fail(ErrorCode::bad_request, "type must be \"direct\" or \"group\"");
          if (type == "group") {
            std::string name;
            std::vector<domain::UserId> members;
            if (!string_field(o, "name", name, true))
              co_return fail(ErrorCode::bad_request, "a group needs a string name");
            if (o.contains("member_ids") && !id_list(o, "member_ids", members))
              co_return fail(ErrorCode::bad_request, "member_ids must be a list of ids");
            auto r = co_await svc.create_group(*auth, std::move(name), std::move(members));
            if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
            co_return json_response(201, wire::conversation(std::get<domain::Conversation>(r)));
          }
          if (type != "direct")
            co_return fail(ErrorCode::bad_request, "type must be \"direct\" or \"group\"");
          const auto* uid = o.if_contains("user_id");
          const auto other = uid != nullptr ? wire::parse_id(*uid) : std::nullopt;
          if (!other) co_return fail(ErrorCode::bad_request, "user_id must be an id");
          auto r = co_await svc.open_direct(*auth, *other);
          if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
          const auto& [conversation, created] = std::get<std::pair<domain::Conversation, bool>>(r);
          co_return json_response(created ? 201 : 200, wire::conversation(conversation));
        }
        co_return fail(ErrorCode::method_not_allowed, "use GET or POST");
      }
      const auto id = wire::parse_id(rest[1]);
      if (!id) co_return fail(ErrorCode::not_found, "not found");
      const auto conversation_result = [&](const service::Result<domain::Conversation>& r) {
        if (auto* f = service::failed(r)) return error_response(metrics, *f);
        return json_response(200, wire::conversation(std::get<domain::Conversation>(r)));
      };
      const auto done_result = [&](const service::Result<bool>& r) {
        if (auto* f = service::failed(r)) return error_response(metrics, *f);
        Response res;
        res.status = 204;
        res.content_type.clear();
        return res;
      };
      if (rest.size() == 2) {
        if (method == "GET") {
          auto r = co_await svc.get_conversation(*auth, *id);
          co_return conversation_result(r);
        }
        if (method == "PATCH") {
          auto body = body_object(request);
          if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
          std::string name;
          if (!string_field(std::get<json::object>(body), "name", name, true))
            co_return fail(ErrorCode::bad_request, "rename needs a string name");
          auto r = co_await svc.rename_group(*auth, *id, std::move(name));
          co_return conversation_result(r);
        }
        co_return fail(ErrorCode::method_not_allowed, "use GET or PATCH");
      }
      if (rest.size() == 3 && rest[2] == "members") {
        if (method != "POST") co_return fail(ErrorCode::method_not_allowed, "use POST");
        auto body = body_object(request);
        if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
        std::vector<domain::UserId> users;
        if (!id_list(std::get<json::object>(body), "user_ids", users))
          co_return fail(ErrorCode::bad_request, "user_ids must be a list of ids");
        auto r = co_await svc.add_members(*auth, *id, std::move(users));
        co_return conversation_result(r);
      }
      if (rest.size() == 4 && rest[2] == "members") {
        if (method != "DELETE") co_return fail(ErrorCode::method_not_allowed, "use DELETE");
        const auto target = wire::parse_id(rest[3]);
        if (!target) co_return fail(ErrorCode::not_found, "not found");
        auto r = co_await svc.remove_member(*auth, *id, *target);
        co_return done_result(r);
      }
      if (rest.size() == 5 && rest[2] == "members") {
        if (method != "PUT") co_return fail(ErrorCode::method_not_allowed, "use PUT");
        const auto target = wire::parse_id(rest[3]);
        if (!target) co_return fail(ErrorCode::not_found, "not found");
        auto body = body_object(request);
        if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
        std::string role_text;
        if (!string_field(std::get<json::object>(body), "role", role_text, true))
          co_return fail(ErrorCode::bad_request, "role must be \"admin\" or \"member\"");
        const auto role = domain::parse_member_role(role_text);
        if (!role || *role == domain::MemberRole::owner)
          co_return fail(ErrorCode::bad_request, "role must be \"admin\" or \"member\"");
        auto r = co_await svc.set_role(*auth, *id, *target, *role);
        co_return conversation_result(r);
      }
      if (rest.size() == 3 && rest[2] == "leave") {
        if (method != "POST") co_return fail(ErrorCode::method_not_allowed, "use POST");
        auto r = co_await svc.remove_member(*auth, *id, auth->user_id);
        co_return done_result(r);
      }
      if (rest.size() == 3 && rest[2] == "receipts") {
        if (method != "GET") co_return fail(ErrorCode::method_not_allowed, "use GET");
        auto r = co_await svc.receipts(*auth, *id);
        if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
        json::array out;
        for (const auto& rc : std::get<std::vector<domain::Receipt>>(r)) {
          out.push_back(json::object{{"user_id", wire::id(rc.user_id)},
                                     {"delivered_seq", rc.delivered_seq},
                                     {"read_seq", rc.read_seq}});
        }
        co_return json_response(200, json::object{{"receipts", std::move(out)}});
      }
      if (rest.size() == 3 && rest[2] == "invites") {
        const auto invite_json = [](const store::Invite& i) {
          return json::object{{"code", i.code},
                              {"conversation_id", wire::id(i.conversation_id)},
                              {"created_by", wire::id(i.created_by)},
                              {"created_at", i.created_at}};
        };
        if (method == "POST") {
          auto r = co_await svc.create_invite(*auth, *id);
          if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
          co_return json_response(201, invite_json(std::get<store::Invite>(r)));
        }
        if (method == "GET") {
          auto r = co_await svc.list_invites(*auth, *id);
          if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
          json::array out;
          for (const auto& i : std::get<std::vector<store::Invite>>(r)) out.push_back(invite_json(i));
          co_return json_response(200, json::object{{"invites", std::move(out)}});
        }
        co_return fail(ErrorCode::method_not_allowed, "use GET or POST");
      }
      if (rest.size() == 4 && rest[2] == "invites") {
        if (method != "DELETE") co_return fail(ErrorCode::method_not_allowed, "use DELETE");
        auto r = co_await svc.revoke_invite(*auth, *id, rest[3]);
        co_return done_result(r);
      }
      if (rest.size() == 3 && rest[2] == "join") {
        if (method != "POST") co_return fail(ErrorCode::method_not_allowed, "use POST");
        auto body = body_object(request);
        if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
        std::string code;
        if (!string_field(std::get<json::object>(body), "code", code, true))
          co_return fail(ErrorCode::bad_request, "join needs the invite code");
        auto r = co_await svc.join(*auth, *id, std::move(code));
        co_return conversation_result(r);
      }
      if (rest.size() == 3 && rest[2] == "messages") {
        if (method == "GET") {
          store::HistoryQuery q;
          std::optional<std::int64_t> limit;
          if (!int_param(call, "before", q.before) || !int_param(call, "after", q.after))
            co_return fail(ErrorCode::invalid_cursor, "before and after must be non-negative integers");
          if (!int_param(call, "limit", limit))
            co_return fail(ErrorCode::bad_request, "limit must be 1..100");
          q.limit = static_cast<int>(
              std::min<std::int64_t>(limit.value_or(domain::limits::history_page_default), 1000));
          auto r = co_await svc.history(*auth, *id, q);
          if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
          const auto& page = std::get<store::HistoryPage>(r);
          // Written directly (no json::object per message): the hottest read of the API.
          Response page_response;
          page_response.status = 200;
          auto& out = page_response.body;
          out.reserve(32 + page.messages.size() * 384);
          out.append(R"({"messages":[)");
          for (std::size_t i = 0; i < page.messages.size(); ++i) {
            if (i > 0) out.push_back(',');
            wire::append_message(out, page.messages[i]);
          }
          out.append(page.has_more ? R"(],"has_more":true})" : R"(],"has_more":false})");
          co_return page_response;
        }
        if (method == "POST") {
          auto body = body_object(request);
          if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
          const auto& o = std::get<json::object>(body);
          std::string client_msg_id, text;
          if (!string_field(o, "client_msg_id", client_msg_id, true) || !string_field(o, "body", text, true))
            co_return fail(ErrorCode::bad_request, "send needs string client_msg_id and body");
          std::optional<domain::MessageId> reply_to;
          if (const auto* rv = o.if_contains("reply_to"); rv != nullptr && !rv->is_null()) {
            reply_to = wire::parse_id(*rv);
            if (!reply_to) co_return fail(ErrorCode::bad_request, "reply_to must be a message id");
          }
          auto r = co_await svc.send(*auth, *id, std::move(client_msg_id), std::move(text), reply_to, 0);
          if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
          const auto& sent = std::get<service::SendOutcome>(r);
          co_return json_response(sent.duplicate ? 200 : 201, wire::message(sent.message));
        }
        co_return fail(ErrorCode::method_not_allowed, "use GET or POST");
      }
      co_return fail(ErrorCode::not_found, "no such route");
    }

    if (!rest.empty() && rest[0] == "messages" && rest.size() != 3) {
      const auto id = wire::parse_id(rest[1]);
      if (!id) co_return fail(ErrorCode::not_found, "not found");
      service::Result<service::ChatService::Change> r =
          failure(ErrorCode::method_not_allowed, "method not allowed");
      bool deleted = false;
      if (rest.size() == 2 && method == "PATCH") {
        auto body = body_object(request);
        if (auto* f = std::get_if<Failure>(&body)) co_return error_response(metrics, *f);
        std::string text;
        if (!string_field(std::get<json::object>(body), "body", text, true))
          co_return fail(ErrorCode::bad_request, "edit needs a string body");
        r = co_await svc.edit_message(*auth, *id, std::move(text));
      } else if (rest.size() == 2 && method == "DELETE") {
        r = co_await svc.delete_message(*auth, *id);
        deleted = true;
      } else if (rest.size() == 4 && (method == "PUT" || method == "DELETE")) {
        r = co_await svc.react(*auth, *id, rest[3], method == "PUT");
      }
      if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
      if (deleted) {
        Response res;
        res.status = 204;
        res.content_type.clear();
        co_return res;
      }
      co_return json_response(200, wire::message(std::get<service::ChatService::Change>(r).message));
    }

    if (rest.size() == 3 && rest[0] == "messages" && rest[2] == "read") {
      if (method != "PUT") co_return fail(ErrorCode::method_not_allowed, "use PUT");
      const auto id = wire::parse_id(rest[1]);
      if (!id) co_return fail(ErrorCode::not_found, "not found");
      auto r = co_await svc.mark_read(*auth, *id);
      if (auto* f = service::failed(r)) co_return error_response(metrics, *f);
      const auto& read = std::get<service::ReadOutcome>(r);
      co_return json_response(200, json::object{{"conversation_id", wire::id(read.conversation_id)},
                                                {"read_seq", read.read_seq}});
    }
    co_return fail(ErrorCode::not_found, "no such route");
  } catch (const store::StoreUnavailable& e) {
    obs::log_warn(std::string("store unavailable: ") + e.what());
    co_return error_response(
        metrics, Failure{ErrorCode::unavailable, "temporarily unavailable; retry", std::chrono::seconds(1)});
  } catch (const auth::HasherOverloaded&) {
    co_return error_response(metrics, Failure{ErrorCode::unavailable, "too many logins in progress; retry",
                                              std::chrono::seconds(1)});
  } catch (const std::exception& e) {
    obs::log_error(std::string("internal error: ") + e.what());
    co_return error_response(metrics, failure(ErrorCode::internal, "internal error"));
  }
}

}  // namespace chat::api
