#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "golden/oracle.h"
#include "golden/recorder.h"
#include "model/fingerprint.h"

namespace foresight {

// The golden trace file, format "foresightkv-golden" version 1 (documented in data/README.md).
inline constexpr const char* kGoldenFormat = "foresightkv-golden";
inline constexpr int64_t kGoldenVersion = 1;

struct GoldenHeader {
  ModelFingerprint model;
  EvictionSchedule schedule;
  bool keep_attention = false;
  std::string config_yaml;  // the resolved config of the run that created the file
  Protect protect;          // DESIGN.md §2: schedule.protect is resolved per trace (GoldenFileReader::schedule)
};

// Appends traces to a golden file, one closed HDF5 transaction per trace: the file is opened,
// the trace group written and marked complete, and the file closed before append() returns, with
// SIGINT/SIGTERM/SIGHUP deferred in every thread meanwhile. A run killed while computing leaves a
// closed, readable file; reopening it resumes, discarding any group whose write was cut off.
// Before a transaction touches the file, the disk space it can need is reserved; a trace that
// does not fit is refused with the file left as it was.
class GoldenFileWriter {
 public:
  // Creates `path` (atomically) or reopens it to resume; a file written for another model,
  // schedule or attention setting is refused.
  GoldenFileWriter(std::string path, const GoldenHeader& header);

  const std::set<std::string>& completed() const { return completed_; }
  void append(const std::string& id, const GoldenTrace& trace, std::optional<int64_t> prompt_len);

 private:
  std::string path_;
  std::set<std::string> completed_;
};

// Opens and validates a golden file: format, version, header, and every trace's dataset shapes;
// read() checks the values of what it returns (golden/golden_checks.h).
class GoldenFileReader {
 public:
  explicit GoldenFileReader(const std::string& path);
  ~GoldenFileReader();
  GoldenFileReader(const GoldenFileReader&) = delete;
  GoldenFileReader& operator=(const GoldenFileReader&) = delete;

  const GoldenHeader& header() const { return header_; }
  const std::vector<std::string>& trace_ids() const { return ids_; }
  GoldenTrace read(const std::string& id) const;  // attention only when the file keeps it
  // From now on read() also refuses tokens >= vocab (the model's vocabulary size).
  void expect_vocab(int64_t vocab) { vocab_ = vocab; }
  int64_t length(const std::string& id) const;     // tokens in the trace
  at::Tensor tokens(const std::string& id) const;  // int32 [L], the trace's tokens alone (read() reads all)
  std::optional<int64_t> prompt_len(const std::string& id) const;
  // The header's schedule with its protect resolved for trace `id` (its prompt_len).
  EvictionSchedule schedule(const std::string& id) const;

 private:
  std::string path_;
  int64_t file_;  // hid_t
  GoldenHeader header_;
  std::vector<std::string> ids_;
  std::map<std::string, int64_t> lengths_;
  int64_t vocab_ = 0;  // 0: unknown
};

// Refuses a trace id that cannot name an HDF5 group.
void check_trace_id(const std::string& id);

}  // namespace foresight
