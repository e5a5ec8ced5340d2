// Trust boundary for device bytes: flatbuffers Verifier over every wire table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fl::schema {

// Limits applied to every verification (nesting depth, number of tables).
constexpr unsigned kMaxDepth = 64;
constexpr unsigned kMaxTables = 1000000;

// Verifies `body` as a root table of type `table` (with or without the FLJ0 identifier).
// Returns false for any malformed buffer; throws EnforceError for an unknown table name.
bool verify(const std::string& table, const uint8_t* body, size_t size);

// True when `table` names a table of the schema.
bool isKnownTable(const std::string& table);

// Names of every table that verify() accepts.
std::vector<std::string> tableNames();

}  // namespace fl::schema
