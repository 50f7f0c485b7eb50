// The C++ drivers run in the library's default floating-point mode, subnormals flushed to zero
// (src/falsestruct/fp_env.h); FS_KEEP_DENORMALS=1 in the environment keeps them, to measure
// what flushing saves on the machine at hand.
#pragma once
#include <cstdlib>

#include "falsestruct/fp_env.h"

inline bool bench_flushes_subnormals() { return std::getenv("FS_KEEP_DENORMALS") == nullptr; }
