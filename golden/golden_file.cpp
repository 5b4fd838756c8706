#include "golden/golden_file.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/atomic_output.h"
#include "common/error.h"
#include "common/signal_cleanup.h"
#include "golden/golden_checks.h"

namespace foresight {

namespace {

// ---- small RAII layer over the HDF5 C API --------------------------------------------------------

// The most telling message on HDF5's error stack, the system's own where there is one ("No space
// left on device"), as ": <message>"; read before the next HDF5 call clears the stack.
std::string hdf5_cause() {
  std::vector<std::string> messages;  // innermost first
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD,
           [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
             if (e->desc) static_cast<std::vector<std::string>*>(out)->push_back(e->desc);
             return 0;
           },
           &messages);
  for (const std::string& m : messages) {
    const std::string key = "error message = '";
    const auto at = m.find(key);
    if (at != std::string::npos) return ": " + m.substr(at + key.size(), m.find('\'', at + key.size()) - at - key.size());
  }
  return messages.empty() ? "" : ": " + messages.front();
}

void check(herr_t status, const std::string& what) {
  if (status < 0) throw Error(what + hdf5_cause());
}

class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t), const std::string& what) : id_(id), close_(close) {
    if (id < 0) throw Error(what + hdf5_cause());
  }
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id_; }

  // Closing is where HDF5 writes what it cached (a dataset's chunks, the file's metadata), so a
  // writer closes explicitly and checks; the destructor's close is for unwinding only.
  void close(const std::string& what) {
    const herr_t status = close_(id_);
    id_ = -1;
    check(status, what);
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Once per process, before any other HDF5 call. HDF5 1.10 leaves a file whose close failed (a full
// disk) half torn down, and the library's exit handler then crashes on it (SIGSEGV in
// H5F__close_cb) after the error was reported. Every file here is closed by its owner, so the exit
// handler has nothing left to do: it is not installed. Errors become Error, not stack dumps.
void init_hdf5() {
  static const bool done = [] {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// IEEE half precision, laid out as h5py writes numpy float16.
hid_t float16_type() {
  static const hid_t type = [] {
    const hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
  }();
  return type;
}

hid_t h5_type(at::ScalarType t) {
  switch (t) {
    case at::kInt: return H5T_NATIVE_INT32;
    case at::kFloat: return H5T_NATIVE_FLOAT;
    case at::kHalf: return float16_type();
    default: throw Error(std::string("golden file cannot store dtype ") + c10::toString(t));
  }
}

void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
              std::string("cannot create attribute ") + name);
  const char* ptr = value.c_str();
  check(H5Awrite(attr, type, &ptr), std::string("cannot write attribute ") + name);
  attr.close(std::string("cannot write attribute ") + name);
}

void write_int_attr(hid_t obj, const char* name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
              std::string("cannot create attribute ") + name);
  check(H5Awrite(attr, H5T_NATIVE_INT64, &value), std::string("cannot write attribute ") + name);
  attr.close(std::string("cannot write attribute ") + name);
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

std::string read_string_attr(hid_t obj, const char* name, const std::string& where) {
  if (!has_attr(obj, name)) throw Error(where + ": attribute '" + name + "' is missing");
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, where + ": cannot open attribute " + name);
  Handle file_type(H5Aget_type(attr), H5Tclose, "H5Aget_type");
  if (H5Tget_class(file_type) != H5T_STRING) throw Error(where + ": attribute '" + name + "' is not a string");
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5Tget_cset(file_type));
  char* value = nullptr;
  check(H5Aread(attr, type, &value), where + ": cannot read attribute " + name);
  std::string out = value ? value : "";
  H5free_memory(value);
  return out;
}

int64_t read_int_attr(hid_t obj, const char* name, const std::string& where) {
  if (!has_attr(obj, name)) throw Error(where + ": attribute '" + name + "' is missing");
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, where + ": cannot open attribute " + name);
  int64_t value = 0;
  check(H5Aread(attr, H5T_NATIVE_INT64, &value), where + ": attribute '" + name + "' is not an integer");
  return value;
}

// Chunks of at most ~256K elements, split along the leading dimensions first.
std::vector<hsize_t> chunk_shape(const std::vector<hsize_t>& dims) {
  std::vector<hsize_t> chunk = dims;
  for (auto& c : chunk) c = std::max<hsize_t>(c, 1);
  auto total = [&] {
    hsize_t n = 1;
    for (auto c : chunk) n *= c;
    return n;
  };
  for (std::size_t i = 0; i < chunk.size() && total() > (1u << 18); ++i) {
    while (chunk[i] > 1 && total() > (1u << 18)) chunk[i] = (chunk[i] + 1) / 2;
  }
  return chunk;
}

void write_dataset(hid_t group, const char* name, const at::Tensor& tensor) {
  const at::Tensor t = tensor.contiguous().cpu();
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, "H5Screate_simple");
  Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "H5Pcreate");
  const std::vector<hsize_t> chunk = chunk_shape(dims);
  check(H5Pset_chunk(props, static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk");
  check(H5Pset_shuffle(props), "H5Pset_shuffle");
  check(H5Pset_deflate(props, 4), "H5Pset_deflate");
  const hid_t type = h5_type(t.scalar_type());
  Handle ds(H5Dcreate2(group, name, type, space, H5P_DEFAULT, props, H5P_DEFAULT), H5Dclose,
            std::string("cannot create dataset ") + name);
  check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()), std::string("cannot write dataset ") + name);
  ds.close(std::string("cannot write dataset ") + name);
}

// An upper bound of the bytes a trace adds to the file: its data uncompressed (deflate can grow
// incompressible data a little), plus per dataset and per chunk generous room for HDF5's metadata
// (object headers, chunk indexes), plus room for the growth of /traces' symbol table and name
// heap, which HDF5 doubles when full.
uint64_t trace_bytes_bound(const GoldenTrace& t) {
  uint64_t bytes = 256 << 10;
  for (const at::Tensor* x : {&t.tokens, &t.nll, &t.entropy, &t.drop_slots, &t.drop_positions, &t.oracle_scores,
                              &t.attention}) {
    if (!x->defined()) continue;
    const std::vector<hsize_t> dims(x->sizes().begin(), x->sizes().end()), chunk = chunk_shape(dims);
    uint64_t chunks = 1;
    for (std::size_t i = 0; i < dims.size(); ++i) chunks *= (std::max<hsize_t>(dims[i], 1) + chunk[i] - 1) / chunk[i];
    bytes += x->nbytes() + x->nbytes() / 4 + (32 << 10) + chunks * 1024;
  }
  return bytes;
}

// HDF5 1.10 rewrites the file's metadata in place when it closes it, so a write that runs out of
// space part way can leave a file that no longer opens. Before the transaction touches the file,
// the space it can need is therefore claimed with a ballast file next to it (same file system),
// which is removed again to make the room for the write. What remains is a race: another process
// filling the disk between the ballast's removal and the write; then the write fails with an
// error naming the file, and HDF5 may or may not have left it readable.
void reserve_space(const std::string& path, const std::string& id, uint64_t bytes, std::size_t written) {
  const std::string ballast = path + ".reserve-" + std::to_string(::getpid());
  RemovedOnSignal on_signal(ballast);
  const int fd = ::open(ballast.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int err = fd < 0 ? errno : ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (fd >= 0) ::close(fd);
  ::unlink(ballast.c_str());
  if (err == 0) return;
  char mb[32];
  std::snprintf(mb, sizeof mb, "%.1f", static_cast<double>(bytes) / 1e6);
  if (err == ENOSPC || err == EDQUOT) {
    throw Error("not enough disk space for trace " + id + " in " + path + ": need ~" + mb + " MB; the file holds the " +
                std::to_string(written) + " traces written so far and a rerun resumes");
  }
  throw Error("cannot reserve ~" + std::string(mb) + " MB for trace " + id + " next to " + path + " (" + ballast +
              "): " + std::strerror(err) + "; the file holds the " + std::to_string(written) + " traces written so far");
}

std::vector<int64_t> dataset_shape(hid_t group, const char* name, const std::string& where) {
  if (H5Lexists(group, name, H5P_DEFAULT) <= 0) throw Error(where + ": dataset '" + name + "' is missing");
  Handle ds(H5Dopen2(group, name, H5P_DEFAULT), H5Dclose, where + ": cannot open dataset " + name);
  Handle space(H5Dget_space(ds), H5Sclose, "H5Dget_space");
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

at::Tensor read_dataset(hid_t group, const char* name, at::ScalarType dtype, const std::string& where) {
  at::Tensor t = at::empty(dataset_shape(group, name, where), dtype);
  Handle ds(H5Dopen2(group, name, H5P_DEFAULT), H5Dclose, where + ": cannot open dataset " + name);
  check(H5Dread(ds, h5_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()),
        where + ": cannot read dataset " + name + " (corrupt file?)");
  return t;
}

std::vector<std::string> child_names(hid_t group) {
  std::vector<std::string> names;
  H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
                static_cast<std::vector<std::string>*>(out)->push_back(name);
                return 0;
              },
              &names);
  return names;
}

void write_header(hid_t file, const GoldenHeader& h) {
  write_string_attr(file, "format", kGoldenFormat);
  write_int_attr(file, "version", kGoldenVersion);
  write_int_attr(file, "budget", h.schedule.budget);
  write_int_attr(file, "interval", h.schedule.interval);
  write_int_attr(file, "keep_attention", h.keep_attention ? 1 : 0);
  write_string_attr(file, "protect", h.protect.text());
  write_string_attr(file, "architecture", h.model.architecture);
  write_int_attr(file, "layers", h.model.layers);
  write_int_attr(file, "heads", h.model.heads);
  write_int_attr(file, "kv_heads", h.model.kv_heads);
  write_int_attr(file, "head_dim", h.model.head_dim);
  write_string_attr(file, "config_sha256", h.model.config_sha256);
  if (!h.model.weights_sha256.empty()) write_string_attr(file, "weights_sha256", h.model.weights_sha256);
  write_string_attr(file, "config", h.config_yaml);
}

GoldenHeader read_header(hid_t file, const std::string& path) {
  const std::string format = read_string_attr(file, "format", path);
  if (format != kGoldenFormat) throw Error(path + ": format is '" + format + "', expected " + kGoldenFormat);
  const int64_t version = read_int_attr(file, "version", path);
  if (version != kGoldenVersion) {
    throw Error(path + ": format version " + std::to_string(version) + ", this build reads version " +
                std::to_string(kGoldenVersion));
  }
  GoldenHeader h;
  h.schedule = {read_int_attr(file, "budget", path), read_int_attr(file, "interval", path)};
  h.keep_attention = read_int_attr(file, "keep_attention", path) != 0;
  // Files written before protect existed protected nothing.
  if (has_attr(file, "protect")) {
    try {
      h.protect = Protect::parse(read_string_attr(file, "protect", path));
    } catch (const Error& e) {
      throw Error(path + ": attribute " + e.what());
    }
  }
  h.model = {read_string_attr(file, "architecture", path), read_int_attr(file, "layers", path),
             read_int_attr(file, "heads", path), read_int_attr(file, "kv_heads", path),
             read_int_attr(file, "head_dim", path), read_string_attr(file, "config_sha256", path),
             // Files written before the weights were fingerprinted lack it; same_model() then checks the config alone.
             has_attr(file, "weights_sha256") ? read_string_attr(file, "weights_sha256", path) : std::string()};
  h.config_yaml = read_string_attr(file, "config", path);
  return h;
}

hid_t open_file(const std::string& path, unsigned flags) {
  if (!std::filesystem::exists(path)) throw Error("golden file not found: " + path);
  if (H5Fis_hdf5(path.c_str()) <= 0) throw Error(path + ": not an HDF5 file (corrupt or truncated?)");
  const hid_t file = H5Fopen(path.c_str(), flags, H5P_DEFAULT);
  if (file < 0) throw Error(path + ": cannot open HDF5 file (corrupt, or open in another writer?)");
  return file;
}

}  // namespace

void check_trace_id(const std::string& id) {
  if (id.empty() || id == "." || id.find('/') != std::string::npos) {
    throw Error("trace id \"" + id + "\" cannot name an HDF5 group (empty, \".\" or containing '/')");
  }
}

GoldenFileWriter::GoldenFileWriter(std::string path, const GoldenHeader& header) : path_(std::move(path)) {
  init_hdf5();
  if (!std::filesystem::exists(path_)) {
    AtomicOutput out(path_);
    try {
      Handle file(H5Fcreate(out.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
                  "cannot create " + out.temp_path());
      write_header(file, header);
      Handle traces(H5Gcreate2(file, "traces", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, "H5Gcreate2");
      traces.close("cannot create /traces");
      file.close("cannot close");
    } catch (const Error& e) {
      throw Error("cannot create golden file " + path_ + ": " + e.what());
    }
    out.commit();
    return;
  }
  Handle file(open_file(path_, H5F_ACC_RDWR), H5Fclose, path_);
  const GoldenHeader existing = read_header(file, path_);
  auto refuse = [&](const std::string& what, const std::string& theirs, const std::string& ours) {
    throw Error(path_ + " exists and was written with " + what + " " + theirs + "; this run has " + ours +
                ". Resume with the same settings, or choose another output.");
  };
  if (!same_model(existing.model, header.model, path_)) {
    refuse("model", existing.model.describe(), header.model.describe());
  }
  if (existing.schedule.budget != header.schedule.budget || existing.schedule.interval != header.schedule.interval) {
    refuse("budget/interval", std::to_string(existing.schedule.budget) + "/" + std::to_string(existing.schedule.interval),
           std::to_string(header.schedule.budget) + "/" + std::to_string(header.schedule.interval));
  }
  if (existing.protect != header.protect) refuse("protect", existing.protect.text(), header.protect.text());
  if (existing.keep_attention != header.keep_attention) {
    refuse("keep_attention", existing.keep_attention ? "true" : "false", header.keep_attention ? "true" : "false");
  }
  Handle traces(H5Gopen2(file, "traces", H5P_DEFAULT), H5Gclose, path_ + ": group /traces is missing");
  for (const std::string& id : child_names(traces)) {
    Handle group(H5Gopen2(traces, id.c_str(), H5P_DEFAULT), H5Gclose, path_ + ": cannot open /traces/" + id);
    if (has_attr(group, "complete")) {
      completed_.insert(id);
    } else {
      check(H5Ldelete(traces, id.c_str(), H5P_DEFAULT), path_ + ": cannot discard unfinished trace " + id);
    }
  }
  traces.close(path_ + ": cannot update /traces");
  file.close(path_ + ": cannot close");
}

void GoldenFileWriter::append(const std::string& id, const GoldenTrace& t, std::optional<int64_t> prompt_len) {
  check_trace_id(id);
  if (completed_.count(id)) throw Error(path_ + ": trace " + id + " is already in the file");
  reserve_space(path_, id, trace_bytes_bound(t), completed_.size());
  SignalsDeferred held;
  try {
    Handle file(open_file(path_, H5F_ACC_RDWR), H5Fclose, path_);
    Handle traces(H5Gopen2(file, "traces", H5P_DEFAULT), H5Gclose, "group /traces is missing");
    Handle group(H5Gcreate2(traces, id.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                 "cannot create /traces/" + id);
    write_int_attr(group, "length", t.tokens.size(0));
    write_int_attr(group, "steps", t.drop_slots.size(1));
    if (prompt_len) write_int_attr(group, "prompt_len", *prompt_len);
    write_dataset(group, "tokens", t.tokens);
    write_dataset(group, "nll", t.nll);
    write_dataset(group, "entropy", t.entropy);
    write_dataset(group, "drop_slots", t.drop_slots);
    write_dataset(group, "drop_positions", t.drop_positions);
    write_dataset(group, "oracle_scores", t.oracle_scores);
    if (t.attention.defined()) write_dataset(group, "attention", t.attention);
    write_int_attr(group, "complete", 1);  // last: a group without it is an interrupted write
    group.close("cannot write /traces/" + id);
    traces.close("cannot update /traces");
    file.close("cannot close the file");
  } catch (const Error& e) {
    throw Error("writing trace " + id + " to " + path_ + " failed: " + e.what() + ". A rerun resumes after the " +
                std::to_string(completed_.size()) + " traces written before, if the file still opens.");
  }
  completed_.insert(id);
}

GoldenFileReader::GoldenFileReader(const std::string& path) : path_(path) {
  init_hdf5();
  file_ = open_file(path, H5F_ACC_RDONLY);
  try {
    header_ = read_header(file_, path);
    Handle traces(H5Gopen2(file_, "traces", H5P_DEFAULT), H5Gclose, path + ": group /traces is missing");
    const EvictionSchedule& s = header_.schedule;
    const int64_t layers = header_.model.layers, kv = header_.model.kv_heads;
    for (const std::string& id : child_names(traces)) {
      const std::string where = path + ": trace " + id;
      Handle group(H5Gopen2(traces, id.c_str(), H5P_DEFAULT), H5Gclose, where + ": cannot open");
      if (!has_attr(group, "complete")) continue;  // an interrupted write; a resumed run redoes it
      const int64_t len = read_int_attr(group, "length", where);
      const int64_t steps = s.steps(len);
      const std::pair<const char*, std::vector<int64_t>> expected[] = {
          {"tokens", {len}},
          {"nll", {len - 1}},
          {"entropy", {len - 1}},
          {"drop_slots", {layers, steps, kv, s.interval}},
          {"drop_positions", {layers, steps, kv, s.interval}},
          {"oracle_scores", {layers, steps, kv, s.budget}}};
      for (const auto& [name, shape] : expected) {
        if (dataset_shape(group, name, where) != shape) {
          throw Error(where + ": dataset '" + name + "' does not have the shape its length and header imply");
        }
      }
      if (header_.keep_attention) {
        const std::vector<int64_t> shape = {layers, kv, len, (len + s.interval - 1) / s.interval};
        if (dataset_shape(group, "attention", where) != shape) {
          throw Error(where + ": dataset 'attention' does not have the shape its length and header imply");
        }
      }
      ids_.push_back(id);
      lengths_[id] = len;
    }
  } catch (...) {
    H5Fclose(file_);
    throw;
  }
}

GoldenFileReader::~GoldenFileReader() { H5Fclose(file_); }

GoldenTrace GoldenFileReader::read(const std::string& id) const {
  const std::string where = path_ + ": trace " + id;
  Handle group(H5Gopen2(file_, ("traces/" + id).c_str(), H5P_DEFAULT), H5Gclose, where + " is not in the file");
  GoldenTrace t;
  t.tokens = read_dataset(group, "tokens", at::kInt, where);
  t.nll = read_dataset(group, "nll", at::kFloat, where);
  t.entropy = read_dataset(group, "entropy", at::kFloat, where);
  t.drop_slots = read_dataset(group, "drop_slots", at::kInt, where);
  t.drop_positions = read_dataset(group, "drop_positions", at::kInt, where);
  t.oracle_scores = read_dataset(group, "oracle_scores", at::kFloat, where);
  if (header_.keep_attention) t.attention = read_dataset(group, "attention", at::kHalf, where);
  check_golden_values(t, header_.schedule, vocab_, where);
  return t;
}

at::Tensor GoldenFileReader::tokens(const std::string& id) const {
  const std::string where = path_ + ": trace " + id;
  Handle group(H5Gopen2(file_, ("traces/" + id).c_str(), H5P_DEFAULT), H5Gclose, where + " is not in the file");
  return read_dataset(group, "tokens", at::kInt, where);
}

int64_t GoldenFileReader::length(const std::string& id) const {
  const auto it = lengths_.find(id);
  if (it == lengths_.end()) throw Error(path_ + ": trace " + id + " is not in the file");
  return it->second;
}

std::optional<int64_t> GoldenFileReader::prompt_len(const std::string& id) const {
  const std::string where = path_ + ": trace " + id;
  Handle group(H5Gopen2(file_, ("traces/" + id).c_str(), H5P_DEFAULT), H5Gclose, where + " is not in the file");
  if (!has_attr(group, "prompt_len")) return std::nullopt;
  return read_int_attr(group, "prompt_len", where);
}

EvictionSchedule GoldenFileReader::schedule(const std::string& id) const {
  return header_.protect.resolve(header_.schedule, prompt_len(id), path_ + ": trace " + id);
}

}  // namespace foresight
