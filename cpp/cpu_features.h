// Which x86-64 instruction-set levels this CPU and OS can run, from CPUID and XGETBV.
//
// A level counts only when the CPU has every feature of it (as GCC's -march=x86-64-v3 / -v4
// use them) and the OS saves the vector registers it needs across context switches (XCR0):
// a hypervisor may expose AVX-512 in CPUID and still leave ZMM state off.
#pragma once
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

namespace fs_host {

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// CPUID leaf/subleaf; all zero when the leaf is not supported.
inline CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  CpuidRegs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return CpuidRegs{};
  return r;
}

// XCR0: the register state the OS saves (bit 1 SSE, 2 AVX/YMM, 5-7 AVX-512 opmask/ZMM).
// Only valid when CPUID.1:ECX.OSXSAVE is set.
inline uint64_t xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

inline bool has_bits(uint32_t reg, uint32_t mask) { return (reg & mask) == mask; }

// x86-64-v3 (the "avx2" variant): AVX, AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE on top of the
// v2 features (SSE3..SSE4.2, POPCNT, CMPXCHG16B, LAHF), with YMM state enabled by the OS.
inline bool cpu_runs_x86_64_v3() {
  const CpuidRegs l1 = cpuid(1), l7 = cpuid(7), e1 = cpuid(0x80000001u);
  const uint32_t ecx1 = (1u << 0) | (1u << 9) | (1u << 12) | (1u << 13) | (1u << 19) |
                        (1u << 20) | (1u << 22) | (1u << 23) | (1u << 27) | (1u << 28) |
                        (1u << 29);  // SSE3 SSSE3 FMA CX16 SSE4.1 SSE4.2 MOVBE POPCNT OSXSAVE AVX F16C
  const uint32_t ebx7 = (1u << 3) | (1u << 5) | (1u << 8);  // BMI1 AVX2 BMI2
  const uint32_t ecx_ext = (1u << 0) | (1u << 5);             // LAHF/SAHF, LZCNT
  if (!has_bits(l1.ecx, ecx1) || !has_bits(l7.ebx, ebx7) || !has_bits(e1.ecx, ecx_ext)) return false;
  return (xcr0() & 0x6) == 0x6;
}

// x86-64-v4 (the "avx512" variant): v3 plus AVX-512 F, DQ, CD, BW, VL, with the opmask and
// ZMM state (XCR0 bits 5-7) enabled by the OS.
inline bool cpu_runs_x86_64_v4() {
  if (!cpu_runs_x86_64_v3()) return false;
  const uint32_t ebx7 = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
  if (!has_bits(cpuid(7).ebx, ebx7)) return false;
  return (xcr0() & 0xE6) == 0xE6;
}

}  // namespace fs_host
#endif  // x86
