// The floating-point mode the CPU kernels run in: whether subnormal (denormal) numbers are
// flushed to zero.
//
// Why: Intel cores handle an operation that produces or reads a subnormal number with a
// microcode assist of about 100+ cycles per vector instruction (AMD's Zen cores take almost
// none). Training drives some values there as a matter of course: Adam's first moment of a
// parameter whose gradient is exactly zero (a dead ReLU unit) decays by beta1 = 0.9 per step and
// is subnormal after ~800 steps in float32 (~6700 in float64), and stays so for ~150 more. On an
// Intel Xeon this made the Experiment I step 3x slower in float32 and 2x in float64. With
// flushing (x86's MXCSR FTZ + DAZ bits) such values are zero instead: a difference below
// 1.2e-38 (float32) or 2.3e-308 (float64) in absolute value, which TensorFlow, the paper's
// framework, also makes (it runs its CPU kernels with FTZ/DAZ set).
//
// SubnormalModeScope sets the mode of the calling thread for its lifetime and restores the
// previous one. The bindings set it around every CPU call (falsestruct_fast.set_flush_denormals
// chooses; on by default), and parallel_for_networks gives its worker threads the mode of the
// thread that called it, so the mode never depends on how threads were created. C++ users of
// the header-only core choose by creating a scope themselves (the kernels never change it).
// On targets other than x86 the scope does nothing (subnormals kept).
#pragma once
#include <stdint.h>

#if (defined(__x86_64__) || defined(__i386__) || defined(_M_X64)) && !defined(__CUDA_ARCH__)
#include <immintrin.h>
#define FS_HAVE_MXCSR 1
#else
#define FS_HAVE_MXCSR 0
#endif

namespace fs {

// true when this thread flushes subnormal results to zero and reads subnormal inputs as zero.
inline bool flushes_subnormals() {
#if FS_HAVE_MXCSR
  constexpr uint32_t kFtzDaz = 0x8040u;  // MXCSR bit 15 flush-to-zero, bit 6 denormals-are-zero
  return (_mm_getcsr() & kFtzDaz) == kFtzDaz;
#else
  return false;
#endif
}

class SubnormalModeScope {
 public:
  // flush: true = subnormals are zero (FTZ + DAZ), false = IEEE gradual underflow.
  explicit SubnormalModeScope(bool flush) {
#if FS_HAVE_MXCSR
    saved_ = _mm_getcsr();
    _mm_setcsr(flush ? (saved_ | kFtzDaz) : (saved_ & ~kFtzDaz));
#else
    (void)flush;
#endif
  }
  ~SubnormalModeScope() {
#if FS_HAVE_MXCSR
    _mm_setcsr(saved_);
#endif
  }
  SubnormalModeScope(const SubnormalModeScope&) = delete;
  SubnormalModeScope& operator=(const SubnormalModeScope&) = delete;

 private:
#if FS_HAVE_MXCSR
  static constexpr uint32_t kFtzDaz = 0x8040u;
  uint32_t saved_ = 0;
#endif
};

}  // namespace fs
