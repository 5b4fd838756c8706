#pragma once
// How much memory this process can still allocate, so that a request too large for the machine is
// refused up front with its size, not met by the kernel's OOM killer after minutes of work.
#include <cstdint>
#include <optional>
#include <string>

namespace foresight {

// The smaller of /proc/meminfo's MemAvailable and what the process's cgroup (v2 memory.max minus
// memory.current) still allows, in bytes; nothing where neither can be read.
std::optional<int64_t> available_memory_bytes();

// "1.5 GiB", "320.0 KiB": a byte count for messages.
std::string human_bytes(double bytes);

}  // namespace foresight
