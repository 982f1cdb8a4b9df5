#pragma once

#include "api/client_ip.hpp"
#include "api/http_types.hpp"
#include "net/asio.hpp"

namespace chat::obs {
class Metrics;
}
namespace chat::service {
class ChatService;
}

namespace chat::api {

// The REST API (docs/openapi.yaml). Every handler authenticates, validates, and calls the
// ChatService; every failure becomes the one error shape {"error":{"code","message"}} with the
// status of its code.
class Router {
 public:
  Router(service::ChatService& service, obs::Metrics& metrics, TrustedProxies trusted = {});

  net::awaitable<Response> handle(Request request);

 private:
  service::ChatService& service_;
  obs::Metrics& metrics_;
  TrustedProxies trusted_;
};

}  // namespace chat::api
