#pragma once
// How many intra-op threads a command uses when it is not told.

namespace foresight {

// The CPUs this process may run on (its affinity mask: taskset, a cgroup cpuset), at least 1.
int allowed_cpus();

// LibTorch's own default is the machine's physical core count, blind to the affinity mask: a
// process pinned to 2 of 64 cores would start 32 threads on them. The default here is the smaller
// of the two, at least 1.
int default_thread_count(int libtorch_default, int allowed);

// Sets that default unless OMP_NUM_THREADS is set (LibTorch already honours it). Every command
// calls it first; its --threads flag or `threads` key, where it has one, overrides it after.
void apply_default_threads();

}  // namespace foresight
