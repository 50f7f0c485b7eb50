// Scratch memory of the CPU engine: one large buffer per worker, grown on demand, and a
// process-wide cache that keeps buffers between calls.
//
// Why not a std::vector per call: a CNN workspace is tens of MB (the paper's CNN at batch 60
// in float64: ~54 MB), and std::vector writes zeros over all of it on one thread, taking a
// 4 KiB page fault per page: ~30 ms per call on the development machine, more than a training
// step. Here a buffer is an anonymous mapping that Linux may back with 2 MiB pages
// (MADV_HUGEPAGE: ~500x fewer faults, fewer TLB misses in the conv layers), nothing is written
// up front, and the cache hands the same (already faulted) buffer to the next call, which
// matters for studies that train in chunks of epochs. Every kernel writes a workspace part
// before reading it, so the contents never matter.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <algorithm>
#include <mutex>
#include <new>
#include <utility>
#include <vector>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define FS_HOST_BUFFER_MMAP 1
#endif

namespace fs {

class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  HostBuffer(HostBuffer&& o) noexcept { swap(o); }
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~HostBuffer() { release(); }

  // Makes room for n bytes from a 64-byte boundary; when it has to grow, the old contents are
  // dropped (the buffer is scratch). Throws std::bad_alloc when memory runs out.
  void reserve(size_t n) {
    if (n <= capacity_) return;
    release();
    allocate(n);
  }
  void* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  static constexpr size_t kHugePage = size_t(2) << 20;

  void swap(HostBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(base_, o.base_);
    std::swap(bytes_, o.bytes_);
    std::swap(capacity_, o.capacity_);
  }
#if defined(FS_HOST_BUFFER_MMAP)
  void allocate(size_t need) {
    // A huge page's worth of slack lets the data start on a 2 MiB boundary.
    bytes_ = need + kHugePage;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      bytes_ = 0;
      throw std::bad_alloc();
    }
    base_ = p;
    const uintptr_t aligned = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) / kHugePage * kHugePage;
#if defined(MADV_HUGEPAGE)
    if (need >= kHugePage) madvise(reinterpret_cast<void*>(aligned), need, MADV_HUGEPAGE);  // a hint
#endif
    data_ = reinterpret_cast<void*>(aligned);
    capacity_ = need;
  }
  void release() {
    if (base_) munmap(base_, bytes_);
    data_ = nullptr, base_ = nullptr, bytes_ = 0, capacity_ = 0;
  }
#else
  // Elsewhere: operator new, 64-byte aligned (zero-filling is left out for the same reason).
  void allocate(size_t need) {
    bytes_ = need;
    base_ = ::operator new(bytes_, std::align_val_t(64));
    data_ = base_;
    capacity_ = need;
  }
  void release() {
    if (base_) ::operator delete(base_, std::align_val_t(64));
    data_ = nullptr, base_ = nullptr, bytes_ = 0, capacity_ = 0;
  }
#endif

  void* data_ = nullptr;
  void* base_ = nullptr;
  size_t bytes_ = 0;
  size_t capacity_ = 0;
};

// Buffers given back by finished calls, for the next call to take. Bounded: at most
// kMaxBytes in all (the largest buffers are kept: they are the costly ones to fault in).
class ScratchCache {
 public:
  static constexpr size_t kMaxBytes = size_t(512) << 20;

  static ScratchCache& process() {
    static ScratchCache cache;
    return cache;
  }
  // A buffer of at least n bytes: the smallest kept one that fits, else a new one.
  HostBuffer take(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    int best = -1;
    for (int i = 0; i < static_cast<int>(kept_.size()); ++i)
      if (kept_[i].capacity() >= n && (best < 0 || kept_[i].capacity() < kept_[best].capacity()))
        best = i;
    HostBuffer b;
    if (best >= 0) {
      b = std::move(kept_[best]);
      kept_.erase(kept_.begin() + best);
    } else {
      b.reserve(n);
    }
    return b;
  }
  void give_back(HostBuffer&& b) {
    if (b.capacity() == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    kept_.push_back(std::move(b));
    std::sort(kept_.begin(), kept_.end(),
              [](const HostBuffer& x, const HostBuffer& y) { return x.capacity() > y.capacity(); });
    size_t total = 0;
    size_t keep = 0;
    while (keep < kept_.size() && total + kept_[keep].capacity() <= kMaxBytes)
      total += kept_[keep++].capacity();
    kept_.resize(keep);  // frees the rest
  }
  // Frees every kept buffer; returns the bytes freed.
  size_t clear() {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t freed = total_locked();
    kept_.clear();
    return freed;
  }
  size_t kept_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_locked();
  }

 private:
  size_t total_locked() const {
    size_t total = 0;
    for (const auto& b : kept_) total += b.capacity();
    return total;
  }

  std::mutex mu_;
  std::vector<HostBuffer> kept_;
};

}  // namespace fs
