#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace foresight {

// A read-only memory map of a whole file. Checkpoint tensors point straight into it, so weights
// stored in the compute dtype are never copied into RAM.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace foresight
