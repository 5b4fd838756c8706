#include "common/safetensors.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "common/text_file.h"

namespace foresight {

void check_finite_tensor(const at::Tensor& t, const std::string& file, const std::string& name) {
  if (t.numel() == 0) return;
  const auto [lo, hi] = at::aminmax(t);
  if (std::isfinite(lo.item<double>()) && std::isfinite(hi.item<double>())) return;
  const int64_t bad = (~at::isfinite(t)).sum().item<int64_t>();
  throw Error(file + ": tensor " + name + " holds " + std::to_string(bad) + " non-finite values (NaN or inf) of " +
              std::to_string(t.numel()));
}

namespace {

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_names() {
  static const std::vector<std::pair<std::string, at::ScalarType>> names = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool}};
  return names;
}

at::ScalarType parse_dtype(const std::string& name, const std::string& where) {
  for (const auto& [n, t] : dtype_names()) {
    if (n == name) return t;
  }
  throw Error(where + ": unsupported dtype '" + name + "'");
}

std::string dtype_name(at::ScalarType t) {
  for (const auto& [n, s] : dtype_names()) {
    if (s == t) return n;
  }
  throw Error(std::string("safetensors cannot store dtype ") + c10::toString(t));
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_shared<MappedFile>(path)) {
  const std::size_t size = file_->size();
  if (size < 8) throw Error(path + ": not a safetensors file (shorter than its 8-byte header size)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len == 0 || header_len > size - 8) {
    throw Error(path + ": corrupt safetensors header (header size " + std::to_string(header_len) +
                " does not fit in a file of " + std::to_string(size) + " bytes)");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file_->data() + 8, file_->data() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": corrupt safetensors header (invalid JSON: " + e.what() + ")");
  }
  if (!header.is_object()) throw Error(path + ": corrupt safetensors header (not a JSON object)");
  const std::size_t data_start = 8 + header_len;
  const std::size_t data_size = size - data_start;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : info.items()) {
        if (v.is_string()) metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    try {
      Entry e;
      e.dtype = parse_dtype(info.at("dtype").get<std::string>(), where);
      e.shape = info.at("shape").get<std::vector<int64_t>>();
      const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size) {
        throw Error(where + ": data_offsets lie outside the file (truncated?)");
      }
      uint64_t numel = 1;
      for (int64_t d : e.shape) {
        if (d < 0) throw Error(where + ": negative dimension in shape");
        numel *= static_cast<uint64_t>(d);
      }
      if (numel * c10::elementSize(e.dtype) != offsets[1] - offsets[0]) {
        throw Error(where + ": shape and data_offsets disagree on its byte size");
      }
      e.offset = data_start + offsets[0];
      entries_.emplace(name, std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      throw Error(where + ": malformed header entry (" + ex.what() + ")");
    }
  }
}

const std::string& SafetensorsFile::path() const { return file_->path(); }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : entries_) out.push_back(name);
  return out;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw Error(path() + ": no tensor named '" + name + "'");
  const Entry& e = it->second;
  auto keep_alive = file_;
  // from_blob never writes; the const_cast only satisfies its signature.
  void* ptr = const_cast<std::uint8_t*>(file_->data() + e.offset);
  return at::from_blob(
      ptr, e.shape, [keep_alive](void*) {}, at::TensorOptions().dtype(e.dtype));
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = c.nbytes();
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(std::move(c));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep tensor data 8-byte aligned
  const uint64_t header_len = text.size();

  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary);
    f.write(reinterpret_cast<const char*>(&header_len), 8);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : cpu) {
      f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    }
    close_checked(f, out.temp_path());
  }
  out.commit();
}

}  // namespace foresight
