#pragma once
// The element type of a kernel's tensor inputs, as launchers (kernels/<name>.cuh) take it: they
// see raw pointers and include neither torch nor CUDA headers.

namespace foresight {

enum class ElementType : int { Float32, Float16, BFloat16 };

}  // namespace foresight
