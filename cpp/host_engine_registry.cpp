// The CPU engine's variants compiled into this module (CMake defines FS_HOST_HAS_<ISA> for
// each) and the choice of one per process (host_engine_registry.h). Compiled for the x86-64
// baseline, like the bindings, so that a CPU without AVX2 gets an ImportError, not SIGILL.
#include "host_engine_registry.h"

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "cpu_features.h"

extern "C" {
#if defined(FS_HOST_HAS_NATIVE)
const void* fs_host_entry_points_native_f32(void);
const void* fs_host_entry_points_native_f64(void);
#endif
#if defined(FS_HOST_HAS_AVX512)
const void* fs_host_entry_points_avx512_f32(void);
const void* fs_host_entry_points_avx512_f64(void);
#endif
#if defined(FS_HOST_HAS_AVX2)
const void* fs_host_entry_points_avx2_f32(void);
const void* fs_host_entry_points_avx2_f64(void);
#endif
#if defined(FS_HOST_HAS_GENERIC)
const void* fs_host_entry_points_generic_f32(void);
const void* fs_host_entry_points_generic_f64(void);
#endif
}

namespace fs_host {
namespace {

constexpr const char* kIsaVariable = "FALSESTRUCT_CPU_ISA";

struct Variant {
  const char* isa;
  const char* needs;     // what the CPU must have, for error messages
  bool (*runs_here)();
  const void* (*f32)();
  const void* (*f64)();
};

// Built for this machine (-march=native) or for a CPU family without variants: runnable by
// construction.
[[maybe_unused]] bool built_for_this_cpu() { return true; }

// In order of preference: `auto` takes the first one this CPU runs.
const Variant kVariants[] = {
#if defined(FS_HOST_HAS_NATIVE)
    {"native", "the CPU it was built on", &built_for_this_cpu, &fs_host_entry_points_native_f32,
     &fs_host_entry_points_native_f64},
#endif
#if defined(FS_HOST_HAS_AVX512)
    {"avx512", "x86-64-v4: AVX-512 F/DQ/CD/BW/VL, with ZMM state enabled by the OS",
     &cpu_runs_x86_64_v4, &fs_host_entry_points_avx512_f32, &fs_host_entry_points_avx512_f64},
#endif
#if defined(FS_HOST_HAS_AVX2)
    {"avx2", "x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE, with YMM state enabled by the OS",
     &cpu_runs_x86_64_v3, &fs_host_entry_points_avx2_f32, &fs_host_entry_points_avx2_f64},
#endif
#if defined(FS_HOST_HAS_GENERIC)
    {"generic", "nothing beyond the compiler's default target", &built_for_this_cpu,
     &fs_host_entry_points_generic_f32, &fs_host_entry_points_generic_f64},
#endif
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

std::vector<std::string> runnable_isas() {
  std::vector<std::string> out;
  for (const Variant& v : kVariants)
    if (v.runs_here()) out.push_back(v.isa);
  return out;
}

std::string requested_isa() {
  const char* env = getenv(kIsaVariable);
  std::string s = env ? env : "";
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s.empty() ? "auto" : s;
}

template <class T>
const fs::HostEntryPoints<T>* checked_table(const Variant& v, const void* table) {
  const auto* t = static_cast<const fs::HostEntryPoints<T>*>(table);
  if (t->layout_key != fs::layout_key<T>())
    throw std::runtime_error(std::string("falsestruct_fast: the ") + v.isa +
                             " variant of the CPU engine was compiled with other struct layouts "
                             "than its bindings (a kernel header's struct depends on the "
                             "instruction set); this build is broken");
  return t;
}

HostEngine engine_of(const Variant& v) {
  HostEngine e;
  e.isa = v.isa;
  e.f32 = checked_table<float>(v, v.f32());
  e.f64 = checked_table<double>(v, v.f64());
  return e;
}

HostEngine choose() {
  const std::string want = requested_isa();
  const std::string how_to_build =
      "build the package on this machine for its own instruction set: "
      "pip install . -C cmake.define.FS_NATIVE_ARCH=ON";
  if (want == "auto") {
    for (const Variant& v : kVariants)
      if (v.runs_here()) return engine_of(v);
    std::string needs;
    for (const Variant& v : kVariants) needs += std::string("; ") + v.isa + " needs " + v.needs;
    throw std::runtime_error("falsestruct_fast: this CPU runs none of the compiled variants of the "
                             "CPU engine (" + join(compiled_isas()) + needs + "). To use it, " +
                             how_to_build);
  }
  for (const Variant& v : kVariants) {
    if (want != v.isa) continue;
    if (!v.runs_here())
      throw std::runtime_error(std::string(kIsaVariable) + "=" + want + ": this CPU cannot run the " +
                               want + " variant of the CPU engine (it needs " + v.needs +
                               "); variants this CPU runs: " + join(runnable_isas()) +
                               ". Set " + kIsaVariable + " to auto or one of those.");
    return engine_of(v);
  }
  std::string msg = std::string(kIsaVariable) + "='" + want + "' is not a choice: set it to auto or " +
                    "one of the compiled variants (" + join(compiled_isas()) + ")";
  if (want == "native") msg += "; native needs a build with -C cmake.define.FS_NATIVE_ARCH=ON";
  throw std::runtime_error(msg);
}

}  // namespace

std::vector<std::string> compiled_isas() {
  std::vector<std::string> out;
  for (const Variant& v : kVariants) out.push_back(v.isa);
  return out;
}

const HostEngine& select_host_engine() {
  static const HostEngine engine = choose();  // a throw leaves it unset: the next call retries
  return engine;
}

}  // namespace fs_host
