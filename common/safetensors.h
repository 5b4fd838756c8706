#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace foresight {

class MappedFile;

// Reader for the safetensors format (8-byte little-endian header size, JSON header, raw data).
// The header is validated in full on open, so a truncated or corrupt file fails here, by name,
// and not later inside a matmul.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const;
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor that views the mapped file (no copy). It keeps the mapping alive and must be
  // treated as read-only.
  at::Tensor tensor(const std::string& name) const;

 private:
  struct Entry {
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    std::size_t offset;  // from the start of the file
  };
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any device, contiguous or not) to `path` in safetensors format, atomically.
// Throws unless every value of `t` is finite, naming `file` and the tensor: a NaN or inf weight
// would otherwise run through every stage and surface only as NaN losses or scores. One pass in
// the stored dtype (a NaN makes the min and max NaN; an inf is one of them).
void check_finite_tensor(const at::Tensor& t, const std::string& file, const std::string& name);

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace foresight
