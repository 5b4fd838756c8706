#include "common/jsonl_writer.h"

#include "common/error.h"
#include "common/text_file.h"

namespace foresight {

JsonlWriter::JsonlWriter(const std::string& path) : out_(path), stream_(out_.temp_path()) {
  if (!stream_) throw Error("cannot write " + out_.temp_path());
}

// Bytes reach the disk when the buffer fills, so a full disk shows on a later write or at commit.
void JsonlWriter::write(const std::string& line) {
  if (!(stream_ << line << '\n')) throw Error("cannot write " + out_.temp_path() + " (for " + out_.path() + ")");
}

void JsonlWriter::commit() {
  close_checked(stream_, out_.temp_path());
  out_.commit();
}

}  // namespace foresight
