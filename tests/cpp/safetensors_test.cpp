#include "common/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace foresight {
namespace {

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("foresight_test_" + name)).string();
}

TEST(Safetensors, RoundTripKeepsValuesDtypesAndShapes) {
  const std::string path = temp_file("roundtrip.safetensors");
  const at::Tensor a = at::randn({3, 5});
  const at::Tensor b = at::arange(7, at::kLong);
  const at::Tensor c = at::randn({2, 2}).to(at::kBFloat16);
  write_safetensors(path, {{"a", a}, {"b", b}, {"c", c}}, {{"k", "v"}});
  const SafetensorsFile f(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(at::equal(f.tensor("a"), a));
  EXPECT_TRUE(at::equal(f.tensor("b"), b));
  EXPECT_TRUE(at::equal(f.tensor("c"), c));
  EXPECT_EQ(f.metadata().at("k"), "v");
  std::filesystem::remove(path);
}

TEST(Safetensors, RefusesTruncatedAndCorruptFiles) {
  const std::string path = temp_file("corrupt.safetensors");
  write_safetensors(path, {{"a", at::randn({64})}});
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 16);
  EXPECT_THROW(SafetensorsFile{path}, Error);  // data_offsets now run past the end

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "\xff\xff\xff\xff\xff\xff\xff\x7f{}";
  EXPECT_THROW(SafetensorsFile{path}, Error);  // header size larger than the file

  const std::string bad_json = "{\"a\": {\"dtype\": ";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = bad_json.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << bad_json;
  out.close();
  EXPECT_THROW(SafetensorsFile{path}, Error);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace foresight
