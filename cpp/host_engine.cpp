// One instruction-set variant of the CPU engine for one scalar type (see host_engine.h).
//
// CMake compiles this file once per variant and dtype, each with its own -march and defines:
//   FS_HOST_NAMESPACE     the variant's namespace, replacing `fs` (e.g. fs_isa_avx512)
//   FS_HOST_REAL          float or double
//   FS_HOST_ENTRY_POINTS  the C name of the table getter (e.g. fs_host_entry_points_avx512_f32)
// so that the float and double kernels of the two variants compile in parallel.
#if !defined(FS_HOST_NAMESPACE) || !defined(FS_HOST_REAL) || !defined(FS_HOST_ENTRY_POINTS)
#error "compile host_engine.cpp with FS_HOST_NAMESPACE, FS_HOST_REAL and FS_HOST_ENTRY_POINTS"
#endif

// Every system header the kernels use comes first, so that the renaming below reaches only the
// project's own code (a system header that used the word `fs` would otherwise be rewritten).
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define fs FS_HOST_NAMESPACE
#include "falsestruct/network_host.h"
#include "host_engine.h"

namespace fs {
namespace {

using T = FS_HOST_REAL;

size_t scratch_cache_bytes() { return ScratchCache::process().kept_bytes(); }
size_t release_scratch_cache() { return ScratchCache::process().clear(); }

const HostEntryPoints<T> kEntryPoints = {
    &net_init_host<T>,          &net_forward_host<T>,          &deepfool_host<T>,
    &logit_input_grads_host<T>, &net_loss_and_grad_host<T>,    &net_train_host<T>,
    &scratch_cache_bytes,       &release_scratch_cache,        layout_key<T>(),
};

}  // namespace
}  // namespace fs

extern "C" const void* FS_HOST_ENTRY_POINTS(void) { return &fs::kEntryPoints; }
