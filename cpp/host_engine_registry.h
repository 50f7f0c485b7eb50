// The CPU engine's variants compiled into this module, and the choice of one per process.
#pragma once
#include <string>
#include <vector>

#include "host_engine.h"

namespace fs_host {

// The variant in use: its name and its entry points for each dtype.
struct HostEngine {
  std::string isa;  // "avx512", "avx2", "native" (FS_NATIVE_ARCH=ON) or "generic" (not x86)
  const fs::HostEntryPoints<float>* f32 = nullptr;
  const fs::HostEntryPoints<double>* f64 = nullptr;

  template <class T>
  const fs::HostEntryPoints<T>& entry() const {
    if constexpr (sizeof(T) == sizeof(double)) return *f64;
    else return *f32;
  }
};

// Names of the compiled variants, in the order `auto` tries them (widest vectors first).
std::vector<std::string> compiled_isas();

// The variant for this process, chosen on the first call from the environment variable
// FALSESTRUCT_CPU_ISA (unset, "" or "auto": the first compiled variant this CPU runs; else a
// compiled variant's name) and the CPU (cpu_features.h). Throws std::runtime_error, naming the
// variable and the choices, when the name is unknown or not compiled, when this CPU cannot run
// the variant asked for, or when it runs none of them (then saying how to build for it).
const HostEngine& select_host_engine();

}  // namespace fs_host
