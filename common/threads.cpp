#include "common/threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>

namespace foresight {

int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

int default_thread_count(int libtorch_default, int allowed) {
  return std::max(1, std::min(libtorch_default, allowed));
}

void apply_default_threads() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (env != nullptr && *env != '\0') return;
  at::set_num_threads(default_thread_count(at::get_num_threads(), allowed_cpus()));
}

}  // namespace foresight
