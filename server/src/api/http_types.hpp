#pragma once

#include <string>
#include <utility>
#include <vector>

// HTTP as the API layer sees it: no Beast here, so handlers compile without it and can be tested
// with plain structs. net/http_session converts to and from Beast's types.
namespace chat::api {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as received
  std::string authorization;
  std::string content_type;
  std::string body;
  std::string remote_ip;
  std::string forwarded_for;  // X-Forwarded-For as received (believed only from --trusted-proxy peers)
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace chat::api
