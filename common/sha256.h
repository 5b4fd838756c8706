#pragma once
#include <string>

namespace foresight {

// Lower-case hex SHA-256 of `data` (FIPS 180-4). Used to fingerprint a model's config.json.
std::string sha256_hex(const std::string& data);

// The same of a file's bytes, read in pieces (golden files run to gigabytes). Throws, naming the
// file, when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace foresight
