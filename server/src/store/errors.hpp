#pragma once

#include <stdexcept>
#include <string>

// Infrastructure failures of a Store. Expected outcomes (not a member, duplicate client_msg_id,
// username taken) are values in the result types of store.hpp, never exceptions.
namespace chat::store {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The store cannot serve now (busy, disk full, I/O error, server down). Retryable: the caller
// reports `unavailable` and the client tries again later with the same client_msg_id.
class StoreUnavailable final : public StoreError {
 public:
  using StoreError::StoreError;
};

// The data is damaged or not ours. Not retryable; an operator must look.
class StoreCorrupt final : public StoreError {
 public:
  using StoreError::StoreError;
};

}  // namespace chat::store
