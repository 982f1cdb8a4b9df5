#pragma once

#include <string>
#include <string_view>

// Opaque bearer tokens: 256 random bits, base64url. The store keeps only their SHA-256, so a
// leaked database does not log anyone in.
namespace chat::auth {

std::string new_token();
// Raw 32-byte SHA-256 of the token (what the store indexes).
std::string token_hash(std::string_view token);

}  // namespace chat::auth
