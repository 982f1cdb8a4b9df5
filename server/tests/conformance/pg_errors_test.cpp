// PostgreSQL error sorting (store/postgres/pg_connection.cpp): which SQLSTATEs are retryable,
// which mean corruption. A pure function, so no server is needed.

#include "store/errors.hpp"
#include "store/postgres/pg_connection.hpp"

#include <gtest/gtest.h>
#include <string>

namespace {

using chat::store::StoreCorrupt;
using chat::store::StoreError;
using chat::store::StoreUnavailable;
using chat::store::postgres::detail::throw_sqlstate;

// 0: StoreError only, 1: StoreUnavailable, 2: StoreCorrupt.
int kind(const std::string& sqlstate, bool lost = false) {
  try {
    throw_sqlstate(sqlstate, lost, "test");
  } catch (const StoreUnavailable&) {
    return 1;
  } catch (const StoreCorrupt&) {
    return 2;
  } catch (const StoreError&) {
    return 0;
  }
  return -1;
}

TEST(PgErrors, SqlstatesMapToTheStoreHierarchy) {
  // Goal: each SQLSTATE class named in the contract lands in the right exception. Method: one
  // code of each class, plus neighbours that must not be caught by a prefix.
  EXPECT_EQ(kind("08006"), 1);  // connection_failure
  EXPECT_EQ(kind("08001"), 1);  // sqlclient_unable_to_establish_sqlconnection
  EXPECT_EQ(kind("53100"), 1);  // disk_full
  EXPECT_EQ(kind("53300"), 1);  // too_many_connections
  EXPECT_EQ(kind("57P01"), 1);  // admin_shutdown
  EXPECT_EQ(kind("57P03"), 1);  // cannot_connect_now (recovery)
  EXPECT_EQ(kind("40001"), 1);  // serialization_failure
  EXPECT_EQ(kind("40P01"), 1);  // deadlock_detected
  EXPECT_EQ(kind("XX001"), 2);  // data_corrupted
  EXPECT_EQ(kind("XX002"), 2);  // index_corrupted
  EXPECT_EQ(kind("XX000"), 0);  // internal_error
  EXPECT_EQ(kind("57014"), 0);  // query_canceled is not operator intervention's 57P
  EXPECT_EQ(kind("40002"), 0);  // transaction_integrity_constraint_violation
  EXPECT_EQ(kind("23505"), 0);  // unique_violation: a bug or a race, not retryable as such
  EXPECT_EQ(kind("42P01"), 0);  // undefined_table
  EXPECT_EQ(kind(""), 0);       // no SQLSTATE, connection fine
  EXPECT_EQ(kind("", /*lost=*/true), 1);
  EXPECT_EQ(kind("23505", /*lost=*/true), 1);
}

}  // namespace
