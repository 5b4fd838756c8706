#include "golden/golden_shards.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <regex>

#include "common/error.h"
#include "golden/golden_file.h"

namespace foresight {

namespace fs = std::filesystem;

std::string golden_shard_path(const std::string& output, int64_t rank, int64_t world_size) {
  return output + ".rank" + std::to_string(rank) + "-of-" + std::to_string(world_size);
}

void refuse_foreign_shards(const std::string& output, int64_t world_size) {
  const fs::path out(output);
  const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  if (!fs::is_directory(dir)) return;
  const std::regex shard(std::regex_replace(out.filename().string(), std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                         R"(\.rank[0-9]+-of-([0-9]+))");
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, shard) && std::stoll(m[1].str()) != world_size) {
      throw Error(e.path().string() + " is a shard of an unfinished run over " + m[1].str() + " ranks (this one has " +
                  std::to_string(world_size) + "): finish that run with torchrun --nproc-per-node " + m[1].str() +
                  ", or remove its shards to record their traces again");
    }
  }
}

int64_t merge_golden_shards(GoldenFileWriter& out, const std::string& output, int64_t world_size,
                            const std::vector<std::string>& order) {
  std::vector<std::unique_ptr<GoldenFileReader>> shards;
  for (int64_t r = 0; r < world_size; ++r) {
    const std::string path = golden_shard_path(output, r, world_size);
    if (fs::exists(path)) shards.push_back(std::make_unique<GoldenFileReader>(path));
  }
  int64_t moved = 0;
  for (const std::string& id : order) {
    if (out.completed().count(id)) continue;
    for (const auto& shard : shards) {
      const auto& ids = shard->trace_ids();
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
      out.append(id, shard->read(id), shard->prompt_len(id));
      ++moved;
      break;
    }
  }
  // A trace of the shards that `order` lacks (the traces file changed between a cut-off run and
  // this one) is kept too, as a one-process run keeps what its output already holds.
  for (const auto& shard : shards) {
    for (const std::string& id : shard->trace_ids()) {
      if (out.completed().count(id)) continue;
      out.append(id, shard->read(id), shard->prompt_len(id));
      ++moved;
    }
  }
  // The shards are removed only once everything they hold is in the output.
  shards.clear();
  for (int64_t r = 0; r < world_size; ++r) fs::remove(golden_shard_path(output, r, world_size));
  return moved;
}

}  // namespace foresight
