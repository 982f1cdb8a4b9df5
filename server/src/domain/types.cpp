#include "domain/types.hpp"

namespace chat::domain {

std::string_view to_string(DeviceType t) noexcept {
  switch (t) {
    case DeviceType::web:
      return "web";
    case DeviceType::mobile:
      return "mobile";
    case DeviceType::smart_tv:
      return "smart_tv";
  }
  return "web";
}

std::optional<DeviceType> parse_device_type(std::string_view s) noexcept {
  if (s == "web") return DeviceType::web;
  if (s == "mobile") return DeviceType::mobile;
  if (s == "smart_tv") return DeviceType::smart_tv;
  return std::nullopt;
}

std::string_view to_string(ConversationType t) noexcept {
  return t == ConversationType::direct ? "direct" : "group";
}

std::string_view to_string(MemberRole r) noexcept {
  switch (r) {
    case MemberRole::owner:
      return "owner";
    case MemberRole::admin:
      return "admin";
    case MemberRole::member:
      return "member";
  }
  return "member";
}

std::optional<MemberRole> parse_member_role(std::string_view s) noexcept {
  if (s == "owner") return MemberRole::owner;
  if (s == "admin") return MemberRole::admin;
  if (s == "member") return MemberRole::member;
  return std::nullopt;
}

}  // namespace chat::domain
