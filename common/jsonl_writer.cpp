#include "common/jsonl_writer.h"

#include "common/error.h"

namespace foresight {

JsonlWriter::JsonlWriter(const std::string& path) : out_(path), stream_(out_.temp_path()) {
  if (!stream_) throw Error("cannot write " + out_.temp_path());
}

void JsonlWriter::write(const std::string& line) { stream_ << line << '\n'; }

void JsonlWriter::commit() {
  stream_.close();
  if (!stream_) throw Error("cannot write " + out_.temp_path());
  out_.commit();
}

}  // namespace foresight
