// BufferPool: recycles large frame buffers so steady all-reduce traffic does not page-fault fresh
// memory for every segment (glibc hands big blocks back to the kernel on free).
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace fl::comm {

class BufferPool {
 public:
  // Buffers below this size come straight from operator new.
  static constexpr size_t kMinPooled = 64u << 10;
  static constexpr size_t kMaxCachedBytes = 64u << 20;
  static constexpr size_t kMaxPerSize = 16;

  // Process-wide instance (never destroyed, so buffers may outlive static destructors).
  static BufferPool& instance();

  // A buffer of at least `n` bytes; `*capacity` receives its real size, needed by release().
  char* acquire(size_t n, size_t* capacity);
  void release(char* p, size_t capacity);

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<char*>> free_;
  size_t cachedBytes_ = 0;
};

// unique_ptr deleter handing the buffer back to the pool.
struct PooledDeleter {
  size_t capacity = 0;
  void operator()(char* p) const { BufferPool::instance().release(p, capacity); }
};

}  // namespace fl::comm
