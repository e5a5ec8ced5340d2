// BufferPool implementation: exact size classes rounded up to 64 KiB, bounded total cache.
#include "communicator/buffer_pool.h"

namespace fl::comm {

BufferPool& BufferPool::instance() {
  static BufferPool* pool = new BufferPool();  // intentionally leaked
  return *pool;
}

char* BufferPool::acquire(size_t n, size_t* capacity) {
  if (n < kMinPooled) {
    *capacity = n > 0 ? n : 1;
    return new char[*capacity];
  }
  size_t cap = (n + kMinPooled - 1) / kMinPooled * kMinPooled;
  *capacity = cap;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(cap);
    if (it != free_.end() && !it->second.empty()) {
      char* p = it->second.back();
      it->second.pop_back();
      cachedBytes_ -= cap;
      return p;
    }
  }
  return new char[cap];
}

void BufferPool::release(char* p, size_t capacity) {
  if (p == nullptr) return;
  if (capacity >= kMinPooled) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& list = free_[capacity];
    if (list.size() < kMaxPerSize && cachedBytes_ + capacity <= kMaxCachedBytes) {
      list.push_back(p);
      cachedBytes_ += capacity;
      return;
    }
  }
  delete[] p;
}

}  // namespace fl::comm
