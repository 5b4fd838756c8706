#pragma once
#include <string>

namespace foresight {

// Lower-case hex SHA-256 of `data` (FIPS 180-4). Used to fingerprint a model's config.json.
std::string sha256_hex(const std::string& data);

}  // namespace foresight
